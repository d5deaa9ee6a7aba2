"""Dispatcher operations on top of :class:`~ptt_client.client.RadioClient`.

Creating and deleting a channel, changing who is on it, patching channels together,
and instant recall. The server only routes: every roster
is signed here with the dispatcher's credential, every epoch key is made and
wrapped here (HPKE, one envelope per member), and recalled bursts come back
still sealed end to end and are opened here.

Changing members always starts a new key epoch (DESIGN.md: removing a member
starts a new epoch): a removed member gets no envelope, so once the old epoch's
grace has passed (``crypto.keyring.DEFAULT_GRACE``) it can no longer hear the
channel. The dispatcher stays on every roster it signs, so it keeps hearing the
channel and knows the current epoch for the next change.

The server answers a refusal with a :class:`control.Error` that names no
request. An operation that has its own answer (ChannelCreated, the
dispatcher's own key envelope, RecallList) takes an Error arriving before it as
its refusal; one without (Patch, ChannelDelete, CredentialRequest) is followed by a
Ping, and an Error before the Pong is its refusal (the server handles one
connection's messages in order). Either way :class:`ChannelAdminError` carries
the server's text. Not being connected raises the client's ``ClientError``.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from crypto.epoch import EpochKey
from crypto.errors import CryptoError, PatchError
from crypto.identity import Credential
from crypto.keyring import FrameOpener
from crypto.roster import Member, Roster
from ptt_client.audio import AudioOutput
from ptt_client.codec import OpusDecoder
from ptt_client.patch_orders import fresh_order, signed_patch
from ptt_client.roster_publish import roster_messages
from ptt_protocol import control, media

if TYPE_CHECKING:
    from ptt_client.client import RadioClient

ANSWER_TIMEOUT: Final = 5.0
"""Seconds to wait for the server's answer to a dispatcher operation."""


class ChannelAdminError(Exception):
    """A dispatcher operation failed; the message says why and what to do."""


# --- waiting for answers -------------------------------------------------------------------


class _Waiters:
    """Futures resolved by the client's events (one listener per client, added once).

    ``RadioClient.wait_for`` consumes the client's event queue, which the console's
    own event pump also reads; listeners see every event without taking it away.
    """

    def __init__(self, client: RadioClient) -> None:
        self._pending: list[tuple[Callable[[object], Any], asyncio.Future[Any]]] = []
        client.add_listener(self._on_event)

    def _on_event(self, event: object) -> None:
        for match, future in list(self._pending):
            if future.done():
                continue
            try:
                result = match(event)
            except Exception as exc:  # a bug in a matcher must not break the client's reader
                future.set_exception(exc)
                continue
            if result is not None:
                future.set_result(result)

    def expect(self, match: Callable[[object], Any]) -> asyncio.Future[Any]:
        """A future for the first ``match(event)`` that is not None; register before sending."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        entry = (match, future)
        self._pending.append(entry)
        future.add_done_callback(lambda _: self._pending.remove(entry))
        return future


_WAITERS: weakref.WeakKeyDictionary[RadioClient, _Waiters] = weakref.WeakKeyDictionary()


def _waiters(client: RadioClient) -> _Waiters:
    waiters = _WAITERS.get(client)
    if waiters is None:
        waiters = _WAITERS[client] = _Waiters(client)
    return waiters


async def ask(
    client: RadioClient,
    match: Callable[[object], Any],
    messages: Sequence[control.Message],
    what: str,
    timeout: float = ANSWER_TIMEOUT,
) -> Any:
    """Send ``messages``; return the first event ``match`` picks (a picked Error raises
    :class:`ChannelAdminError`).

    The waiter is registered before anything is sent, so a fast answer is not missed,
    and removed whatever happens (``ClientError`` when not connected propagates).
    """
    future = _waiters(client).expect(match)
    try:
        for message in messages:
            await client.send_message(message)
        result = await _wait(future, timeout)
    except TimeoutError:
        raise ChannelAdminError(
            f"no answer from the server to {what} within {timeout:g} s: check the connection"
            " and try again"
        ) from None
    finally:
        future.cancel()  # a no-op once resolved; otherwise the waiter goes away
    if isinstance(result, control.Error):
        raise ChannelAdminError(f"the server refused {what}: {result.text or result.code}")
    return result


async def _wait(future: asyncio.Future[Any], timeout: float) -> Any:
    async with asyncio.timeout(timeout):
        return await future


def error_event(event: object) -> control.Error | None:
    """``event`` if it is the server's Error (for :func:`ask` matchers), else None."""
    return event if isinstance(event, control.Error) else None


