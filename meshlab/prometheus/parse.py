"""Turn Prometheus HTTP API responses into tidy frames: the hot path.

A range query can return millions of points. Building one Python object per point
(as ``json.loads`` does) costs more than the transfer itself, so matrix responses
take a fast path that creates no Python object per point:

1. Find each series' ``{"metric":{...},"values":[[...]]}`` by its structural markers.
   ``{"metric":``, ``,"values":[`` and ``]]`` cannot occur unescaped inside a JSON
   string, so a byte search finds exactly the real ones. Only the small label objects
   are decoded with orjson.
2. Blank everything outside the value arrays and map ``[`` to ``,`` and ``]`` to a
   newline. Each point ``[1700000000.5,"42"]`` becomes the CSV row ``,,1700000000.5,"42"``.
3. Let Arrow's multi-threaded CSV reader parse every number at C speed into float64
   columns (its float parser is correctly rounded and reads ``NaN``, ``+Inf``, ``-Inf``).

Anything the fast path does not recognise falls back to a plain orjson decode, which
is exact but slower. Both paths produce identical frames; the tests hold them to a slow
reference conversion.

Longer than 400 lines: it is one parser in two paths that must agree on every body (the
exact decoder judges whatever the fast path declines); they share the envelope, warning and
time-range rules and feed the same blocks, so they stay side by side.
"""

from __future__ import annotations

import gc
import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pandas as pd

from .. import schema
from ..errors import QueryError, ResponseError

__all__ = ["Parsed", "SeriesBlock", "decode_api", "frame_from_block", "merge_blocks", "parse_response"]

#: Bodies smaller than this skip the fast path: its fixed cost is not worth it.
FAST_PATH_MIN_BYTES = 16 * 1024

_OBJ = b'{"metric":'
_VALUES = b',"values":['
_TO_CSV = bytes.maketrans(b"[]", b",\n")
_RESERVED = ("timestamp", "value")
#: A sample value as Prometheus sends it: a decimal or exponent float, NaN or +-Inf. Whitespace,
#: underscores and hex are refused (Python's float() takes them, Prometheus never sends them).
_VALUE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*(?:[eE][+-]?[0-9]+)?|\.[0-9]+(?:[eE][+-]?[0-9]+)?|"
                    r"(?i:nan|inf|infinity))")
#: The bytes the fast path lets through its value arrays besides quotes and commas: digits, signs,
#: NaN, Inf.
_FAST_ALPHABET = b"0123456789.eE+-\nNaIfn"
#: Prometheus timestamps are milliseconds that pandas can hold (years 1677 to 2262).
_MIN_MS = pd.Timestamp.min.value // 1_000_000 + 1
_MAX_MS = pd.Timestamp.max.value // 1_000_000


@dataclass
class SeriesBlock:
    """Series in columnar form: one label dict per series, points concatenated in order.

    Attributes
    ----------
    labels : list of dict
        The label set of each series.
    counts : numpy.ndarray
        int64, the number of points of each series.
    timestamps_ms : numpy.ndarray
        int64 milliseconds since the epoch, series after series.
    values : numpy.ndarray
        float64 values, aligned with ``timestamps_ms``.
    """

    labels: list[dict[str, str]]
    counts: np.ndarray
    timestamps_ms: np.ndarray
    values: np.ndarray

    @classmethod
    def empty(cls) -> SeriesBlock:
        return cls([], np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64))


@dataclass
class Parsed:
    """A decoded successful API response.

    ``block`` holds matrix, vector and scalar results (a scalar is one series with no
    labels); ``text`` holds a string result as ``(timestamp_ms, text)``.
    """

    result_type: str
    block: SeriesBlock = field(default_factory=SeriesBlock.empty)
    text: tuple[int, str] | None = None
    warnings: list[str] = field(default_factory=list)
    infos: list[str] = field(default_factory=list)


@contextmanager
def _gc_paused() -> Iterator[None]:
    # The cyclic GC walks every container created while decoding a large response;
    # pausing it makes decoding several times faster and creates no cycles.
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def parse_response(body: bytes | bytearray, *, query: str = "", status: int | None = None,
                   fast: bool | None = None) -> Parsed:
    """Decode a Prometheus query API response body.

    Parameters
    ----------
    body : bytes or bytearray
        The raw (uncompressed) response body. A bytearray is modified in place by the
        fast path, which saves a copy of a large body.
    query : str
        The PromQL, quoted in errors.
    status : int, optional
        The HTTP status, quoted in errors.
    fast : bool, optional
        Force (True) or forbid (False) the fast matrix path; by default it is used for
        bodies of :data:`FAST_PATH_MIN_BYTES` or more.

    Returns
    -------
    Parsed

    Raises
    ------
    QueryError
        The response is a Prometheus error (``"status": "error"``).
    ResponseError
        The body is not a Prometheus API response (not JSON, truncated, unknown shape).
    """
    use_fast = fast if fast is not None else len(body) >= FAST_PATH_MIN_BYTES
    if use_fast and b'"resultType":"matrix"' in body[:256]:
        parsed = _parse_matrix_fast(body if isinstance(body, bytearray) else bytearray(body))
        if parsed is not None:
            return parsed
    return _parse_generic(body, query=query, status=status)


