"""Write OpenMetrics text for ``promtool tsdb create-blocks-from openmetrics``.

The rules promtool enforces, some of them silently:

- timestamps are in seconds (milliseconds are accepted and land in the year 58,000);
- each series' samples must be in increasing time order, or promtool drops them;
- all samples of one metric family are contiguous, after its ``# TYPE`` line;
- the file ends with ``# EOF``.

The writer takes whole series at once (arrays of times and values), so callers cannot
interleave them by accident.
"""

from __future__ import annotations

import io  # noqa: F401  (used by the doctest)
import math
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO

import numpy as np

from ._files import atomic_write
from .errors import InvalidArgument
from .timeutil import format_unix_ms

__all__ = [
    "OpenMetricsWriter",
    "Series",
    "format_labels",
    "format_value",
    "seconds_to_millis_lines",
    "write_openmetrics",
]

_TYPES = ("counter", "gauge", "histogram", "summary", "unknown", "info", "stateset", "gaugehistogram")


@dataclass(frozen=True)
class Series:
    """One series to write: a sample name, its labels, and its points.

    Attributes
    ----------
    name : str
        The sample name as stored, e.g. ``request_total`` or ``response_latency_ms_bucket``.
    labels : mapping of str to str
        The label set (without ``__name__``).
    timestamps_ms : sequence of int
        Milliseconds since the epoch, strictly increasing.
    values : sequence of float
        One value per timestamp; NaN and infinities are allowed.
    """

    name: str
    labels: Mapping[str, str]
    timestamps_ms: Sequence[int] | np.ndarray
    values: Sequence[float] | np.ndarray


#: Prometheus' classic label and metric name syntax (the PromQL builders use the same).
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def format_value(value: float) -> str:
    """Format a sample value exactly: shortest round-trip repr, ``NaN``, ``+Inf``, ``-Inf``."""
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def family_header(name: str, type: str, help: str | None = None, *, text_format: bool = False) -> str:
    """The lines that start a metric family: ``# TYPE``, then ``# HELP`` (when given), escaped.

    Every writer of OpenMetrics (``text_format=False``) or of Prometheus' text format 0.0.4
    (``text_format=True``, which escapes only backslashes and line feeds in HELP) starts its
    families here.

    >>> family_header("up", "gauge", 'Is it "up"?')
    '# TYPE up gauge\\n# HELP up Is it \\\\"up\\\\"?\\n'
    """
    lines = f"# TYPE {name} {type}\n"
    if help:
        escaped = help.replace("\\", "\\\\").replace("\n", "\\n") if text_format else _escape(help)
        lines += f"# HELP {name} {escaped}\n"
    return lines


def format_labels(labels: Mapping[str, str]) -> str:
    """Format a label set as ``{a="1",b="2"}`` (empty string for no labels), escaping values."""
    if not labels:
        return ""
    parts = []
    for name, value in labels.items():
        if not LABEL_NAME.match(name) or name.startswith("__"):
            raise InvalidArgument(f"{name!r} is not a label name that can be written")
        if not isinstance(value, str):
            raise InvalidArgument(f"label {name!r} has a non-string value {value!r}")
        parts.append(f'{name}="{_escape(value)}"')
    return "{" + ",".join(parts) + "}"


def _seconds(ms: int) -> str:
    return format_unix_ms(ms).removesuffix(".000")


class OpenMetricsWriter:
    """Stream OpenMetrics text to a file, one metric family at a time.

    Examples
    --------
    >>> buf = io.StringIO()
    >>> with OpenMetricsWriter(buf) as w:
    ...     w.family("up", "gauge")
    ...     w.series("up", {"job": "a"}, [1700000000000], [1.0])
    >>> print(buf.getvalue(), end="")
    # TYPE up gauge
    up{job="a"} 1.0 1700000000
    # EOF
    """

    def __init__(self, out: IO[str]):
        self._out = out
        self._families: set[str] = set()
        self._closed = False

    def __enter__(self) -> OpenMetricsWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()

    def family(self, name: str, type: str = "unknown", help: str | None = None) -> None:
        """Start a metric family; its samples must follow before the next family."""
        if not METRIC_NAME.match(name):
            raise InvalidArgument(f"{name!r} is not a valid metric family name")
        if type not in _TYPES:
            raise InvalidArgument(f"unknown OpenMetrics type {type!r}; must be one of {', '.join(_TYPES)}")
        if name in self._families:
            raise InvalidArgument(f"family {name!r} was already written; OpenMetrics needs its samples together")
        self._families.add(name)
        self._out.write(family_header(name, type, help))

    def series(self, name: str, labels: Mapping[str, str], timestamps_ms: Iterable[int],
               values: Iterable[float]) -> None:
        """Write every point of one series, in increasing time order."""
        if not METRIC_NAME.match(name):
            raise InvalidArgument(f"{name!r} is not a valid metric name")
        times = np.asarray(timestamps_ms, dtype=np.int64)
        vals = np.asarray(values, dtype=np.float64)
        if times.shape != vals.shape:
            raise InvalidArgument(f"series {name}: {len(times)} timestamps but {len(vals)} values")
        if len(times) > 1 and not (np.diff(times) > 0).all():
            raise InvalidArgument(f"series {name}{format_labels(labels)}: timestamps must strictly increase")
        prefix = name + format_labels(labels) + " "
        self._out.write("".join(
            f"{prefix}{format_value(v)} {_seconds(t)}\n" for t, v in zip(times.tolist(), vals.tolist(), strict=True)
        ))

    def close(self) -> None:
        """Write the closing ``# EOF`` line."""
        if not self._closed:
            self._out.write("# EOF\n")
            self._closed = True


