"""A data table whose columns fit their content and the table's width (:mod:`tui.widgets.columns`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual import events
from textual.widgets import DataTable

from tui.widgets.columns import ColumnSpec, fit_columns

Rows = Sequence[tuple[str, Sequence[Text]]]
"""(row key, one cell per column of ``SPECS``)."""


class FittedTable(DataTable[Text]):
    """Rows of cells under the columns of :attr:`SPECS`, re-fitted on every change and resize.

    A column's width is its widest cell, header included, while the row fits; otherwise
    :func:`~tui.widgets.columns.fit_columns` decides which columns give way.
    """

    SPECS: ClassVar[tuple[ColumnSpec, ...]] = ()

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._rows: list[tuple[str, tuple[Text, ...]]] = []
        self._widths: dict[str, int] = {}

    @property
    def column_widths(self) -> dict[str, int]:
        """The width of each shown column (hidden ones are left out)."""
        return dict(self._widths)

    def on_mount(self) -> None:
        self._fit()

    def on_resize(self, event: events.Resize) -> None:
        self._fit()

    def fill(self, rows: Rows) -> None:
        """Show ``rows``, keeping the cursor on the same key."""
        self._rows = [(key, tuple(cells)) for key, cells in rows]
        self._fit()

    def _room(self) -> int:
        """Cells a row may take: the width less the vertical scrollbar, if rows will need it."""
        width = self.size.width
        if width <= 0:
            return 0  # not laid out yet: natural widths, refitted on the first resize
        header = self.header_height if self.show_header else 0
        if len(self._rows) + header > self.size.height:
            width -= self.styles.scrollbar_size_vertical
        return width

    def _fit(self) -> None:
        natural = {
            spec.key: max((cells[i].cell_len for _, cells in self._rows), default=0)
            for i, spec in enumerate(self.SPECS)
        }
        widths = fit_columns(self.SPECS, natural, self._room(), self.cell_padding)
        shown = [i for i, spec in enumerate(self.SPECS) if spec.key in widths]
        rows = [(key, [cells[i] for i in shown]) for key, cells in self._rows]
        if widths == self._widths and self.columns:
            _fill_rows(self, rows)
            return
        selected = self._selected_key()
        self.clear(columns=True)
        self._widths = widths
        for spec in self.SPECS:
            if spec.key in widths:
                self.add_column(spec.label, key=spec.key, width=widths[spec.key])
        _fill_rows(self, rows, selected)

    def _selected_key(self) -> str | None:
        if self.row_count == 0:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value


def _fill_rows(table: DataTable[Text], rows: Rows, selected: str | None = None) -> None:
    """Show ``rows`` in ``table``, keeping the cursor on the same key (or on ``selected``).

    Rows with the same keys in the same order are updated cell by cell (no cursor
    movement, no highlight messages); otherwise the table is rebuilt.
    """
    keys = [key for key, _ in rows]
    current = [row.key.value for row in table.ordered_rows]
    columns = list(table.columns)
    if keys == current and current:
        for key, cells in rows:
            for column, cell in zip(columns, cells, strict=True):
                if table.get_cell(key, column) != cell:
                    table.update_cell(key, column, cell)
        return
    if selected is None and table.row_count:
        selected = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
    table.clear()
    for key, cells in rows:
        table.add_row(*cells, key=key)
    if selected in keys:
        table.move_cursor(row=keys.index(selected), animate=False)