def _decode(body: bytes | bytearray | memoryview, what: str) -> object:
    try:
        with _gc_paused():
            return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ResponseError(f"{what} is not valid JSON ({exc}); the response may have been cut off") from None


def decode_api(body: bytes | bytearray, *, query: str = "", status: int | None = None) -> dict:
    """Decode any Prometheus API response and return it when its status is success.

    Raises
    ------
    QueryError
        The response is a Prometheus error (``"status": "error"``).
    ResponseError
        The body is not JSON, or not a Prometheus API response.
    """
    doc = _decode(body, "the response body")
    if not isinstance(doc, dict) or "status" not in doc:
        raise ResponseError("the response is JSON but not a Prometheus API response (no 'status' field)")
    if doc["status"] != "success":
        raise QueryError(str(doc.get("errorType", "unknown")), str(doc.get("error", "")), query, status)
    return doc


def _notes(doc: dict) -> tuple[list[str], list[str]]:
    return _note_list(doc.get("warnings")), _note_list(doc.get("infos"))


def _note_list(notes: object) -> list[str]:
    # The API sends a list of strings; a bare string is one note, not one per character.
    if notes is None or notes == []:
        return []
    if isinstance(notes, list):
        return [n if isinstance(n, str) else orjson.dumps(n).decode() for n in notes]
    return [notes if isinstance(notes, str) else orjson.dumps(notes).decode()]


def _parse_generic(body: bytes | bytearray, *, query: str, status: int | None) -> Parsed:
    doc = decode_api(body, query=query, status=status)
    data = doc.get("data")
    if not isinstance(data, dict) or "resultType" not in data:
        raise ResponseError("the response has no data.resultType; is this a query endpoint?")
    try:
        return _convert_generic(data["resultType"], data.get("result"), *_notes(doc))
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise ResponseError(
            f"the response's data.result has an unexpected shape ({type(exc).__name__}: {exc})"
        ) from None


def _convert_generic(kind: str, result: Any, warnings: list[str], infos: list[str]) -> Parsed:
    if kind == "string":
        ts, text = _pair(result, "the string result")
        if not isinstance(text, str):
            raise ResponseError(f"the string result's value is {text!r}, not a string")
        return Parsed(kind, text=(_ms(ts), text), warnings=warnings, infos=infos)
    if kind == "scalar":
        ts, value = _pair(result, "the scalar result")
        block = SeriesBlock([{}], np.ones(1, np.int64), np.array([_ms(ts)], np.int64),
                            np.array([_value(value)], np.float64))
        return Parsed(kind, block, warnings=warnings, infos=infos)
    if kind not in ("matrix", "vector"):
        raise ResponseError(f"unknown resultType {kind!r}; expected matrix, vector, scalar or string")
    if not isinstance(result, list):
        raise ResponseError(f"the {kind} result is {type(result).__name__}, not a list of series")
    labels: list[dict[str, str]] = []
    counts: list[int] = []
    times: list[int] = []
    values: list[float] = []
    key = "values" if kind == "matrix" else "value"
    for series in result:
        if not isinstance(series, dict):
            raise ResponseError(f"a series of the {kind} result is {type(series).__name__}, not an object")
        if "histograms" in series or "histogram" in series:
            raise ResponseError(
                "the result holds native histograms, which meshlab does not read yet; query "
                "histogram_count(), histogram_sum() or histogram_quantile() of them instead"
            )
        if key not in series:
            raise ResponseError(f"a series of the {kind} result has no {key!r}")
        labels.append(_labels(series.get("metric")))
        points = series[key] if kind == "matrix" else [series[key]]
        if not isinstance(points, list):
            raise ResponseError(f"a series' {key!r} is {type(points).__name__}, not a list of points")
        counts.append(len(points))
        for point in points:
            ts, value = _pair(point, "a point")
            times.append(_ms(ts))
            values.append(_value(value))
    block = SeriesBlock(labels, np.array(counts, np.int64), np.array(times, np.int64),
                        np.array(values, np.float64))
    return Parsed(kind, block, warnings=warnings, infos=infos)


