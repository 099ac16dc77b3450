"""Load-test results as one tidy ``benchmark`` frame, and SMP documents back out.

:func:`read_benchmark` reads Fortio JSON, Meshery/SMP result documents, Istio's
perf/benchmark CSV and any table with a column map; :func:`write_smp` writes SMP
``PerformanceTestResult`` documents that read back exactly.
"""

from __future__ import annotations

import contextlib
import glob
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import pandas as pd

from .._files import atomic_write
from ..errors import InvalidArgument
from ..schema import FRAMES, conform
from .readers import fortio, istio_csv, smp, table

__all__ = ["FORMATS", "read_benchmark", "write_smp"]

#: format name -> what it reads
FORMATS = {
    "fortio": "Fortio JSON results (fortio load -json): a result or a list of them",
    "meshery": "Meshery result documents wrapping Fortio runner_results (SMP's test-results.json)",
    "smp": "SMP PerformanceTestResult documents (as meshlab.write_smp writes them)",
    "istio-csv": "Istio perf/benchmark CSV (Labels, NumThreads, ActualQPS, p50/p90/p99 in microseconds)",
    "table": "any CSV or frame, with columns={their name: benchmark column} and units={their name: unit}",
}

PathLike = Union[str, os.PathLike]
Source = Union[PathLike, pd.DataFrame, Sequence[Union[PathLike, pd.DataFrame]]]
Label = Union[str, Callable[[str], str], None]


def _known_formats() -> str:
    return "; ".join(f"{name!r}: {what}" for name, what in FORMATS.items())


def _expand(source: Source) -> list[str | pd.DataFrame]:
    """Files (and frames) a source names: a file, a directory (its .json and .csv files,
    recursively), a glob pattern, or a list of those."""
    if isinstance(source, pd.DataFrame):
        return [source]
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        if os.path.isdir(text):
            found = sorted(str(p) for p in Path(text).rglob("*") if p.suffix.lower() in (".json", ".csv", ".tsv"))
            if not found:
                raise InvalidArgument(f"source: directory {text!r} holds no .json or .csv file")
            return list(found)
        if os.path.exists(text):
            return [text]
        if glob.has_magic(text):
            matched = sorted(glob.glob(text, recursive=True))
            if not matched:
                raise InvalidArgument(f"source: the pattern {text!r} matches no file")
            return [m for m in matched if os.path.isfile(m)]
        raise InvalidArgument(f"source: no such file or directory: {text!r}")
    if isinstance(source, Sequence):
        if not source:
            raise InvalidArgument("source: an empty list; pass a file, a directory, a glob or a frame")
        return [item for part in source for item in _expand(part)]
    raise InvalidArgument(f"source: expected a path, a directory, a glob, a frame or a list of them, "
                          f"got {type(source).__name__}")


def _detect_json(doc: object) -> str | None:
    if smp.is_meshery(doc):
        return "meshery"
    if smp.is_smp_result(doc):
        return "smp"
    first = doc[0] if isinstance(doc, list) and doc else doc
    if fortio.is_fortio(first):
        return "fortio"
    return None


def _read_one(item: str | pd.DataFrame, fmt: str, columns: Mapping[str, str] | None,
              units: Mapping[str, str] | None) -> list[dict[str, Any]]:
    known = FRAMES["benchmark"].names
    if isinstance(item, pd.DataFrame):
        name = "<frame>"
        if fmt == "auto":
            fmt = "istio-csv" if istio_csv.is_istio_csv(list(item.columns)) and not columns else "table"
        if fmt == "istio-csv":
            return istio_csv.rows(item.astype(str), name)
        if fmt != "table":
            raise InvalidArgument(f"format: a frame is read as 'table' or 'istio-csv', not {fmt!r}")
        return table.rows(item, name, columns, units, known)
    name = item
    suffix = Path(item).suffix.lower()
    if suffix == ".json" or fmt in ("fortio", "meshery", "smp"):
        try:
            with open(item, encoding="utf-8") as f:
                doc = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidArgument(f"source: {item!r} is not JSON ({exc}); known formats: {_known_formats()}") from None
        detected = _detect_json(doc)
        if fmt == "auto":
            fmt = detected or ""
        elif detected != fmt:
            raise InvalidArgument(f"format={fmt!r}: {item!r} does not look like that format "
                                  f"(it looks like {detected or 'none of them'}); known formats: {_known_formats()}")
        if fmt == "fortio":
            return fortio.rows(doc, name)
        if fmt == "meshery":
            return smp.meshery_rows(doc, name)
        if fmt == "smp":
            return smp.smp_rows(doc, name)
        raise InvalidArgument(f"source: {item!r} matches no known benchmark format; known formats: "
                              f"{_known_formats()}")
    try:
        frame = pd.read_csv(item, dtype=str, keep_default_na=False, sep="\t" if suffix == ".tsv" else ",")
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise InvalidArgument(f"source: {item!r} is neither JSON nor a readable table ({exc}); "
                              f"known formats: {_known_formats()}") from None
    if fmt == "auto":
        if istio_csv.is_istio_csv(list(frame.columns)) and not columns:
            fmt = "istio-csv"
        elif columns or any(c in known for c in frame.columns):
            fmt = "table"
        else:
            raise InvalidArgument(f"source: {item!r} matches no known benchmark format (columns "
                                  f"{list(frame.columns)}); pass columns= to read it as a table. "
                                  f"Known formats: {_known_formats()}")
    if fmt == "istio-csv":
        if not istio_csv.is_istio_csv(list(frame.columns)):
            raise InvalidArgument(f"format='istio-csv': {item!r} lacks Labels, NumThreads, ActualQPS or p50")
        return istio_csv.rows(frame, name)
    if fmt == "table":
        return table.rows(_numeric(frame), name, columns, units, known)
    raise InvalidArgument(f"format={fmt!r} cannot read {item!r}; known formats: {_known_formats()}")


