"""Rendering a command's result: ``-o table|wide|json|csv``.

A command builds one frame of raw values (machine names, float64 numbers, UTC timestamps) and
a list of :class:`Col` saying how a table shows each column. ``table`` shows the columns meant
for a terminal, ``wide`` every column, both through rich; ``json`` (one object per row, ISO 8601
UTC times, ``null`` for missing) and ``csv`` (formula-safe, as ``meshlab query`` writes) give the
raw values of every column.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

FORMATS = ("table", "wide", "json", "csv")


@dataclass(frozen=True)
class Col:
    """One column of a command's output: its header, the frame column and how a table shows it."""

    header: str
    column: str
    show: Callable[[Any], str] = str
    wide: bool = False  # only in -o wide
    right: bool = True


def missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or str(value) in ("<NA>", "NaT", "nan")


def percent(value: Any) -> str:
    return "-" if missing(value) else f"{100 * float(value):.2f}%"


def number(digits: int) -> Callable[[Any], str]:
    def show(value: Any) -> str:
        return "-" if missing(value) else f"{float(value):.{digits}f}"
    return show


def ms(value: Any) -> str:
    if missing(value):
        return "-"
    v = float(value)
    return f"{v:.2f}ms" if v < 10 else f"{v:.1f}ms" if v < 1000 else f"{v:.0f}ms"


def count(value: Any) -> str:
    return "-" if missing(value) else f"{float(value):.0f}"


def text(value: Any) -> str:
    if missing(value) or value == "":
        return "-"
    if hasattr(value, "tz_convert"):  # a timestamp, as the CSV writes it
        return str(value.tz_convert("UTC").isoformat().replace("+00:00", "Z"))
    return str(value)


def emit(frame: pd.DataFrame, fmt: str, cols: Sequence[Col] | None = None, *, out: IO[str] | None = None,
         safe_csv: bool = True) -> None:
    """Write ``frame`` to ``out`` (stdout) in ``fmt``; ``cols`` None shows every column as it is."""
    out = out or sys.stdout
    if cols is None:
        cols = [Col(str(c), str(c), text, right=frame[c].dtype.kind in "fiu") for c in frame.columns]
    if fmt == "csv":
        from ..report import write_csv_to

        write_csv_to(frame[[c.column for c in cols]], out, safe=safe_csv)
    elif fmt == "json":
        out.write(_json(frame[[c.column for c in cols]]) + "\n")
    else:
        _table(frame, [c for c in cols if fmt == "wide" or not c.wide], out)


def _json(frame: pd.DataFrame) -> str:
    import json

    import pandas as pd

    rows = []
    for record in frame.to_dict(orient="records"):
        row = {}
        for key, value in record.items():
            if isinstance(value, pd.Timestamp):
                value = value.tz_convert("UTC").isoformat().replace("+00:00", "Z")
            elif missing(value):
                value = None
            elif hasattr(value, "item"):  # numpy scalars
                value = value.item()
            row[str(key)] = value
        rows.append(row)
    return json.dumps(rows, indent=2)


def _table(frame: pd.DataFrame, cols: Sequence[Col], out: IO[str]) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD if out.isatty() else None, show_edge=False, pad_edge=False,
                  header_style="bold", padding=(0, 2, 0, 0))
    for col in cols:
        table.add_column(col.header, justify="right" if col.right else "left", no_wrap=True)
    for record in frame.to_dict(orient="records"):
        table.add_row(*(col.show(record[col.column]) for col in cols))
    # A pipe gets the whole table, never wrapped to 80 columns.
    console = Console(file=out, width=None if out.isatty() else 100_000, highlight=False, soft_wrap=False)
    console.print(table)