def write_openmetrics(path: str | os.PathLike[str], series: Iterable[Series],
                      types: Mapping[str, str] | None = None) -> Path:
    """Write series to an OpenMetrics file, grouping them by sample name.

    Parameters
    ----------
    path : path-like
        The file to write (written atomically: a temporary file, then renamed).
    series : iterable of Series
        The series; their order within a name is kept.
    types : mapping, optional
        The OpenMetrics type per sample name; ``unknown`` by default, which stores every
        sample under exactly its given name.

    Returns
    -------
    pathlib.Path
    """
    grouped: dict[str, list[Series]] = {}
    for s in series:
        grouped.setdefault(s.name, []).append(s)
    path = Path(path)
    with atomic_write(path, "w", newline="\n") as out, OpenMetricsWriter(out) as writer:
        for name, members in grouped.items():
            writer.family(name, (types or {}).get(name, "unknown"))
            for s in members:
                writer.series(s.name, s.labels, s.timestamps_ms, s.values)
    return path


def seconds_to_millis_lines(lines: Iterable[bytes]) -> Iterator[bytes]:
    """Rewrite OpenMetrics sample lines from second to millisecond timestamps.

    VictoriaMetrics' ``/api/v1/import/prometheus`` reads the Prometheus text format,
    whose timestamps are milliseconds. Comment lines (``# TYPE``, ``# EOF``) pass through.
    """
    for line in lines:
        if not line.strip() or line.startswith(b"#"):
            yield line
            continue
        head, _, stamp = line.rstrip(b"\n").rpartition(b" ")
        millis = Decimal(stamp.decode()) * 1000
        yield head + b" " + str(int(millis.to_integral_value())).encode() + b"\n"


_QUOTE, _SPACE = "\x01", "\x02"
_RESTORE = bytes.maketrans(_QUOTE.encode() + _SPACE.encode(), b'" ')


def write_sample_rows(out: IO[bytes], prefixes: Sequence[Sequence[str]], values: np.ndarray,
                      times_ms: np.ndarray) -> int:
    """Write many samples at C speed, in the order OpenMetrics needs.

    Parameters
    ----------
    out : binary file
        Where the lines go.
    prefixes : sequence of sequences of str
        ``prefixes[g][l]`` is the ``name{labels}`` text of line ``l`` of group ``g``: one
        line per counter or gauge series, or the bucket, ``_count`` and ``_sum`` lines of
        one histogram label set.
    values : numpy.ndarray
        ``[group, scrape, line]`` values; NaN means no sample.
    times_ms : numpy.ndarray
        The scrape times in milliseconds (whole seconds only).

    Returns
    -------
    int
        The number of samples written.

    Notes
    -----
    Lines go group by group, then scrape by scrape, then line by line: a histogram's
    buckets, count and sum for one timestamp stay together, as promtool requires. The
    rows are formatted by Arrow's CSV writer; label text may not contain the control
    characters U+0001 and U+0002, which stand in for quotes and spaces there.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    times_ms = np.asarray(times_ms, dtype=np.int64)
    if len(times_ms) and (times_ms % 1000).any():
        raise InvalidArgument("write_sample_rows needs scrape times in whole seconds")
    groups, _scrapes, lines = values.shape
    flat = values.reshape(-1)
    keep = ~np.isnan(flat)
    if not keep.any():
        return 0
    prefix_index = (np.arange(groups)[:, None, None] * lines + np.arange(lines)[None, None, :])
    prefix_index = np.broadcast_to(prefix_index, values.shape).reshape(-1)[keep]
    seconds = np.broadcast_to((times_ms // 1000)[None, :, None], values.shape).reshape(-1)[keep]
    dictionary = pa.array([p.replace('"', _QUOTE) for group in prefixes for p in group])
    table = pa.table({
        "p": pa.DictionaryArray.from_arrays(pa.array(prefix_index.astype(np.int32)), dictionary),
        "v": pa.array(flat[keep]),
        "t": pa.array(seconds),
    })
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink, write_options=pacsv.WriteOptions(
        include_header=False, delimiter=_SPACE, quoting_style="none"))
    out.write(sink.getvalue().to_pybytes().translate(_RESTORE))
    return int(keep.sum())