# --- credentials and rosters ---------------------------------------------------------------


async def send_checked(client: RadioClient, messages: Sequence[control.Message], what: str) -> None:
    """Send ``messages`` followed by a Ping; raise if the server sent an Error before the Pong.

    The server handles one connection's messages in order and answers each before reading
    the next, so everything it says about ``messages`` arrives before the Pong.
    """
    nonce = secrets.randbits(63)
    errors: list[control.Error] = []

    def until_pong(event: object) -> object:
        if isinstance(event, control.Error):
            errors.append(event)
        return event if isinstance(event, control.Pong) and event.nonce == nonce else None

    await ask(client, until_pong, [*messages, control.Ping(nonce=nonce)], what)
    if errors:
        raise ChannelAdminError(f"the server refused {what}: {errors[0].text or errors[0].code}")


async def fetch_credentials(client: RadioClient, user_ids: Iterable[str]) -> dict[str, Credential]:
    """Verified credentials of ``user_ids`` (one request for all unknown ones).

    Raises :class:`ChannelAdminError` naming the users the server does not know.
    """
    wanted = list(dict.fromkeys(user_ids))
    known = client.keyring.credentials
    missing = [u for u in wanted if u not in known]
    if missing:
        await send_checked(
            client, [control.CredentialRequest(user_ids=tuple(missing))], "the credential request"
        )
    unknown = [u for u in wanted if u not in known]
    if unknown:
        raise ChannelAdminError(
            f"no enrolled user {', '.join(repr(u) for u in unknown)} (or the credential is"
            " expired or revoked): check the user id, or enroll them with `ptt-admin enroll`"
        )
    return {u: known[u] for u in wanted}


def current_members(client: RadioClient, channel_id: int) -> tuple[str, ...]:
    """The members of ``channel_id`` on the roster this console verified (empty if none)."""
    keys = client.keyring.channels.get(channel_id)
    roster = keys.roster if keys is not None else None
    return tuple(m.user_id for m in roster.members) if roster is not None else ()


def _ordered_members(client: RadioClient, channel_id: int, members: Iterable[str]) -> list[str]:
    # Continuing members keep their place (and so their sender index), new ones go last;
    # the dispatcher itself is always on the roster.
    wanted = list(dict.fromkeys([*members, client.user_id]))
    before = [u for u in current_members(client, channel_id) if u in wanted]
    return before + [u for u in wanted if u not in before]


async def publish_roster(
    client: RadioClient,
    channel_id: int,
    user_ids: Sequence[str],
    previous_version: int,
) -> int:
    """Sign roster ``previous_version + 1`` listing ``user_ids`` (in this order = sender
    indexes), make the epoch of the same number, wrap it for every member and send it all.

    Used by the console and by ``ptt-admin`` alike, so there is one epoch-numbering rule:
    epoch N is made for roster version N (the server refuses any other envelope, and
    accepts each roster version once). A removed member gets no envelope. Returns the
    new epoch once the server has accepted the roster and every envelope.
    """
    if len(user_ids) > control.MAX_LIST_LENGTH:
        raise ChannelAdminError(
            f"{len(user_ids)} members is more than a channel can hold ({control.MAX_LIST_LENGTH})"
        )
    credentials = await fetch_credentials(client, user_ids)
    version = previous_version + 1
    roster = Roster(
        channel_id, version, tuple(Member.from_credential(credentials[u]) for u in user_ids)
    )
    try:
        messages = roster_messages(client.keyring, roster, credentials, time.time())
    except CryptoError as exc:
        raise ChannelAdminError(f"cannot rekey channel {channel_id}: {exc}") from exc
    await send_checked(client, messages, f"roster version {version} of channel {channel_id}")
    return version


async def set_members(client: RadioClient, channel_id: int, members: Iterable[str]) -> int:
    """Publish a new signed roster with ``members`` (and this dispatcher) and rekey the
    channel; returns the new epoch (see :func:`publish_roster`).

    If the channel is linked in a patch, radios stop following the patch's order at once,
    and this console (as any on the patch) then rekeys the patch's channel for the new
    members and signs a new order (``ptt_client.patch_orders.renewal``).
    """
    user_ids = _ordered_members(client, channel_id, members)
    keys = client.keyring.channels.get(channel_id)
    previous = keys.roster.version if keys is not None and keys.roster is not None else 0
    return await publish_roster(client, channel_id, user_ids, previous)


