"""The relay's data directory holds nothing that signs or opens (ptt_server.keyfiles), and one
epoch-numbering rule for every key manager (the envelope check in ptt_server.server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from crypto.epoch import new_epoch_key, wrap_epoch
from crypto.identity import OrgRoot
from crypto.roster import Roster, sign_roster
from ptt_protocol import control
from ptt_server.config import org_root_path
from ptt_server.keyfiles import OrgRootError, install_org_root, refuse_private_keys
from ptt_server.server import RelayServer
from ptt_server.startup import StartupError
from tests.credentials import CHEAP_SCRYPT, bundle_for
from tests.orgfixture import Org, server_config
from tests.ptt_server.rawclient import logged_in


def _material(org: Org) -> dict[str, bytes]:
    alice = org.accounts["alice"]
    return {
        "plain root key": org.root.to_bytes(None),
        "encrypted root key": org.root.to_bytes("pass phrase", scrypt_n=CHEAP_SCRYPT),
        "device keys": alice.keys.export(None),
        "bundle": bundle_for(org.root, (alice.keys, alice.credential)).to_bytes(),
    }


@pytest.mark.parametrize("kind", ["plain root key", "encrypted root key", "device keys", "bundle"])
async def test_a_private_key_anywhere_in_the_data_dir_stops_the_relay(org: Org, kind: str) -> None:
    hidden = org.data_dir / "old" / "deep" / "innocent.txt"
    hidden.parent.mkdir(parents=True)
    hidden.write_bytes(_material(org)[kind])
    with pytest.raises(StartupError, match="must hold no key"):
        await RelayServer.open(server_config(org))
    hidden.unlink()
    server = await RelayServer.open(server_config(org))  # the public material alone is fine
    await server.store.close()


def test_nothing_private_is_fine(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_bytes(b"\x01" + b"x" * 40)
    refuse_private_keys(tmp_path)
    refuse_private_keys(tmp_path / "absent")


def test_install_org_root_once_and_refuse_another_or_a_private_key(tmp_path: Path) -> None:
    root, other = OrgRoot.generate(), OrgRoot.generate()
    pub, other_pub, private = tmp_path / "root.pub", tmp_path / "other.pub", tmp_path / "root.key"
    pub.write_bytes(root.public_key_bytes())
    other_pub.write_bytes(other.public_key_bytes())
    private.write_bytes(root.to_bytes(None))
    target = org_root_path(tmp_path / "relay")
    with pytest.raises(OrgRootError, match="PRIVATE"):
        install_org_root(target, private)
    assert not target.exists()
    with pytest.raises(OrgRootError, match="not an org root public key"):
        install_org_root(target, _write(tmp_path / "junk", b"junk"))
    with pytest.raises(OrgRootError, match="No such file"):
        install_org_root(target, tmp_path / "missing.pub")
    assert install_org_root(target, pub) is True
    assert install_org_root(target, pub) is False  # the same again: nothing to do
    with pytest.raises(OrgRootError, match="another organisation"):
        install_org_root(target, other_pub)
    assert target.read_bytes() == root.public_key_bytes()
    assert target.stat().st_mode & 0o777 == 0o644
    assert target.parent.stat().st_mode & 0o777 == 0o700


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


async def test_envelopes_follow_one_epoch_rule(org: Org, server: RelayServer) -> None:
    """Epoch N is made for roster version N, and only for the channel's current roster: two
    key managers rekeying at once cannot make two keys for one epoch number."""
    disp = org.accounts["disp"]
    credentials = {u: a.credential for u, a in org.accounts.items()}
    async with logged_in(server, org, "disp", "bob") as c:
        sender, bob = c["disp"], c["bob"]
        roster = Roster(org.channel_id, 2, org.roster.members)
        await sender.send(
            control.RosterUpdate(
                channel_id=org.channel_id,
                version=2,
                signed_roster=sign_roster(roster, disp.keys, disp.credential),
            )
        )
        for epoch, roster_version, fragment in (
            (3, 2, "not numbered after its roster version"),
            (1, 1, "whose roster is version 2"),
        ):
            made_for = roster if roster_version == 2 else org.roster
            key = new_epoch_key(org.channel_id, epoch, roster_version)
            envelope = wrap_epoch(key, made_for, credentials, disp.keys, disp.credential)["bob"]
            await sender.send(
                control.KeyEnvelope(
                    channel_id=org.channel_id, epoch=epoch, recipient="bob", envelope=envelope
                )
            )
            error = await sender.wait_for(control.Error)
            assert fragment in error.text
        good = wrap_epoch(
            new_epoch_key(org.channel_id, 2, 2), roster, credentials, disp.keys, disp.credential
        )["bob"]
        await sender.send(
            control.KeyEnvelope(channel_id=org.channel_id, epoch=2, recipient="bob", envelope=good)
        )
        await sender.ping()
        assert len(sender.received(control.Error)) == 2  # only the two refusals above
        delivered = await bob.wait_for(control.KeyEnvelope, lambda m: m.epoch == 2)
        assert delivered.envelope == good
        assert [e.epoch for e in bob.received(control.KeyEnvelope)] == [1, 2]
