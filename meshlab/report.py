"""Write frames to files atomically: a reader never sees a half-written report."""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path
from typing import IO, Any

import pandas as pd

from ._files import atomic_write, remove_stale_temporaries

__all__ = ["TIMESTAMP_FORMAT", "neutralise", "remove_stale_temporaries", "write_csv", "write_csv_to"]

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