async def add_member(client: RadioClient, channel_id: int, user_id: str) -> int:
    """Put ``user_id`` on the channel's roster (a new epoch that they get too)."""
    members = current_members(client, channel_id)
    if user_id in members:
        raise ChannelAdminError(f"{user_id!r} is already on channel {channel_id}")
    return await set_members(client, channel_id, [*members, user_id])


async def remove_member(client: RadioClient, channel_id: int, user_id: str) -> int:
    """Take ``user_id`` off the roster and rekey: they get no key for the new epoch."""
    members = current_members(client, channel_id)
    if user_id not in members:
        raise ChannelAdminError(f"{user_id!r} is not on channel {channel_id}")
    if user_id == client.user_id:
        raise ChannelAdminError(
            "a dispatcher stays on the channels it manages: ask another dispatcher to remove you"
        )
    return await set_members(client, channel_id, [u for u in members if u != user_id])


# --- channels and patches -----------------------------------------------------------------


async def create_channel(
    client: RadioClient,
    name: str,
    members: Iterable[str],
    temporary: bool = False,
    *,
    include_self: bool = True,
) -> int:
    """Create channel ``name`` with ``members`` (roster v1, epoch 1); returns its id.

    A dispatcher console stays on the channels it makes (``include_self``); the org
    authority (``ptt-admin``) keys channels without being on them. Raises
    :class:`ChannelAdminError` before anything is created if a member is unknown or may
    not get the key, or with the server's reason if it refuses (a channel of that name
    exists).
    """
    wanted = [*members, client.user_id] if include_self else list(members)
    user_ids = list(dict.fromkeys(wanted))
    if not name.strip():
        raise ChannelAdminError("a channel needs a name")
    # Every member must be known and valid before the channel exists: bad input changes nothing.
    credentials = await fetch_credentials(client, user_ids)
    revocations = client.keyring.trust
    for user_id, credential in credentials.items():
        try:
            revocations.verify_credential(credential, time.time())
        except CryptoError as exc:
            raise ChannelAdminError(f"cannot give {user_id!r} the channel key: {exc}") from exc
    created: control.ChannelCreated = await ask(
        client,
        lambda e: e if isinstance(e, control.ChannelCreated) and e.name == name else error_event(e),
        [control.ChannelCreate(name=name, temporary=temporary)],
        f"creating channel {name!r}",
    )
    await publish_roster(client, created.channel_id, user_ids, 0)
    return created.channel_id


async def patch(client: RadioClient, channels: Sequence[int]) -> int:
    """Link ``channels`` (MCPTT group regroup, a TETRA patch) and return the patch's channel.

    Nobody leaves their own channel. A temporary channel named after the linked ones gets a
    roster with all their members and its own epoch (keys stay per channel), and the server
    tells every member's radio, which listens on it as well and talks there while the patch
    lasts; alerts stay on the channel they are raised on. :func:`unpatch` ends it.
    """
    linked = list(dict.fromkeys(channels))
    if len(linked) < 2:
        raise ChannelAdminError("patch two or more different channels")
    if len(linked) > control.MAX_PATCHED:
        raise ChannelAdminError(f"a patch links at most {control.MAX_PATCHED} channels")
    names: list[str] = []
    union: list[str] = []
    for channel_id in linked:
        name, listed = client.channels.get(channel_id), current_members(client, channel_id)
        if name is None or not listed:
            raise ChannelAdminError(
                f"channel {channel_id} is not one this console knows the roster of: monitor it first"
            )
        names.append(name)
        union += listed
    members = list(dict.fromkeys(union))
    incident = await create_channel(client, "+".join(names), members, temporary=True)
    what = f"the patch of {' and '.join(names)}"
    try:
        try:
            order = fresh_order(incident, linked, client.keyring, time.time())
        except PatchError as exc:
            raise ChannelAdminError(f"cannot sign {what}: {exc}") from exc
        await send_checked(client, [signed_patch(order, client.keys, client.credential)], what)
    except ChannelAdminError:
        await delete_channel(client, incident)  # not left behind as a channel nobody uses
        raise
    return incident


