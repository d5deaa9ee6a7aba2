"""The client's end-to-end keys: rosters, epoch keys, credentials, and what is sealed with them.

Everything that decides whether audio or text is trusted happens here, on the
device: rosters are accepted only from dispatchers the org root certified,
epoch keys only from envelopes addressed to this device, voice frames only
under a known epoch and from the member who holds the floor, and a talker is
shown as verified only after its burst signature checks.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from crypto import text as sealed_text
from crypto.bundle import CredentialBundle
from crypto.epoch import (
    EpochKey,
    check_epoch_creator,
    open_envelope,
    read_envelope_creator,
    read_envelope_header,
)
from crypto.errors import CryptoError, ForgedFrameError
from crypto.identity import Credential, DeviceKeys, TrustAnchor
from crypto.keyring import FrameOpener, FrameSealer
from crypto.roster import Roster, RosterState
from crypto.talker import BurstSigner, BurstVerifier
from ptt_client import events
from ptt_protocol import control, media
from ptt_protocol.errors import ProtocolError

log = logging.getLogger(__name__)

_LOCATION = struct.Struct("!dd")
EARLY_FRAME_LIMIT = 50
"""Frames kept while waiting for their burst's FloorTaken (one second of audio)."""
EARLY_FRAME_TTL = 2.0
"""Seconds an early frame waits for its FloorTaken before it is dropped unheard."""
WAITING_ENVELOPE_LIMIT = 4
"""Envelopes kept per channel while their roster has not arrived."""


@dataclass
class ChannelKeys:
    """One channel's roster, epoch keys and frame state, as this device holds them."""

    roster_state: RosterState
    rosters: dict[int, Roster] = field(default_factory=dict)
    """Every accepted roster by version: an epoch's sender indexes come from its own roster."""
    epochs: dict[int, EpochKey] = field(default_factory=dict)
    current_epoch: int = 0
    sealer: FrameSealer | None = None
    opener: FrameOpener | None = None
    signer: BurstSigner | None = None
    verifier: tuple[str, int, BurstVerifier] | None = None
    """(talker, burst id, verifier) of the burst being heard: one burst at a time per channel."""
    expected_talker: str | None = None
    expected_burst: int = 0
    early_frames: list[tuple[bytes, float]] = field(default_factory=list)
    """Frames of a burst whose FloorTaken has not arrived yet, with their arrival time."""
    waiting_envelopes: dict[int, bytes] = field(default_factory=dict)
    """Envelopes that arrived before their roster, by roster version (bounded)."""

    @property
    def roster(self) -> Roster | None:
        return self.roster_state.current


