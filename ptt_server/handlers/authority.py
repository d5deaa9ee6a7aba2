"""What the org authority (``ptt-admin``, role admin) may ask of the relay.

The authority holds the org root on its own machine and sends the relay only
signed objects: root-issued credentials (:class:`control.Enroll`), root-signed
revocation lists (:class:`control.RevocationUpdate`), and the rosters and
envelopes every key manager sends. The relay checks each signature against the
pinned ``root.pub``, stores what it is given and applies it at once (no polling):
it can refuse an object, never make one.

Handlers take the server, the session, the message and ``now``, and raise
:class:`ptt_server.policy.Refused` to answer with an Error. That only the authority (role
admin) sends these is decided before, by :data:`ptt_server.policy.RULES`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from crypto.errors import CryptoError
from crypto.identity import Credential, RevocationList, TrustAnchor
from ptt_protocol import control
from ptt_server.cluster import news
from ptt_server.policy import Refused
from ptt_server.sessions import Session
from ptt_server.store import User

if TYPE_CHECKING:
    from ptt_server.server import RelayServer

log = logging.getLogger("ptt_server")

DIRECTORY_PART_BYTES = 48 * 1024
"""Payload bytes per Directory message: well under the 64 KiB frame limit."""


async def on_enroll(server: RelayServer, session: Session, msg: control.Enroll, now: float) -> None:
    """Store a root-issued credential as its user's one device; the old device is cut off."""
    wall = time.time()
    try:
        credential = server.trust.verify_credential(msg.credential, wall)
    except CryptoError as exc:
        raise Refused(control.ERROR_FORBIDDEN, f"credential refused: {exc}") from None
    if credential.user_id == session.user_id:
        raise Refused(
            control.ERROR_FORBIDDEN,
            f"{credential.user_id!r} is the org authority's own user id: enroll people under"
            " another one",
        )
    users = await server.store.list_users()
    owner = next(
        (
            u
            for u in users
            if u.device_id == credential.device_id and u.user_id != credential.user_id
        ),
        None,
    )
    if owner is not None:
        raise Refused(
            control.ERROR_FORBIDDEN,
            f"device {credential.device_id!r} belongs to {owner.user_id!r}: give another device id",
        )
    previous = next((u for u in users if u.user_id == credential.user_id), None)
    await server.store.put_user(User.from_credential(credential, wall))
    replaced = ""
    if previous is not None and previous.fingerprint != credential.fingerprint():
        replaced = previous.device_id
        end_replaced_session(server, credential.user_id, credential.fingerprint())
        news.publish(server, news.ENROLLED, news.EnrolledNews(user_id=credential.user_id))
    log.info(
        "enrolled",
        extra={
            "fields": {
                "user": credential.user_id,
                "device": credential.device_id,
                "by": session.user_id,
            }
        },
    )
    session.send(
        control.Enrolled(
            user_id=credential.user_id, device_id=credential.device_id, replaced_device=replaced
        )
    )


def end_replaced_session(server: RelayServer, user_id: str, enrolled: bytes) -> None:
    """``user_id`` was enrolled with the device of fingerprint ``enrolled``: a live session
    here of another device of that user ends, telling it why."""
    live = server.sessions.by_user.get(user_id)
    if live is not None and live.credential.fingerprint() != enrolled:
        live.send(
            control.Error(
                code=control.ERROR_AUTH_FAILED,
                text=f"this device of {user_id!r} was replaced by a new"
                " enrolment: ask your operator for the new credential bundle",
            )
        )
        live.close("device replaced by a new enrolment")


async def on_revocations(
    server: RelayServer, session: Session, msg: control.RevocationUpdate, now: float
) -> None:
    """Store and apply a newer root-signed revocation list: revoked sessions end now."""
    current = server.trust.revocations
    # Verified on a copy first: the live trust anchor changes only once the list is stored,
    # so a failed write leaves memory and disk agreeing.
    probe = TrustAnchor(server.trust_root, current)
    try:
        revocations = probe.verify_revocations(msg.signed_list)
    except CryptoError as exc:
        raise Refused(control.ERROR_FORBIDDEN, f"revocation list refused: {exc}") from None
    if current is not None and revocations.version == current.version:
        return  # the same list again
    users = await server.store.list_users()
    revoked_users = [u.user_id for u in users if _revokes(revocations, u)]
    await server.store.put_revocations(
        revocations.version, revocations.to_bytes(), revoked_users, revocations.serials
    )
    server.apply_revocations(revocations)
    news.publish(server, news.REVOCATIONS, news.RevocationNews(signed_list=revocations.to_bytes()))


def _revokes(revocations: RevocationList, user: User) -> bool:
    try:
        return revocations.revokes(Credential.from_bytes(user.credential))
    except CryptoError:
        return False


async def on_directory(
    server: RelayServer, session: Session, msg: control.DirectoryRequest, now: float
) -> None:
    """Every enrolled user and every channel with its signed roster, in size-bounded parts."""
    revoked = server.trust.revocations
    users = [
        control.DirectoryUser(
            credential=u.credential,
            revoked=revoked is not None and _revokes(revoked, u),
            online=u.user_id in server.sessions.by_user,
        )
        for u in await server.store.list_users()
    ]
    channels = [
        control.DirectoryChannel(
            channel_id=c.channel_id, name=c.name, signed_roster=c.signed_roster
        )
        for c in server.channels.values()
    ]
    for part in _directory_parts(users, channels):
        session.send(part)


def _directory_parts(
    users: list[control.DirectoryUser], channels: list[control.DirectoryChannel]
) -> Iterator[control.Directory]:
    part_users: list[control.DirectoryUser] = []
    part_channels: list[control.DirectoryChannel] = []
    size = 0

    def cut(last: bool) -> control.Directory:
        nonlocal size
        part = control.Directory(users=tuple(part_users), channels=tuple(part_channels), last=last)
        part_users.clear()
        part_channels.clear()
        size = 0
        return part

    for user in users:
        if size + len(user.credential) > DIRECTORY_PART_BYTES or len(part_users) >= 900:
            yield cut(last=False)
        part_users.append(user)
        size += len(user.credential) + 16
    for channel in channels:
        weight = len(channel.signed_roster or b"") + len(channel.name) + 16
        if part_users or part_channels:
            if size + weight > DIRECTORY_PART_BYTES or len(part_channels) >= 900:
                yield cut(last=False)
        part_channels.append(channel)
        size += weight
    yield cut(last=True)
