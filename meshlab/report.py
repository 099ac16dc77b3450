"""Reports: ``ml.report(frames, path)`` writes a report folder; :func:`write_csv` one formula-safe CSV.

Everything is written atomically: a reader never sees a half-written file or folder.
``meshlab.report`` is both this module and, called, :func:`report`.
"""

from __future__ import annotations

import csv
import os
import re
import sys
import types
from collections.abc import Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import pandas as pd

from ._files import atomic_write, remove_stale_temporaries

if TYPE_CHECKING:
    from ._reportdir import Report

__all__ = ["TIMESTAMP_FORMAT", "Report", "build_demo_report", "neutralise", "remove_stale_temporaries", "report",
           "run_demo", "write_csv", "write_csv_to"]

#: How timestamps are written: ISO 8601 in UTC, microseconds, ``Z``.
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
# A spreadsheet reads a cell starting with one of these as a formula (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def neutralise(text: str) -> str:
    """Make a text cell safe to open in a spreadsheet, OWASP style.

    A cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading
    single quote, so spreadsheets show it as text instead of evaluating it. A plain number
    (``-5``, ``+1.5e3``) is left alone: it cannot be a formula.

    Examples
    --------
    >>> neutralise("=1+1"), neutralise("-5"), neutralise("web")
    ("'=1+1", '-5', 'web')
    """
    if text.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def _neutralise_cell(value: Any) -> Any:
    return neutralise(value) if isinstance(value, str) else value


def _prepare(frame: pd.DataFrame, safe: bool) -> pd.DataFrame:
    """A shallow copy with timestamps in UTC and (when ``safe``) text cells neutralised."""
    out = frame.copy(deep=False)
    for position in range(out.shape[1]):
        column = out.iloc[:, position]
        dtype = column.dtype
        if isinstance(dtype, pd.DatetimeTZDtype):
            # the format below appends "Z": the wall time must be UTC's
            out.isetitem(position, column.dt.tz_convert("UTC"))
        elif not safe:
            continue
        elif isinstance(dtype, pd.CategoricalDtype):
            categories = dtype.categories
            if pd.api.types.is_object_dtype(categories.dtype) or isinstance(categories.dtype, pd.StringDtype):
                renamed = [_neutralise_cell(c) for c in categories]
                if len(set(renamed)) == len(renamed):  # "'=x" and "=x" both present: fall back to values
                    out.isetitem(position, column.cat.rename_categories(renamed))
                else:
                    out.isetitem(position, column.astype(object).map(_neutralise_cell))
        elif pd.api.types.is_object_dtype(dtype) or isinstance(dtype, pd.StringDtype):
            out.isetitem(position, column.map(_neutralise_cell, na_action="ignore"))
    if safe:
        out.columns = [_neutralise_cell(c) for c in out.columns]
    return out


class _RowEnds:
    """A text handle that turns ``\\r\\n`` row ends outside quoted fields into ``\\n``.

    The csv module quotes a field holding any character of its line terminator, so with
    ``\\r\\n`` a bare carriage return inside a label is quoted (with ``\\n`` it is not, and
    spreadsheets split the row there). Rows still end with ``\\n``: this handle rewrites the
    terminators and keeps line breaks inside quoted fields as they are, whatever pieces
    the text arrives in.
    """

    def __init__(self, handle: IO[str]):
        self._handle = handle
        self._quoted = False  # inside a quoted field at the end of the last write
        self._cr = False  # the last write ended with an unquoted "\r", held back

    def write(self, text: str) -> int:
        if self._cr:
            text, self._cr = "\r" + text, False
        if '"' in text:
            parts = text.split('"')  # a doubled quote toggles twice: the state stays right
            for i, part in enumerate(parts):
                if i:
                    self._quoted = not self._quoted
                if not self._quoted:
                    parts[i] = part.replace("\r\n", "\n")
            text = '"'.join(parts)
        elif not self._quoted:
            text = text.replace("\r\n", "\n")
        if not self._quoted and text.endswith("\r"):
            text, self._cr = text[:-1], True
        self._handle.write(text)
        return len(text)

    def close(self) -> None:
        if self._cr:  # never happens with the csv module: an unquoted "\r" is always a row end
            self._handle.write("\r")
            self._cr = False


def write_csv_to(frame: pd.DataFrame, handle: IO[str], *, safe: bool = True) -> None:
    """Write a frame as CSV to an open text handle (``sys.stdout``, a file), as :func:`write_csv` does.

    Parameters
    ----------
    frame : pandas.DataFrame
        The frame to write; its index is not written.
    handle : text file
        Where to write; opened with ``newline=""`` when it is a file.
    safe : bool
        Neutralise text cells a spreadsheet would read as formulas (see :func:`write_csv`).
    """
    rows = _RowEnds(handle)
    _prepare(frame, safe).to_csv(rows, index=False, date_format=TIMESTAMP_FORMAT, lineterminator="\r\n",
                                 quoting=csv.QUOTE_MINIMAL)  # type: ignore[call-overload]
    rows.close()


