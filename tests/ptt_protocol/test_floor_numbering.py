"""Burst numbering across servers of a cluster: it goes on from another owner's last burst,
never moves back, and wraps within the wire's 32 bits."""

from __future__ import annotations

import pytest

from ptt_protocol import floor


def test_numbering_goes_on_from_the_last_burst_of_another_owner() -> None:
    control = floor.FloorControl()
    control.continue_numbering(41)
    granted = control.request("alice", floor.Priority.OFFICER, 0.0)
    assert [e.burst_id for e in granted if isinstance(e, floor.FloorGranted)] == [42]
    control.release("alice", 1.0)
    control.continue_numbering(7)  # an older number never moves it back
    again = control.request("bob", floor.Priority.OFFICER, 2.0)
    assert [e.burst_id for e in again if isinstance(e, floor.FloorGranted)] == [43]


def test_numbering_wraps_within_32_bits_and_never_gives_zero() -> None:
    control = floor.FloorControl()
    control.continue_numbering(0xFFFF_FFFF)
    granted = control.request("alice", floor.Priority.OFFICER, 0.0)
    assert [e.burst_id for e in granted if isinstance(e, floor.FloorGranted)] == [1]


def test_numbering_moves_only_on_an_idle_floor_and_only_to_32_bit_numbers() -> None:
    control = floor.FloorControl()
    control.request("alice", floor.Priority.OFFICER, 0.0)
    with pytest.raises(ValueError, match="idle"):
        control.continue_numbering(5)
    control.release("alice", 1.0)
    with pytest.raises(ValueError, match="32-bit"):
        control.continue_numbering(1 << 32)
