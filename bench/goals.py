"""A bench's goals as its report gives them, judged one way for every bench that has a table of
them (``bench.relay``, ``bench.cluster``): ``{"goal": ">= 250000", "value": ..., "met": ...}``
per figure, and the lines the human-readable report prints for them.

``met`` is True or False when the figure was measured and comparable with its goal, and None
(``n/a``) when it was not: a figure the run did not produce, or a run of another size than the
goal's (``--quick``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

__all__ = ["COMPARE", "goal_lines", "judged"]

COMPARE: Final[Mapping[str, Callable[[float, float], bool]]] = {
    ">=": lambda value, target: value >= target,
    "<=": lambda value, target: value <= target,
    "==": lambda value, target: value == target,
}
"""The comparisons a goal may use."""


def judged(
    targets: Mapping[str, tuple[str, float]],
    results: Mapping[str, Any],
    comparable: Mapping[str, bool] | None = None,
) -> dict[str, dict[str, Any]]:
    """Each goal of ``targets`` (figure -> (comparison, target)) against ``results``; a figure
    ``comparable`` marks False is reported with ``met`` None."""
    goals = {}
    for key, (op, target) in targets.items():
        value = results[key]
        met: bool | None = None
        if value is not None and (comparable or {}).get(key, True):
            met = COMPARE[op](value, target)
        goals[key] = {"goal": f"{op} {target:g}", "value": value, "met": met}
    return goals


def goal_lines(
    goals: Mapping[str, Mapping[str, Any]], widths: tuple[int, int, int], digits: int
) -> list[str]:
    """One line per goal: figure, value (``digits`` decimals), goal and verdict, in columns of
    ``widths`` (figure, value, goal)."""
    key_width, value_width, goal_width = widths
    lines = []
    for key, goal in goals.items():
        value = goal["value"]
        shown = "-" if value is None else f"{value:,.{digits}f}"
        verdict = {True: "met", False: "MISSED", None: "n/a"}[goal["met"]]
        lines.append(
            f"{key:{key_width}} {shown:>{value_width}}   goal {goal['goal']:>{goal_width}}  {verdict}"
        )
    return lines
