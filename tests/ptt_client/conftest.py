"""Fixtures of the client's tests: ``start_radio`` runs real ``ptt-radio`` processes."""

from tests.ptt_client.radio_process import radio_dir, start_radio

__all__ = ["radio_dir", "start_radio"]
