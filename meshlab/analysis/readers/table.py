"""Any table (a CSV or a frame) of benchmark results, with a column map and units.

``columns`` maps the table's column names to the benchmark frame's (``{"p99":
"latency_p99_ms"}``); columns already named like the frame's are taken as they are.
``units`` gives the unit of a table column (by its name in the table) when it is not the
frame's: ``{"p99": "us"}`` divides by 1000. Unit names are in
:data:`meshlab.analysis.units.DIMENSION`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from ...errors import InvalidArgument
from ..units import convert_factor

__all__ = ["rows"]


def rows(table: pd.DataFrame, source: str, columns: Mapping[str, str] | None,
         units: Mapping[str, str] | None, known: list[str]) -> list[dict[str, Any]]:
    """Rows of the benchmark frame from a table whose columns are mapped by ``columns``."""
    mapping = dict(columns or {})
    unknown = sorted(target for target in mapping.values() if target not in known)
    if unknown:
        raise InvalidArgument(f"columns: {unknown} are not benchmark columns; map to some of {known}")
    missing = sorted(name for name in mapping if name not in table.columns)
    if missing:
        raise InvalidArgument(f"columns: the table has no column {missing}; its columns are {list(table.columns)}")
    for name in table.columns:
        if name not in mapping and name in known:
            mapping[name] = name
    if not mapping:
        raise InvalidArgument(f"columns: no column of the table ({list(table.columns)}) maps to a benchmark column; "
                              "pass columns={'their name': 'benchmark column', ...}")
    units = dict(units or {})
    stray = sorted(name for name in units if name not in mapping)
    if stray:
        raise InvalidArgument(f"units: {stray} name no mapped column; units are keyed by the table's column names")
    out = table[list(mapping)].rename(columns=mapping)
    for name, unit in units.items():
        target = mapping[name]
        out[target] = pd.to_numeric(out[target], errors="raise").astype("float64") * convert_factor(unit, target)
    records = out.to_dict("records")
    for i, record in enumerate(records):
        record.setdefault("source", source)
        record.setdefault("run_id", f"{source}#{i}")
    return records
