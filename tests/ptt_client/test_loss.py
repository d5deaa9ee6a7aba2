"""LossMeter: loss from hop-layer counters."""

from ptt_client.loss import LossMeter


def test_no_gaps_is_no_loss_and_duplicates_do_not_count() -> None:
    meter = LossMeter()
    for counter in [0, 1, 2, 2, 3, 4]:
        meter.record(counter)
    assert meter.loss_pct == 0.0


def test_every_tenth_counter_missing_is_ten_percent() -> None:
    meter = LossMeter(window=1000)
    for counter in range(1000):
        if counter % 10 != 5:
            meter.record(counter)
    assert abs(meter.loss_pct - 10.0) < 0.2


def test_reordering_is_not_loss_and_the_window_forgets_old_losses() -> None:
    meter = LossMeter(window=100)
    for counter in [0, 2, 1, 4, 3]:
        meter.record(counter)
    assert meter.loss_pct == 0.0
    for counter in range(10, 300):  # 5..9 lost long ago
        meter.record(counter)
    assert meter.loss_pct == 0.0
