"""The org authority logged in to the relay: a :class:`RadioClient` with the admin credential.

Everything ``ptt-admin`` changes goes over this control connection as signed objects;
the relay checks them against the org root and applies them at once. What the relay
says back (the directory of users and channels) is verified here before it is used:
credentials against the root, rosters against their signers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from crypto.errors import CryptoError
from crypto.identity import Credential, RevocationList, TrustAnchor
from crypto.roster import Roster, RosterState
from ptt_admin.authority import AdminError, Authority, RelayUnreachable
from ptt_admin.ledger import Ledger
from ptt_client import events
from ptt_client.channel_admin import ChannelAdminError, ask, error_event, send_checked
from ptt_client.client import RadioClient
from ptt_protocol import control

CONNECT_TIMEOUT = 10.0
"""Seconds to reach and log in to the relay before giving up."""


@dataclass(frozen=True, slots=True)
class UserEntry:
    """An enrolled user, as the relay holds it, with its credential verified here."""

    credential: Credential
    revoked: bool
    online: bool

    @property
    def user_id(self) -> str:
        return self.credential.user_id


@dataclass(frozen=True, slots=True)
class ChannelEntry:
    """A channel and its verified roster (None before the first)."""

    channel_id: int
    name: str
    roster: Roster | None

    @property
    def members(self) -> tuple[str, ...]:
        return tuple(m.user_id for m in self.roster.members) if self.roster else ()

    @property
    def version(self) -> int:
        """Roster version; the current epoch has the same number."""
        return self.roster.version if self.roster else 0


@dataclass(frozen=True, slots=True)
class Directory:
    """Every enrolled user and every channel."""

    users: dict[str, UserEntry]
    channels: dict[str, ChannelEntry]
    """By channel name."""

    def user(self, user_id: str) -> UserEntry | None:
        return self.users.get(user_id)

    def channel(self, name: str) -> ChannelEntry:
        found = self.channels.get(name)
        if found is None:
            raise AdminError(
                f"no channel {name!r}: create it with `ptt-admin channel create {name} --members"
                " USER,...` (`ptt-admin channel list` shows the existing ones)"
            )
        return found


class AdminSession:
    """The authority's logged-in connection; use :func:`connect`."""

    def __init__(self, authority: Authority, client: RadioClient) -> None:
        self.authority = authority
        self.client = client

    async def directory(self, now: float) -> Directory:
        """Ask the relay for its users and channels; verify every credential and roster."""
        parts: list[control.Directory] = []

        def collect(event: object) -> object:
            if isinstance(event, control.Directory):
                parts.append(event)
                return event if event.last else None
            return error_event(event)

        await self.ask(collect, [control.DirectoryRequest()], "the directory request")
        anchor = self.client.keyring.trust
        ledger = Ledger.load(self.authority.files.directory)
        # Signature check only (expired users are listed too): an anchor without the
        # revocation list, asked at the credential's own start of validity.
        signature_only = TrustAnchor(self.authority.root.public_key_bytes())
        users: dict[str, UserEntry] = {}
        channels: dict[str, ChannelEntry] = {}
        for part in parts:
            for user in part.users:
                try:
                    credential = Credential.from_bytes(user.credential)
                    signature_only.verify_credential(credential, credential.not_before)
                except CryptoError:
                    continue  # not the root's: the relay cannot make credentials
                pinned = ledger.users.get(credential.user_id)
                if pinned is not None and pinned != credential.fingerprint().hex():
                    # Not the device this authority enrolled last (an older one the relay
                    # kept or restored): never given a key.
                    continue
                users[credential.user_id] = UserEntry(credential, user.revoked, user.online)
                try:
                    anchor.verify_credential(credential, now)
                except CryptoError:
                    continue  # expired or revoked: never handed a channel key
                self.client.keyring.credentials[credential.user_id] = credential
            for channel in part.channels:
                roster = None
                if channel.signed_roster is not None:
                    try:
                        roster = RosterState(channel.channel_id).accept(
                            channel.signed_roster, anchor, now
                        )
                    except CryptoError as exc:
                        raise AdminError(
                            f"the relay's roster of channel {channel.name!r} does not verify"
                            f" ({exc}): the relay's database was altered; restore it from backup"
                        ) from exc
                known = ledger.channels.get(channel.name)
                if known is not None and known != channel.channel_id:
                    raise AdminError(
                        f"the relay says channel {channel.name!r} is id {channel.channel_id},"
                        f" but this authority created it as id {known}: the relay's database"
                        " was altered; restore it from backup"
                    )
                signed = ledger.rosters.get(channel.channel_id, 0)
                if (roster.version if roster is not None else 0) < signed:
                    raise AdminError(
                        f"the relay holds roster version {roster.version if roster else 0} of"
                        f" channel {channel.name!r}, but this authority signed version {signed}:"
                        " the relay's database is older (restored from a backup?); restore"
                        " the newest backup, or rekey from a console that holds the newest roster"
                    )
                channels[channel.name] = ChannelEntry(channel.channel_id, channel.name, roster)
        return Directory(users, channels)

    async def ask(self, match: object, messages: list[control.Message], what: str) -> object:
        try:
            return await ask(self.client, match, messages, what)  # type: ignore[arg-type]
        except ChannelAdminError as exc:
            raise AdminError(str(exc)) from None

    async def send_checked(self, messages: list[control.Message], what: str) -> None:
        try:
            await send_checked(self.client, messages, what)
        except ChannelAdminError as exc:
            raise AdminError(str(exc)) from None


@contextlib.asynccontextmanager
async def connect(authority: Authority) -> AsyncIterator[AdminSession]:
    """Log in to the pinned relay as the org authority; log out at the end."""
    bundle = authority.admin_bundle()
    client = RadioClient(bundle, authority.admin_keys, use_udp=False)
    outcome: asyncio.Future[object] = asyncio.get_running_loop().create_future()

    def on_event(event: object) -> None:
        first = events.Connected | events.LoginRefused | events.Disconnected
        if isinstance(event, first) and not outcome.done():
            outcome.set_result(event)

    client.add_listener(on_event)
    await client.start()
    try:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                result = await outcome
        except TimeoutError:
            raise RelayUnreachable(
                f"cannot reach the relay at {bundle.server_url} within {CONNECT_TIMEOUT:g} s:"
                " is `ptt-server` running, and is the URL right (`ptt-admin pin`)?"
            ) from None
        if isinstance(result, events.LoginRefused):
            raise AdminError(f"the relay refused the admin login: {result.text}")
        if isinstance(result, events.Disconnected):
            raise RelayUnreachable(
                f"cannot reach the relay at {bundle.server_url} ({result.reason}): is"
                " `ptt-server` running, and is the URL right (`ptt-admin pin`)?"
            )
        # The server pushes its revocation list at login: be sure it is applied, and give a
        # relay that lost a newer one (restored from a backup) the one this authority signed.
        await client.ping_server()
        session = AdminSession(authority, client)
        mine = Ledger.load(authority.files.directory).revocations
        if mine is not None:
            theirs = client.keyring.trust.revocations
            signed = RevocationList.from_bytes(mine)
            if theirs is None or theirs.version < signed.version:
                await session.send_checked(
                    [control.RevocationUpdate(signed_list=mine)], "the authority's revocation list"
                )
                client.keyring.trust.verify_revocations(signed)
        yield session
    finally:
        client.remove_listener(on_event)
        await client.stop()