async def unpatch(client: RadioClient, patch_channel: int) -> None:
    """End a patch: radios leave the patch's channel (each is still on its own), which is deleted."""
    await send_checked(
        client, [control.Unpatch(channel_id=patch_channel)], f"ending patch {patch_channel}"
    )
    await delete_channel(client, patch_channel)


async def delete_channel(client: RadioClient, channel_id: int) -> None:
    """Delete a channel (refused while it is in a patch or has an active emergency)."""
    name = client.channels.get(channel_id, str(channel_id))
    await send_checked(
        client, [control.ChannelDelete(channel_id=channel_id)], f"deleting channel {name}"
    )


# --- instant recall ------------------------------------------------------------------------


async def recall(client: RadioClient, channel_id: int, limit: int = 10) -> list[control.BurstInfo]:
    """The last ``limit`` talk bursts of a channel, newest first."""
    limit = max(1, min(limit, 100))
    answer: control.RecallList = await ask(
        client,
        lambda e: (
            e
            if isinstance(e, control.RecallList) and e.channel_id == channel_id
            else error_event(e)
        ),
        [control.RecallList(channel_id=channel_id, limit=limit)],
        f"the recall of channel {channel_id}",
    )
    return list(answer.bursts)


async def recall_frames(
    client: RadioClient, channel_id: int, burst_key: int
) -> list[control.RecalledFrame]:
    """Every recorded (still sealed) frame of one burst, in sequence order."""
    frames: list[control.RecalledFrame] = []

    def collect(event: object) -> object:
        if (
            isinstance(event, control.RecallFrames)
            and event.channel_id == channel_id
            and event.burst_key == burst_key
        ):
            frames.extend(event.frames)
            return event if event.last else None
        return error_event(event)

    await ask(
        client,
        collect,
        [control.RecallFrames(channel_id=channel_id, burst_key=burst_key)],
        f"the frames of burst {burst_key}",
    )
    return sorted(frames, key=lambda f: f.sequence)


@dataclass(frozen=True)
class OpenedBurst:
    """A recalled burst opened with the console's own keys."""

    burst: control.BurstInfo
    opus: tuple[bytes, ...]
    """The voice frames that opened, in sequence order."""
    refused: int
    """Frames that did not open (unknown epoch, wrong sender, tampered)."""


def open_recalled(
    client: RadioClient,
    channel_id: int,
    burst: control.BurstInfo,
    frames: Sequence[control.RecalledFrame],
    now: float | None = None,
) -> OpenedBurst:
    """Decrypt recalled frames with the epoch keys this console holds (the server never could).

    A fresh :class:`FrameOpener` is used, so frames already heard live are not refused as
    replays. The talker's sender index is taken from the current roster: :func:`set_members`
    keeps continuing members in place, so it only differs for bursts from before a member
    ahead of the talker was removed (those frames are counted as refused).
    """
    now = time.time() if now is None else now
    keys = client.keyring.channels.get(channel_id)
    if keys is None or not keys.epochs or keys.roster is None:
        raise ChannelAdminError(
            f"this console holds no key for channel {channel_id}: it cannot open the recording"
        )
    roster = keys.roster
    opener = FrameOpener(live=False)
    epochs: list[EpochKey] = [keys.epochs[e] for e in sorted(keys.epochs)]
    for key in epochs:
        opener.add_epoch(key, now)
    member = roster.member(burst.talker)
    index = roster.sender_index(burst.talker) if member is not None else -1
    opus: list[bytes] = []
    refused = 0
    for frame in frames:
        if frame.flags & media.SIGNATURE:
            continue
        header = media.pack_inner(channel_id, burst.burst_id, frame.sequence, frame.flags, b"")
        try:
            opus.append(opener.open(header, frame.frame, index, now, burst=burst.burst_id))
        except CryptoError:
            refused += 1
    return OpenedBurst(burst, tuple(opus), refused)


async def replay(opened: OpenedBurst, output: AudioOutput, *, frame_ms: int = 20) -> int:
    """Play an opened burst on ``output`` in real time; returns the frames played."""
    decoder = OpusDecoder()
    loop = asyncio.get_running_loop()
    start = loop.time()
    played = 0
    for n, packet in enumerate(opened.opus):
        try:
            pcm = decoder.decode(packet)
        except ValueError:
            pcm = decoder.conceal()
        output.write(pcm)
        played += 1
        delay = start + (n + 1) * frame_ms / 1000 - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
    return played