def _pair(point: Any, what: str) -> tuple[Any, Any]:
    if not isinstance(point, list) or len(point) != 2:
        raise ResponseError(f"{what} is {_short(point)}, not a [timestamp, \"value\"] pair")
    return point[0], point[1]


def _labels(metric: Any) -> dict[str, str]:
    if not isinstance(metric, dict):
        raise ResponseError(f"a series' labels ('metric') are {_short(metric)}, not an object of strings")
    for name, value in metric.items():
        if not isinstance(value, str):
            raise ResponseError(f"label {name!r} has the value {_short(value)}, not a string")
    return metric


def _value(value: Any) -> float:
    # Prometheus sends sample values as JSON strings; a number, true or "1_000" is not one.
    if not isinstance(value, str) or not _VALUE.fullmatch(value):
        raise ResponseError(f"a sample value is {_short(value)}, not a number in a string such as \"1.5\"")
    return float(value)


def _ms(seconds: Any) -> int:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        raise ResponseError(f"a timestamp is {_short(seconds)}, not a number of unix seconds")
    if not _MIN_MS <= seconds * 1000 <= _MAX_MS:
        raise ResponseError(_time_range_message(seconds))
    return round(seconds * 1000)


def _time_range_message(seconds: float) -> str:
    hint = "; is the server sending milliseconds as seconds?" if abs(seconds) > 1e11 else ""
    return (f"a timestamp of {seconds:g} s is outside the years 1677 to 2262 that pandas can hold{hint} "
            "(Prometheus sends unix seconds)")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _parse_matrix_fast(buf: bytearray) -> Parsed | None:
    """The no-object-per-point matrix parser; None when the body is not the expected shape."""
    first = buf.find(_OBJ)
    if first < 0:
        return None
    view = memoryview(buf)
    labels: list[dict[str, str]] = []
    counts: list[int] = []
    blanks: list[tuple[int, int]] = []
    blank_from = 0
    pos = first
    try:
        while True:
            values_at = buf.find(_VALUES, pos)
            if values_at < 0:
                return None
            metric = orjson.loads(view[pos + len(_OBJ):values_at])
            if not isinstance(metric, dict) or not all(isinstance(v, str) for v in metric.values()):
                return None  # the exact decoder explains it
            labels.append(metric)
            start = values_at + len(_VALUES) - 1  # the array's opening '['
            if buf[start + 1:start + 2] != b"[":
                return None
            end = buf.find(b"]]", start) + 2
            if end < 2:
                return None
            counts.append(buf.count(b"[", start + 1, end))
            blanks.append((blank_from, start))
            blank_from = end
            if buf[end:end + 2] != b"},":
                break
            pos = end + 2
            if buf[pos:pos + len(_OBJ)] != _OBJ:
                return None
        head = bytes(view[:first])
        tail = bytes(view[end:])
    except orjson.JSONDecodeError:
        return None
    finally:
        view.release()
    # The envelope without its series, e.g. {"status":"success","data":{...,"result":[]},"warnings":[...]}
    try:
        doc = orjson.loads(head + tail[1:])
    except orjson.JSONDecodeError:
        return None
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(doc, dict) or doc.get("status") != "success" or not isinstance(data, dict) \
            or data.get("result") != []:
        return None
    blanks.append((blank_from, len(buf)))
    total = int(sum(counts))
    # Anything but [number,"value"] pairs goes to the exact decoder, which judges it, so both
    # paths agree on every JSON body: only these bytes, two quotes and three commas per point
    # (one pass). Like Arrow, it trusts the body is JSON: a timestamp spelled '+1' or '.5',
    # which no JSON encoder writes, is read rather than refused.
    csv = buf.translate(_TO_CSV)  # a copy: the body stays whole for the exact decoder
    for lo, hi in blanks:
        csv[lo:hi] = b"\n" * (hi - lo)
    rest = csv.translate(None, _FAST_ALPHABET)
    if len(rest) != 5 * total or rest.count(b'"') != 2 * total:
        return None
    del rest, buf[:]  # the caller's body is spent; free it before Arrow allocates
    table = _read_points(csv)
    del csv
    if table is None or table.num_rows != total:  # a malformed number: refused, as the exact decoder would
        raise ResponseError("a matrix response could not be parsed: a timestamp or value is not a number")
    times = _column(table.column("t"))
    values = _column(table.column("v"))
    del table
    if len(times) and not (np.isfinite(times).all() and times.min() * 1000 >= _MIN_MS
                           and times.max() * 1000 <= _MAX_MS):
        bad = times[~np.isfinite(times) | (times * 1000 < _MIN_MS) | (times * 1000 > _MAX_MS)][0]
        if not np.isfinite(bad):
            return None  # NaN or Inf timestamps are not JSON
        raise ResponseError(_time_range_message(float(bad)))
    times *= 1000
    np.rint(times, out=times)
    warnings, infos = _notes(doc)
    block = SeriesBlock(labels, np.array(counts, np.int64), times.astype(np.int64), values)
    return Parsed("matrix", block, warnings=warnings, infos=infos)