def _numeric(frame: pd.DataFrame) -> pd.DataFrame:
    """A table read as strings, with every column that is all numbers (or empty) as float64."""
    out = frame.copy()
    for name in out.columns:
        with contextlib.suppress(ValueError, TypeError):  # a label column stays text
            out[name] = pd.to_numeric(out[name].replace("", math.nan)).astype("float64")
    return out


def _label(value: Label, path: str) -> object:
    if value is None:
        return math.nan
    return value(path) if callable(value) else value


def read_benchmark(source: Source, format: str = "auto", mesh: Label = None, mode: Label = None,
                   columns: Mapping[str, str] | None = None,
                   units: Mapping[str, str] | None = None, cost: Mapping[str, Any] | None = None,
                   roles: Mapping[str, str] | None = None, role_label: str = "pod",
                   warmup: str | float | pd.Timedelta = "1m") -> pd.DataFrame:
    """Read load-test results into one ``benchmark`` frame (one row per run).

    Parameters
    ----------
    source : path, directory, glob, pandas.DataFrame, or a list of them
        A directory is read recursively (its ``.json``, ``.csv`` and ``.tsv`` files).
    format : {"auto", "fortio", "meshery", "smp", "istio-csv", "table"}
        ``"auto"`` recognises each file by its content.
    mesh, mode : str or callable, optional
        Label runs whose source does not say (a callable gets the file's path, e.g.
        ``lambda p: Path(p).parent.name`` for harnesses that name folders after meshes).
    columns : mapping, optional
        For tables: their column name -> benchmark column.
    units : mapping, optional
        For tables: their column name -> unit (``"us"``, ``"s"``, ``"cores"``, ``"bytes"``...).
    cost : mapping, optional
        Proxy cost saved as Prometheus range-query JSON (``curl /api/v1/query_range`` or
        ``promtool query range -o json`` output): ``{"cpu": source, "memory": source}``,
        CPU in cores and memory in bytes, each a file, directory, glob, decoded document or
        list of them. Joined to the runs by time window (start + ``warmup`` to start +
        duration): per role, the mean over the window of the role's mean proxy. A memory
        series that is a counter or behaves like a rate (bytes per second) is refused.
        See :mod:`meshlab.analysis.readers.cost`.
    roles : mapping, optional
        With ``cost``: role (``client``, ``server``, ``gateway``) -> regular expression on
        the ``role_label`` label (default: Istio perf/benchmark's ``fortioclient-``,
        ``fortioserver-`` and ``ingressgateway`` pods).
    role_label : str
        With ``cost``: the label the role expressions read (default ``pod``).
    warmup : duration
        With ``cost``: left out at the start of every run, because the first ``rate``
        window still carries the previous run's load (default ``"1m"``).

    Returns
    -------
    pandas.DataFrame
        A frame of kind ``benchmark`` (see :data:`meshlab.schema.FRAMES`): latency in ms,
        CPU in millicores, memory in MiB, NaN where the source has nothing.

    Raises
    ------
    InvalidArgument
        For a missing file, an unknown format (the message lists the known ones), a bad
        column map or unit.
    """
    if format != "auto" and format not in FORMATS:
        raise InvalidArgument(f"format={format!r} is unknown; use 'auto' or one of: {_known_formats()}")
    if (columns or units) and format not in ("auto", "table"):
        raise InvalidArgument(f"columns= and units= apply to format='table', not {format!r}")
    names = FRAMES["benchmark"].names
    records: list[dict[str, Any]] = []
    for item in _expand(source):
        path = "<frame>" if isinstance(item, pd.DataFrame) else item
        for row in _read_one(item, format, columns, units):
            for key, value in (("mesh", mesh), ("mode", mode)):
                if pd.isna(row.get(key, math.nan)):
                    row[key] = _label(value, path)
            records.append(row)
    frame = pd.DataFrame.from_records(records) if records else pd.DataFrame(columns=names)
    for name in names:
        if name not in frame.columns:
            frame[name] = "" if name == "note" else math.nan
    frame["note"] = frame["note"].fillna("")
    if frame["timestamp"].isna().all():
        frame["timestamp"] = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns, UTC]")
    frame = conform(frame, "benchmark")
    if cost is not None:
        from .readers.cost import join_cost

        frame = conform(join_cost(frame, cost, roles=roles, role_label=role_label, warmup=warmup), "benchmark")
    elif roles is not None:
        raise InvalidArgument("roles= applies with cost=; pass the Prometheus JSON of the proxies' CPU and memory")
    return frame


def write_smp(frame: pd.DataFrame, path: PathLike) -> Path:
    """Write a benchmark frame as SMP ``PerformanceTestResult`` documents (a JSON list).

    Latency goes to ``latencies_ms`` in milliseconds (Meshery's export writes seconds
    there); everything the message has no field for goes to ``labels`` under
    ``meshlab.*`` as exact decimal strings, so :func:`read_benchmark` reads the file back
    equal to ``frame``. The file is written atomically.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    from ..schema import validate

    validate(frame, "benchmark")
    docs = smp.to_smp(frame)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(target, "w") as f:
        json.dump(docs, f, indent=1, allow_nan=False)
        f.write("\n")
    return target
