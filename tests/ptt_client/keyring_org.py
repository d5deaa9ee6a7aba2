"""A fixed organisation for pure keyring tests (no server): its root, a dispatcher and two
officers on one channel, the channel's signed roster and epoch-1 key envelopes, and a
:class:`Keyring` that has accepted them all, as a radio's would after joining.

Made once at import (key generation is the slow part), shared by the keyring, burst, mark and
session-core tests.
"""

from __future__ import annotations

from crypto.epoch import new_epoch_key, wrap_epoch
from crypto.identity import OrgRoot, Role
from crypto.roster import Member, Roster, sign_roster
from ptt_client.e2e import Keyring
from tests.credentials import Issued, bundle_for, issue

T0 = 1_900_000_000.0
ROOT = OrgRoot.generate()
CHANNEL = 12
BURST = 3


DISP = issue(ROOT, "disp", Role.DISPATCHER, serial=1, now=T0)
ALICE = issue(ROOT, "alice", serial=2, now=T0)
BOB = issue(ROOT, "bob", serial=3, now=T0)
ROSTER = Roster(CHANNEL, 1, tuple(Member.from_credential(a[1]) for a in (DISP, ALICE, BOB)))
SIGNED_ROSTER = sign_roster(ROSTER, *DISP)
ENVELOPES = wrap_epoch(
    new_epoch_key(CHANNEL, 1, 1),
    ROSTER,
    {a[1].user_id: a[1] for a in (DISP, ALICE, BOB)},
    *DISP,
)


def joined_keyring(account: Issued, now: float) -> Keyring:
    """``account``'s keyring after it took the roster, its envelope and every credential."""
    keys, credential = account
    keyring = Keyring(bundle_for(ROOT, account), keys, lambda: now)
    keyring.accept_roster(CHANNEL, SIGNED_ROSTER, now)
    keyring.accept_envelope(CHANNEL, ENVELOPES[credential.user_id], now)
    keyring.add_credentials([a[1].to_bytes() for a in (DISP, ALICE, BOB)], now)
    return keyring