def write_csv(frame: pd.DataFrame, path: str | os.PathLike[str], *, safe: bool = True) -> Path:
    """Write a frame as CSV, atomically.

    The CSV is written to a temporary file beside ``path`` and renamed over it, so an
    interrupted write leaves the old file (or none), never a truncated one; the temporary
    file of a write killed midway is removed by the next write to that folder. ``path`` may
    be a symlink: its target is replaced and the link kept. A new file gets the permissions
    the umask gives (``0644`` under the usual ``022``); an existing one keeps its own.

    Timestamps are written in ISO 8601 in UTC with a ``Z`` (zone-aware columns are converted,
    naive ones are taken as UTC, as everywhere in meshlab). Rows end with ``\\n``; cells
    holding a comma, a quote, a carriage return or a line feed are quoted.

    Label values come from servers, so by default (``safe=True``) text cells that a spreadsheet
    would evaluate as a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
    return, and not a plain number) get a leading single quote, as OWASP recommends; numeric
    columns are untouched. Pass ``safe=False`` to write text exactly as it is.

    Parameters
    ----------
    frame : pandas.DataFrame
        The frame to write; its index is not written.
    path : path-like
        The destination. Parent directories are created.
    safe : bool
        Neutralise formula-like text cells (default True).

    Returns
    -------
    pathlib.Path
        The path written (as given, even when it is a symlink).

    Raises
    ------
    InvalidArgument
        If ``path`` is a directory or a symlink loop.
    OSError
        If the folder cannot be created or written.
    """
    with atomic_write(path, "w", newline="") as handle:
        write_csv_to(frame, handle, safe=safe)
    return Path(path)


def report(frames: Mapping[str, pd.DataFrame] | Any, path: str | os.PathLike[str] = "meshlab-report", *,
           title: str | None = None, description: str | None = None, charts: bool = True,
           extra_charts: Mapping[str, Any] | None = None, slo_ms: float | None = None, safe: bool = True) -> Report:
    """Write a report folder: every table as CSV and Parquet, a column dictionary, and one HTML page.

    The folder holds, per table, ``NAME.csv`` (timestamps ISO 8601 in UTC, units in the column
    names, formula-like text neutralised as :func:`write_csv` does) and ``NAME.parquet`` (the
    frame as it is); ``columns.csv``, the data dictionary (table, column, dtype, unit,
    description); ``report.json``, what the folder holds; and ``report.html``, a self-contained
    page with the charts of :mod:`meshlab.charts` that the tables support and a summary of each
    table. The page loads nothing from the network: Vega, Vega-Lite and vega-embed are inlined.

    The folder is built beside ``path`` and put in its place in one step: a failure leaves the
    previous report (or none), never half of one. Only an empty folder or an earlier meshlab
    report is replaced.

    Parameters
    ----------
    frames : mapping of str to pandas.DataFrame, or Dataset
        The tables by name (the names become file names): adapter frames (``traffic``, ``edges``,
        ``tcp``, ``proxies``), ``benchmark`` frames, :func:`meshlab.compare` output,
        :func:`meshlab.capacity.fit` output, or any frame (written, summarised, not charted).
        A :class:`~meshlab.datasets.Dataset` gives its adapter frames and its title.
    path : path-like
        The report folder (default ``./meshlab-report``).
    title, description : str, optional
        The page's heading and the line below it.
    charts : bool
        Draw the charts the tables support (default True): traffic gives golden signals, latency
        by mesh and the lowest success rates; edges give the rps and success-rate matrices;
        benchmark gives proxy CPU against load (with a fit when one is among the tables) and,
        with ``slo_ms``, latency against load; a comparison gives its intervals.
    extra_charts : mapping of str to altair chart, optional
        More charts, by title.
    slo_ms : float, optional
        The latency objective drawn on the latency-against-load chart.
    safe : bool
        Neutralise formula-like text cells in the CSVs (default True).

    Returns
    -------
    Report
        The folder, its tables and charts; shows a summary in JupyterLab.

    Raises
    ------
    InvalidArgument
        For a table name that cannot be a file name, something that is not a frame, or a ``path``
        holding a file or a folder that is not a meshlab report.
    """
    from ._reportdir import build

    return build(frames, path, title=title, description=description, charts=charts, extra_charts=extra_charts,
                 slo_ms=slo_ms, safe=safe)


def build_demo_report(path: str | os.PathLike[str] = "meshlab-report") -> Report:
    """The full report of the bundled mesh-shootout dataset (what ``make demo`` builds)."""
    from ._demo import build_demo_report as build

    return build(path)


def run_demo(out: str | os.PathLike[str] = "out/mesh-shootout-summary.csv",
             report_path: str | os.PathLike[str] = "meshlab-report", *, file: IO[str] | None = None) -> int:
    """``meshlab demo``: print the per-mesh summary, write it as CSV and build the full report; returns 0."""
    from ._demo import run_demo as run

    return run(out, report_path, file=file)


def __getattr__(name: str) -> Any:
    if name == "Report":
        from ._reportdir import Report

        return Report
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _CallableModule(types.ModuleType):
    """Importing ``meshlab.report`` binds the module to ``meshlab.report``; calling it still builds a report."""

    def __call__(self, *args: Any, **kwargs: Any) -> Report:
        return report(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