def _read_points(csv: bytearray) -> Any:
    """Parse the CSV rows into an Arrow table with float64 columns t and v; None if malformed."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    try:
        return pacsv.read_csv(
            pa.py_buffer(csv),
            memory_pool=pa.system_memory_pool(),
            read_options=pacsv.ReadOptions(column_names=["_open", "_sep", "t", "v"], block_size=4 << 20),
            parse_options=pacsv.ParseOptions(double_quote=False, escape_char=False),
            convert_options=pacsv.ConvertOptions(
                include_columns=["t", "v"],
                column_types={"t": pa.float64(), "v": pa.float64()},
                null_values=[], strings_can_be_null=False, quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None


def _column(chunked: object) -> np.ndarray:
    # One copy into a writable numpy array, whatever the number of Arrow chunks.
    chunks = [c.to_numpy(zero_copy_only=True) for c in chunked.chunks]  # type: ignore[attr-defined]
    if not chunks:
        return np.zeros(0, np.float64)
    return np.concatenate(chunks) if len(chunks) > 1 else chunks[0].copy()


def merge_blocks(blocks: Sequence[SeriesBlock]) -> SeriesBlock:
    """Merge the blocks of consecutive time chunks into one, as a single query would return it.

    Series are matched by their full label set and ordered the way Prometheus orders a
    range result (by sorted label pairs); each series' points stay in time order. A point
    returned by two chunks (possible on servers that align chunk edges) is kept once.
    """
    if len(blocks) == 1:
        return blocks[0]
    keys: dict[tuple[tuple[str, str], ...], int] = {}
    block_ids = []
    for block in blocks:
        ids = [keys.setdefault(tuple(sorted(lab.items())), len(keys)) for lab in block.labels]
        block_ids.append(np.array(ids, np.int64))
    ordered = sorted(keys)  # Prometheus' order: by sorted (name, value) pairs
    rank = np.empty(len(keys), np.int64)
    rank[[keys[k] for k in ordered]] = np.arange(len(ordered))
    sid = np.concatenate([rank[ids].repeat(b.counts) for ids, b in zip(block_ids, blocks, strict=True)])
    times = np.concatenate([b.timestamps_ms for b in blocks])
    values = np.concatenate([b.values for b in blocks])
    order = np.lexsort((times, sid))
    sid, times, values = sid[order], times[order], values[order]
    keep = np.ones(len(sid), bool)
    keep[1:] = (sid[1:] != sid[:-1]) | (times[1:] != times[:-1])
    if not keep.all():
        sid, times, values = sid[keep], times[keep], values[keep]
    counts = np.bincount(sid, minlength=len(ordered)).astype(np.int64)
    return SeriesBlock([dict(k) for k in ordered], counts, times, values)


def frame_from_block(block: SeriesBlock) -> pd.DataFrame:
    """Build the tidy ``query`` frame: timestamp, value, then one categorical column per label.

    Columns are ordered ``__name__`` first, then the other labels alphabetically. A label
    called ``timestamp`` or ``value`` becomes ``label_timestamp`` / ``label_value``.
    """
    names = sorted({name for lab in block.labels for name in lab}, key=lambda n: (n != "__name__", n))
    if not len(block.counts):
        return schema.empty("query", [_column_name(n, names) for n in names])
    nanos = block.timestamps_ms * 1_000_000
    columns: dict[str, object] = {
        "timestamp": pd.DatetimeIndex(nanos.view("M8[ns]")).tz_localize("UTC"),
        "value": block.values,
    }
    for name in names:
        per_series = [lab.get(name) for lab in block.labels]
        categories = sorted({v for v in per_series if v is not None})
        index = {v: i for i, v in enumerate(categories)}
        codes = np.array([index.get(v, -1) for v in per_series], dtype=np.int32)  # type: ignore[arg-type]
        dtype = pd.CategoricalDtype(pd.Index(categories))
        columns[_column_name(name, names)] = pd.Categorical.from_codes(
            codes.repeat(block.counts), dtype=dtype, validate=False
        )
    frame = pd.DataFrame(columns, copy=False)
    return schema.validate(frame, "query")


def _column_name(label: str, labels: Sequence[str]) -> str:
    name = label
    while name in _RESERVED or (name != label and name in labels):
        name = "label_" + name
    return name
