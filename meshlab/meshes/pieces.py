"""Long range reads in time pieces: each piece's frame finished before the next is read.

One read holds every series' raw answer, per-bucket histogram rates and label text for the
whole span it reads, many times the finished frame (about 18x for ``edges``, 28x for
``traffic``). :func:`read_in_pieces` bounds that by reading a long span in pieces aligned on
the steps and :func:`concat_pieces` joins them into the frame one read gives, row for row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from .. import schema
from ..timeutil import to_millis, to_timedelta, to_timestamp, utc_now
from .spec import Span

__all__ = ["concat_pieces", "read_in_pieces"]


def read_in_pieces(span: Span, read: Callable[[Span], pd.DataFrame], kind: str, sides: Sequence[str] = (), *,
                   piece_steps: int = 64, piece_rows: int = 50_000) -> pd.DataFrame:
    """``read(span)``, for a long range read in time pieces, each read whole and concatenated.

    A range of more than ``piece_steps`` steps is read in pieces aligned on ``start + k *
    step``: the first of 8 steps, each next sized from the rows per step seen so far to hold
    about ``piece_rows`` rows (at most 4x the previous piece). Each step's value depends only
    on its own window, so the pieces give the values one read gives; the frame methods sort
    by time within a side, so the pieces' rows are put back in the ``sides`` order and the
    result equals one read's, row for row. An instant (``at``) or a short range is one read.

    Parameters
    ----------
    span : Span
        What to read.
    read : callable
        Span to finished frame (one frame method's work).
    kind : str
        The frame kind, for :func:`concat_pieces`.
    sides : sequence of str
        The order one read gives the sides in (``edges`` and ``tcp``); empty otherwise.
    piece_steps, piece_rows : int
        As the adapters' attributes of those names.
    """
    if span.at is not None:
        return read(span)
    now = utc_now()
    assert span.start is not None and span.end is not None
    start_ms = to_millis(to_timestamp(span.start, now=now, name="start"))
    end_ms = to_millis(to_timestamp(span.end, now=now, name="end"))
    step_ms = to_millis(to_timedelta(span.step, name="step"))
    if step_ms <= 0 or end_ms < start_ms or (end_ms - start_ms) // step_ms + 1 <= piece_steps:
        return read(span)  # short, or bad: query_range says what is wrong
    steps = (end_ms - start_ms) // step_ms + 1
    frames = []
    first, size = 0, min(8, steps)
    while first < steps:
        count = min(size, steps - first)
        lo = start_ms + first * step_ms
        piece = Span(_utc_ms(lo), _utc_ms(lo + (count - 1) * step_ms), span.step, span.window)
        frames.append(read(piece))
        first += count
        rows = len(frames[-1])
        size = min(4 * count, max(1, piece_rows * count // rows)) if rows else 2 * count
    return concat_pieces(frames, kind, sides)


def concat_pieces(frames: list[pd.DataFrame], kind: str, sides: Sequence[str]) -> pd.DataFrame:
    """The pieces' frames as one read gives them, each piece dropped (from ``frames``) once copied.

    :func:`meshlab.schema.concat` gives the same frame but holds the pieces, its copies and the
    result at once; here the result's columns are allocated once and filled piece by piece, so
    the peak is about the result and one piece (the pieces are freed as the result's pages
    fill). The labels get the categories ``schema.concat`` gives
    (the union of the pieces', in its order). One read gives each side's rows together, in the
    ``sides`` order, and a piece's rows are one block per side in that order: each block is
    copied to its side's place. Anything else (never so today) goes to ``schema.concat``.
    """
    used = [f for f in frames if len(f)]
    first = used[0] if used else None
    if first is None or len(used) == 1 or not all(list(f.columns) == list(first.columns) for f in used):
        return schema.concat(frames, kind)
    plain = {name: first[name].dtype for name in first.columns}
    if not all(isinstance(d, pd.CategoricalDtype) or d == np.float64 or d == "datetime64[ns, UTC]"
               for d in plain.values()):
        return schema.concat(frames, kind)
    categories: dict[str, pd.Index] = {}
    for name, dtype in plain.items():
        if isinstance(dtype, pd.CategoricalDtype):
            union = used[0][name].cat.categories
            for frame in used[1:]:
                union = union.union(frame[name].cat.categories)  # as schema.concat: sorted where labels sort
            categories[name] = union
    frames.clear()  # the caller's references: each piece is freed once copied
    order = list(sides) if len(sides) > 1 else [None]
    blocks = []  # (piece, first row, rows) in the result's order: side by side, then piece by piece
    for side in order:
        for i, frame in enumerate(used):
            if side is None:
                blocks.append((i, 0, len(frame)))
            else:
                rows = np.flatnonzero((frame["side"].astype(str) == side).to_numpy())
                if len(rows):
                    if rows[-1] - rows[0] + 1 != len(rows):
                        return schema.concat(used, kind)  # not one block per side: never so today
                    blocks.append((i, int(rows[0]), len(rows)))
    total = sum(len(f) for f in used)
    if sum(n for _, _, n in blocks) != total:
        return schema.concat(used, kind)
    out: dict[str, np.ndarray] = {}
    for name, dtype in plain.items():  # np.empty: pages become resident only as pieces are copied in
        out[name] = np.empty(total, _codes_dtype(len(categories[name])) if name in categories else
                             np.float64 if dtype == np.float64 else np.int64)
    starts = np.concatenate([[0], np.cumsum([n for _, _, n in blocks])[:-1]]).tolist()
    remaining = [sum(1 for b in blocks if b[0] == i) for i in range(len(used))]
    for (i, lo, n), at in sorted(zip(blocks, starts, strict=True), key=lambda b: b[0][0]):  # piece by piece
        frame = used[i]
        for name, dtype in plain.items():
            column = frame[name]
            if name in categories:
                recode = np.append(categories[name].get_indexer(column.cat.categories), -1)  # code -1: missing
                out[name][at:at + n] = recode[column.cat.codes.to_numpy()[lo:lo + n]]
            elif dtype != np.float64:
                out[name][at:at + n] = column.array.asi8[lo:lo + n]
            else:
                out[name][at:at + n] = column.to_numpy()[lo:lo + n]
        remaining[i] -= 1
        if not remaining[i]:
            used[i] = pd.DataFrame()  # this piece is copied: free it
    columns: dict[str, object] = {}
    for name, dtype in plain.items():
        values = out.pop(name)
        if name in categories:
            columns[name] = pd.Categorical.from_codes(values, dtype=pd.CategoricalDtype(categories[name]),
                                                      validate=False)
        elif dtype != np.float64:
            columns[name] = pd.DatetimeIndex(values.view("M8[ns]")).tz_localize("UTC")
        else:
            columns[name] = values
    return pd.DataFrame(columns, copy=False)


def _codes_dtype(categories: int) -> type[np.signedinteger]:
    """The smallest codes pandas would give a categorical of this many categories (-1: missing)."""
    for dtype in (np.int8, np.int16, np.int32):
        if categories < np.iinfo(dtype).max:
            return dtype
    return np.int64


def _utc_ms(ms: int) -> pd.Timestamp:
    return pd.Timestamp(ms, unit="ms", tz="UTC")