class Keyring:
    """This device's view of every channel's keys; pure except for an asyncio.Event for waiters."""

    def __init__(
        self, bundle: CredentialBundle, keys: DeviceKeys, clock: Callable[[], float]
    ) -> None:
        self.keys = keys
        self.trust = TrustAnchor(bundle.root_public_key)
        self.credential = Credential.from_bytes(bundle.credential)
        self.credentials: dict[str, Credential] = {self.credential.user_id: self.credential}
        self.credentials_changed = asyncio.Event()
        self.channels: dict[int, ChannelKeys] = {}
        self._clock = clock

    def _channel(self, channel_id: int) -> ChannelKeys:
        keys = self.channels.get(channel_id)
        if keys is None:
            keys = ChannelKeys(RosterState(channel_id))
            self.channels[channel_id] = keys
        return keys

    # --- trust material from the server ------------------------------------------------------

    def accept_revocations(self, signed: bytes) -> None:
        try:
            self.trust.verify_revocations(signed)
        except CryptoError as exc:
            log.warning("revocation list refused: %s", exc)

    def add_credentials(self, blobs: Iterable[bytes], now: float) -> None:
        for blob in blobs:
            try:
                credential = self.trust.verify_credential(blob, now)
            except CryptoError as exc:
                log.warning("credential refused: %s", exc)
                continue
            self.credentials[credential.user_id] = credential
        self.credentials_changed.set()

    def accept_roster(self, channel_id: int, signed: bytes, now: float) -> list[object]:
        """Accept a signed roster; returns the events (KeysUpdated, and the outcome of an
        envelope that was waiting for this roster)."""
        channel = self._channel(channel_id)
        try:
            roster = channel.roster_state.accept(signed, self.trust, now)
        except CryptoError as exc:
            log.warning("roster for channel %s refused: %s", channel_id, exc)
            return []
        channel.rosters[roster.version] = roster
        self._rebuild_opener(channel)
        found: list[object] = [
            events.KeysUpdated(channel_id, channel.current_epoch, roster.version)
        ]
        waiting = channel.waiting_envelopes.pop(roster.version, None)
        if waiting is not None:
            found.extend(self.accept_envelope(channel_id, waiting, now))
        return found

    def accept_envelope(self, channel_id: int, envelope: bytes, now: float) -> list[object]:
        """Check and install an epoch key; returns the events to report (never raises).

        The epoch must be made for a roster this device accepted, by someone allowed to
        key that channel (:func:`crypto.epoch.check_epoch_creator`); a second, different
        key for an epoch already held is refused and changes nothing.
        """
        channel = self._channel(channel_id)
        try:
            header = read_envelope_header(envelope)
        except CryptoError as exc:
            return [events.EpochRefused(channel_id, 0, "", f"not a key envelope: {exc}")]
        roster = channel.rosters.get(header.roster_version)
        if roster is None:
            # The server sends a roster before its envelopes; one that overtook its roster
            # (or came for a roster still to arrive) waits for it, bounded.
            if header.roster_version > (channel.roster.version if channel.roster else 0):
                channel.waiting_envelopes[header.roster_version] = envelope
                while len(channel.waiting_envelopes) > WAITING_ENVELOPE_LIMIT:
                    del channel.waiting_envelopes[min(channel.waiting_envelopes)]
            return []
        try:
            key = open_envelope(
                envelope, self.keys, self.credential, self.trust, now, roster=roster
            )
            creator = read_envelope_creator(envelope)
            check_epoch_creator(creator, roster)
        except CryptoError as exc:
            log.warning("key envelope for channel %s refused: %s", channel_id, exc)
            return [events.EpochRefused(channel_id, header.epoch, header.creator, str(exc))]
        if key.channel_id != channel_id:
            reason = f"the envelope is for channel {key.channel_id}, not {channel_id}"
            return [events.EpochRefused(channel_id, key.epoch, creator.user_id, reason)]
        held = channel.epochs.get(key.epoch)
        if held is not None:
            if held.secret == key.secret:
                return []  # the same key again (a resend after reconnect)
            reason = (
                f"a second, different key for epoch {key.epoch} (the first one is kept):"
                " ask a dispatcher to rekey the channel"
            )
            return [events.EpochRefused(channel_id, key.epoch, creator.user_id, reason)]
        if key.epoch < channel.current_epoch:
            return []  # older than the epoch in force: too late to matter
        channel.epochs[key.epoch] = key
        if key.epoch > channel.current_epoch:
            channel.current_epoch = key.epoch
        try:
            self._rebuild_opener(channel)
        except CryptoError as exc:  # never seen; the checks above keep the keys consistent
            log.error("epoch %s of channel %s not installed: %s", key.epoch, channel_id, exc)
            del channel.epochs[key.epoch]
            return [events.EpochRefused(channel_id, key.epoch, creator.user_id, str(exc))]
        current = channel.roster
        return [
            events.EpochInstalled(
                channel_id,
                key.epoch,
                creator.user_id,
                creator.display_name,
                creator.role.value,
            ),
            events.KeysUpdated(
                channel_id, channel.current_epoch, current.version if current else 0
            ),
        ]

    def _rebuild_opener(self, channel: ChannelKeys) -> None:
        # Installed at receivers first; senders switch to the new epoch a moment later
        # (FrameSealer.rekey's delay), so a burst in progress is not cut.
        now = self._clock()
        if channel.opener is None:
            channel.opener = FrameOpener()
        for epoch in sorted(channel.epochs):
            key = channel.epochs[epoch]
            roster = channel.rosters.get(key.roster_version)
            if roster is not None:
                channel.opener.add_epoch(key, now, roster)
        key = channel.epochs.get(channel.current_epoch)
        roster = channel.rosters.get(key.roster_version) if key is not None else None
        if key is None or roster is None or roster.member(self.credential.user_id) is None:
            return
        index = roster.sender_index(self.credential.user_id)
        if channel.sealer is None:
            # Counters must never repeat under one key, even across a restart of this
            # program within an epoch: start from the wall clock in milliseconds,
            # shifted so 4096 frames per millisecond fit before the next start.
            channel.sealer = FrameSealer(key, index, first_counter=int(now * 1000) << 12)
        else:
            channel.sealer.rekey(key, index, now)

    def unknown_members(self, channel_id: int) -> list[str]:
        """Members of the channel's roster whose credential this device does not hold yet."""
        channel = self.channels.get(channel_id)
        roster = channel.roster if channel is not None else None
        if roster is None:
            return []
        return [m.user_id for m in roster.members if m.user_id not in self.credentials]

    def epoch_key(self, channel_id: int) -> EpochKey:
        channel = self.channels.get(channel_id)
        if channel is None or channel.current_epoch not in channel.epochs:
            raise CryptoError(
                f"no key for channel {channel_id} yet: wait for the dispatcher's envelope"
            )
        return channel.epochs[channel.current_epoch]

    # --- texts and locations -----------------------------------------------------------------

    def seal_channel_text(self, channel_id: int, text: str, message_id: bytes) -> bytes:
        return sealed_text.seal_channel_text(
            self.epoch_key(channel_id),
            text,
            self.keys,
            self.credential,
            self._clock(),
            message_id=message_id,
        )

    def seal_direct_text(self, recipient: Credential, text: str, message_id: bytes) -> bytes:
        return sealed_text.seal_direct_text(
            recipient, text, self.keys, self.credential, self._clock(), message_id=message_id
        )

    def open_text(self, message: control.TextDeliver, sender: Credential) -> str:
        now = self._clock()
        if message.to_channel is not None:
            header = sealed_text.read_sealed_header(message.sealed)
            channel = self.channels.get(message.to_channel)
            key = channel.epochs.get(header.epoch or 0) if channel is not None else None
            if key is None:
                raise CryptoError(
                    f"no key for epoch {header.epoch} of channel {message.to_channel}"
                )
            roster = channel.rosters.get(key.roster_version) if channel is not None else None
            return sealed_text.open_channel_text(
                message.sealed, key, sender, self.trust, now, roster=roster
            ).text
        return sealed_text.open_direct_text(
            message.sealed, self.keys, self.credential, sender, self.trust, now
        ).text

    def seal_location(
        self, channel_id: int | None, lat: float | None, lon: float | None
    ) -> bytes | None:
        """A position sealed under the channel's epoch key (dispatchers on the roster open it)."""
        if channel_id is None or lat is None or lon is None:
            return None
        try:
            key = self.epoch_key(channel_id)
        except CryptoError:
            return None
        return sealed_text.seal_for_channel(
            key,
            sealed_text.LABEL_LOCATION,
            _LOCATION.pack(lat, lon),
            self.keys,
            self.credential,
            self._clock(),
        )

    def open_location(self, sealed: bytes, sender: Credential) -> tuple[float, float]:
        header = sealed_text.read_sealed_header(sealed)
        channel = self.channels.get(header.channel_id or 0)
        key = channel.epochs.get(header.epoch or 0) if channel is not None else None
        if key is None:
            raise CryptoError("no key to open this location")
        assert channel is not None
        message = sealed_text.open_for_channel(
            sealed,
            sealed_text.LABEL_LOCATION,
            key,
            sender,
            self.trust,
            self._clock(),
            roster=channel.rosters.get(key.roster_version),
        )
        lat, lon = _LOCATION.unpack(message.payload)
        return lat, lon

    # --- voice -------------------------------------------------------------------------------

    def start_burst(self, channel_id: int, burst_id: int, now: float) -> None:
        channel = self._channel(channel_id)
        channel.signer = BurstSigner(self.keys, channel_id, burst_id, now)

    def expect_talker(
        self, channel_id: int, talker: str, burst_id: int, now: float
    ) -> list[object]:
        """``talker`` holds the floor in burst ``burst_id`` (FloorTaken); returns the events of
        frames of that burst that arrived before the FloorTaken did."""
        channel = self._channel(channel_id)
        channel.expected_talker = talker
        channel.expected_burst = burst_id
        early = [inner for inner, at in channel.early_frames if now - at <= EARLY_FRAME_TTL]
        channel.early_frames.clear()
        opened: list[object] = []
        for inner in early:
            opened.extend(self.open_media(inner, now, {}))
        return opened

    def seal_voice(
        self, channel_id: int, burst_id: int, sequence: int, flags: int, opus: bytes, now: float
    ) -> bytes:
        """The inner bytes of one voice frame: SFrame-sealed Opus, bound to the inner header."""
        channel = self.channels.get(channel_id)
        if channel is None or channel.sealer is None:
            raise CryptoError(f"no key to talk on channel {channel_id} yet")
        header = media.pack_inner(channel_id, burst_id, sequence, flags, b"")
        frame = channel.sealer.seal(header, opus, now)
        if channel.signer is not None:
            channel.signer.add(sequence, frame)
        return header + frame

    def signature_due(self, channel_id: int, now: float) -> bool:
        channel = self.channels.get(channel_id)
        return channel is not None and channel.signer is not None and channel.signer.due(now)

    def seal_signature(
        self, channel_id: int, burst_id: int, sequence: int, end: bool, now: float
    ) -> bytes | None:
        channel = self.channels.get(channel_id)
        if channel is None or channel.signer is None:
            return None
        statement = channel.signer.sign(now, end=end)
        flags = media.SIGNATURE | (media.END_OF_BURST if end else 0)
        return media.pack_inner(channel_id, burst_id, sequence, flags, statement)

    def open_media(self, inner: bytes, now: float, floors: dict[int, Any]) -> list[object]:
        """Check and open one received inner frame; returns the events to report."""
        try:
            frame = media.unpack_inner(inner)
        except ProtocolError:
            return [events.VoiceRejected(0, "malformed inner frame")]
        channel = self.channels.get(frame.channel_id)
        if channel is None or channel.opener is None or channel.roster is None:
            return [events.VoiceRejected(frame.channel_id, "no key for this channel")]
        talker = channel.expected_talker
        if talker is None or frame.burst_id != channel.expected_burst:
            # UDP can overtake the FloorTaken on the WebSocket: keep the frame briefly and
            # open it when the control plane names the talker of this burst.
            del channel.early_frames[: max(0, len(channel.early_frames) - EARLY_FRAME_LIMIT + 1)]
            channel.early_frames.append((inner, now))
            return []
        roster = channel.roster
        member = roster.member(talker)
        credential = self.credentials.get(talker)
        if member is None:
            return [events.VoiceRejected(frame.channel_id, f"{talker} is not on the roster")]
        if credential is not None and credential.fingerprint() != member.credential_fingerprint:
            # Another device of this user than the one the roster pins: not the talker.
            return [
                events.VoiceRejected(
                    frame.channel_id, f"{talker}'s credential is not the one on the roster"
                )
            ]
        header = media.inner_header(inner)
        current = channel.verifier
        verifier = (
            current[2] if current is not None and current[:2] == (talker, frame.burst_id) else None
        )
        if verifier is None and credential is not None:
            verifier = BurstVerifier(credential, frame.channel_id, frame.burst_id)
            channel.verifier = (talker, frame.burst_id, verifier)
        if frame.flags & media.SIGNATURE:
            if verifier is None:
                return []
            try:
                verifier.check(frame.frame)
            except ForgedFrameError as exc:
                # The talker's own signature says frames already played were not theirs.
                # Audio plays before its statement arrives, so it cannot be un-played: the
                # "verified" mark is withdrawn and the listener warned instead.
                return [events.ForgedAudio(frame.channel_id, talker, frame.burst_id, str(exc))]
            except CryptoError as exc:
                # A statement that does not verify proves nothing about the audio.
                return [events.VoiceRejected(frame.channel_id, f"burst signature refused: {exc}")]
            return [
                events.TalkerVerified(
                    frame.channel_id,
                    talker,
                    credential.display_name if credential else talker,
                    frame.burst_id,
                )
            ]
        try:
            opus = channel.opener.open(header, frame.frame, talker, now)
        except CryptoError as exc:
            return [events.VoiceRejected(frame.channel_id, f"frame refused: {exc}")]
        if verifier is not None:
            verifier.add(frame.sequence, frame.frame)
        view = floors.get(frame.channel_id)
        return [
            events.VoiceFrame(
                channel_id=frame.channel_id,
                talker=talker,
                burst_id=frame.burst_id,
                sequence=frame.sequence,
                opus=opus,
                end_of_burst=bool(frame.flags & media.END_OF_BURST),
                priority=getattr(view, "priority", 0),
                received_at=now,
            )
        ]
