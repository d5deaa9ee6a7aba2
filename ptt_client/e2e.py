"""The client's end-to-end keys: rosters, epoch keys, credentials, and what is sealed with them.

Everything that decides whether audio or text is trusted happens here, on the
device: rosters are accepted only from dispatchers the org root certified,
epoch keys only from envelopes addressed to this device, voice frames only
under a known epoch, of the burst floor control named and from the member who
holds the floor, and a talker is shown as verified only while every frame
played as theirs is covered by their burst signature within a short bound
(:mod:`ptt_client.bursts`).
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
from crypto.talker import BurstSigner, BurstVerifier, FrameStatus
from ptt_client import events, trust_news
from ptt_client.bursts import UNVERIFIED_AFTER, BurstTracker, HeardBurst
from ptt_client.early_frames import EARLY_FRAME_LIMIT as EARLY_FRAME_LIMIT
from ptt_client.early_frames import EARLY_FRAME_TTL as EARLY_FRAME_TTL
from ptt_client.early_frames import EarlyFrames
from ptt_protocol import control, media
from ptt_protocol.errors import ProtocolError

log = logging.getLogger(__name__)

_LOCATION = struct.Struct("!dd")
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
    bursts: BurstTracker = field(default_factory=BurstTracker)
    """The burst being heard, the ones that just ended, and what is vouched for in each."""
    early_frames: EarlyFrames = field(default_factory=EarlyFrames)
    """Frames of bursts whose FloorTaken has not arrived yet, each burst with its own share."""
    waiting_envelopes: dict[int, bytes] = field(default_factory=dict)
    """Envelopes that arrived before their roster, by roster version (bounded)."""
    refused_roster: bytes | None = None
    """The last roster refused: the same one again is not reported twice."""

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

    def accept_revocations(self, signed: bytes) -> list[object]:
        """Install a newer revocation list; returns this device's own revocation, if new."""
        before = self.trust.revocations
        try:
            installed = self.trust.verify_revocations(signed)
        except CryptoError as exc:  # older or foreign: the list held stays in force
            log.info("revocation list refused: %s", exc)
            return []
        revoked = trust_news.own_revocation(before, installed, self.credential)
        return [revoked] if revoked is not None else []

    def add_credentials(self, blobs: Iterable[bytes], now: float) -> list[object]:
        """Keep the members' credentials that verify; returns one event per refused one."""
        refused: list[object] = []
        for blob in blobs:
            try:
                credential = self.trust.verify_credential(blob, now)
            except CryptoError as exc:
                log.info("credential refused: %s", exc)
                refused.append(trust_news.credential_refused(blob, exc))
                continue
            self.credentials[credential.user_id] = credential
        self.credentials_changed.set()
        return refused

    def accept_roster(self, channel_id: int, signed: bytes, now: float) -> list[object]:
        """Accept a signed roster; returns the events (KeysUpdated, RosterChanged, or
        RosterRefused, and the outcome of an envelope that was waiting for this roster).
        The roster held, or the one refused last, sent again (at every login) is no news."""
        channel = self._channel(channel_id)
        if signed == channel.roster_state.signed:
            return []
        previous = channel.roster
        try:
            roster = channel.roster_state.accept(signed, self.trust, now)
        except CryptoError as exc:
            log.info("roster for channel %s refused: %s", channel_id, exc)
            if signed == channel.refused_roster:
                return []  # tried again (it may have become valid), still refused: told once
            channel.refused_roster = bytes(signed)
            me = self.credential.user_id
            return [trust_news.roster_refused(channel_id, previous, signed, exc, me)]
        channel.rosters[roster.version] = roster
        self._rebuild_opener(channel)
        found: list[object] = [
            events.KeysUpdated(channel_id, channel.current_epoch, roster.version)
        ]
        changed = trust_news.roster_changed(previous, roster)
        if changed is not None:
            found.append(changed)
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
        verified = ""  # a creator is named only once its certificate and signature checked
        try:
            key = open_envelope(
                envelope, self.keys, self.credential, self.trust, now, roster=roster
            )
            creator = read_envelope_creator(envelope)
            verified = creator.user_id
            check_epoch_creator(creator, roster)
        except CryptoError as exc:
            log.warning("key envelope for channel %s refused: %s", channel_id, exc)
            return [events.EpochRefused(channel_id, header.epoch, verified, str(exc))]
        if key.epoch != key.roster_version:
            # One numbering rule (ptt_client.channel_admin.publish_roster): epoch N is made
            # for roster version N. Else a key made for an old roster, or numbered far ahead
            # to shadow every later rekey, could be slipped in by whoever held that roster.
            reason = (
                f"epoch {key.epoch} was made for roster version {key.roster_version}: epoch N"
                " is made for roster version N"
            )
            return [events.EpochRefused(channel_id, key.epoch, creator.user_id, reason)]
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
        current = channel.epochs.get(channel.current_epoch)
        roster = channel.rosters.get(current.roster_version) if current is not None else None
        if current is None or roster is None or roster.member(self.credential.user_id) is None:
            return
        key = current
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
        """This radio was granted the floor: it signs its burst, and hears nobody meanwhile."""
        channel = self._channel(channel_id)
        channel.bursts.end(now, released=False)
        signer = channel.signer
        if signer is not None and signer.burst_id == burst_id:
            # Granted again within the burst (a raised priority, a lost grant): the frames
            # sent so far still need signing.
            return
        channel.signer = BurstSigner(self.keys, channel_id, burst_id, now)

    def expect_talker(
        self, channel_id: int, talker: str, burst_id: int, now: float, priority: int = 0
    ) -> list[object]:
        """``talker`` holds the floor in burst ``burst_id`` (FloorTaken); returns the events of
        frames of that burst that arrived before the FloorTaken did.

        The burst heard until now ends here (pre-emption sends no FloorIdle). Frames held
        for other bursts not named yet keep waiting, with their own arrival times.
        """
        channel = self._channel(channel_id)
        heard = channel.bursts.name(talker, burst_id, now)
        if heard is not None:
            heard.priority = priority  # early frames play at the burst's priority too
        held = channel.early_frames.take(burst_id, now)
        opened: list[object] = []
        if heard is None:
            opened.append(
                events.VoiceRejected(
                    channel_id,
                    f"floor control names burst {burst_id}, which already ended here: its"
                    " frames are not played (a replayed FloorTaken?)",
                )
            )
        if heard is not None:
            for inner in held:
                opened.extend(self.open_media(inner, now, {}))
        channel.early_frames.keep_only(channel.bursts.is_early, now)
        return opened

    def end_heard_burst(self, channel_id: int, now: float, *, released: bool) -> list[object]:
        """FloorIdle (``released``) or FloorRevoke: the burst being heard on the channel is
        over. Its frames are dropped from now on (for a released one, after its last
        frames and statement had :data:`ptt_client.bursts.ENDED_GRACE` to arrive)."""
        channel = self.channels.get(channel_id)
        if channel is None:
            return []
        channel.bursts.end(now, released=released)
        return self._check_bursts(channel_id, channel, now)

    def tick(self, now: float) -> list[object]:
        """Time passed: a burst whose played frames no statement covered within
        :data:`ptt_client.bursts.UNVERIFIED_AFTER` is reported (``TalkerUnverified``), also
        when no frame arrives any more. Call it about twice a second."""
        found: list[object] = []
        for channel_id, channel in self.channels.items():
            found.extend(self._check_bursts(channel_id, channel, now))
        return found

    def new_session(self) -> list[object]:
        """A new control session (login): the server may have restarted, so burst ids may be
        reused; forget every burst and replay window. Bursts still waiting for a statement
        can no longer get one: they are reported as unverified."""
        found: list[object] = []
        for channel_id, channel in self.channels.items():
            for heard, count in channel.bursts.flush():
                found.append(_unverified(channel_id, heard, count, "before the connection dropped"))
            channel.early_frames.clear()
            if channel.opener is not None:
                channel.opener.forget_bursts()
        return found

    def _check_bursts(self, channel_id: int, channel: ChannelKeys, now: float) -> list[object]:
        return [
            _unverified(channel_id, heard, count, f"within {UNVERIFIED_AFTER:g} s")
            for heard, count in channel.bursts.check(now)
        ]

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
        reported = self._check_bursts(frame.channel_id, channel, now)
        statement = bool(frame.flags & media.SIGNATURE)
        heard = channel.bursts.target(frame.burst_id, statement, now)
        if heard is None:
            if not channel.bursts.is_early(frame.burst_id):
                # Its burst ended here: a late frame past the grace, or one passed off as
                # part of a burst whose talker this radio was showing.
                reported.append(
                    events.VoiceRejected(
                        frame.channel_id, f"frame of burst {frame.burst_id}, which has ended"
                    )
                )
                return reported
            # UDP can overtake the FloorTaken on the WebSocket: keep the frame briefly and
            # open it when the control plane names the talker of this burst.
            channel.early_frames.hold(frame.burst_id, inner, now)
            return reported
        opened = self._open_heard(frame, inner, channel.opener, channel.roster, heard, now)
        if opened is None:
            return reported
        if isinstance(opened, bytes):
            view = floors.get(frame.channel_id)
            priority = heard.priority or getattr(view, "priority", 0)
            reported.append(
                events.VoiceFrame(
                    channel_id=frame.channel_id,
                    talker=heard.talker,
                    burst_id=frame.burst_id,
                    sequence=frame.sequence,
                    opus=opened,
                    end_of_burst=bool(frame.flags & media.END_OF_BURST),
                    priority=priority,
                    received_at=now,
                )
            )
        else:
            reported.append(opened)
        return reported

    def _open_heard(
        self,
        frame: media.InnerFrame,
        inner: bytes,
        opener: FrameOpener,
        roster: Roster,
        heard: HeardBurst,
        now: float,
    ) -> bytes | events.VoiceRejected | events.ForgedAudio | events.TalkerVerified | None:
        """A frame of a burst floor control named, from its talker: the Opus to play, an
        event to report instead, or None (nothing to say)."""
        talker = heard.talker
        member = roster.member(talker)
        credential = self.credentials.get(talker)
        if member is None:
            return events.VoiceRejected(frame.channel_id, f"{talker} is not on the roster")
        if credential is not None and credential.fingerprint() != member.credential_fingerprint:
            # Another device of this user than the one the roster pins: not the talker.
            return events.VoiceRejected(
                frame.channel_id, f"{talker}'s credential is not the one on the roster"
            )
        verifier = heard.verifier
        if verifier is None and credential is not None:
            verifier = heard.verifier = BurstVerifier(credential, frame.channel_id, frame.burst_id)
        if frame.flags & media.SIGNATURE:
            if verifier is None:
                return None
            try:
                verifier.check(frame.frame)
            except ForgedFrameError as exc:
                # The talker's own signature says frames already played were not theirs.
                # Audio plays before its statement arrives, so it cannot be un-played: the
                # "verified" mark is withdrawn for the burst, for good, and the listener warned.
                heard.distrusted = True
                return events.ForgedAudio(frame.channel_id, talker, frame.burst_id, str(exc))
            except CryptoError as exc:
                # A statement that does not verify proves nothing about the audio.
                return events.VoiceRejected(frame.channel_id, f"burst signature refused: {exc}")
            if heard.distrusted:
                return None
            return events.TalkerVerified(
                frame.channel_id,
                talker,
                credential.display_name if credential else talker,
                frame.burst_id,
            )
        try:
            opus = opener.open(
                media.inner_header(inner), frame.frame, talker, now, burst=frame.burst_id
            )
        except CryptoError as exc:
            return events.VoiceRejected(frame.channel_id, f"frame refused: {exc}")
        covered = False
        if verifier is None:
            heard.no_credential = True
        else:
            status = verifier.add(frame.sequence, frame.frame)
            if status is FrameStatus.FORGED:
                # Its statement came first and lists another frame: caught before playing.
                return events.VoiceRejected(
                    frame.channel_id,
                    f"frame {frame.sequence} of burst {frame.burst_id} is not what"
                    f" {talker!r} signed: not played",
                )
            covered = status is FrameStatus.VERIFIED
        heard.played(frame.sequence, now, covered=covered)
        return opus


def _unverified(channel_id: int, heard: HeardBurst, count: int, when: str) -> object:
    if heard.no_credential and heard.verifier is None:
        reason = (
            f"no credential of {heard.talker!r} to check the burst signature with:"
            f" {count} frame(s) played unverified"
        )
    else:
        reason = (
            f"{count} frame(s) played as {heard.talker!r} were not covered by a burst"
            f" statement they signed {when}"
        )
    return events.TalkerUnverified(channel_id, heard.talker, heard.burst_id, reason)
