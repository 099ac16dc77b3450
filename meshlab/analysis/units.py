"""Explicit unit conversions for benchmark readers: every number is converted to the unit
its ``benchmark`` column names (milliseconds, millicores, MiB, seconds)."""

from __future__ import annotations

from ..errors import InvalidArgument

__all__ = ["DIMENSION", "convert_factor", "target_dimension"]

#: unit name -> (dimension, factor to the dimension's base unit of the benchmark frame)
DIMENSION: dict[str, tuple[str, float]] = {
    # time, base: milliseconds
    "ns": ("time", 1e-6), "us": ("time", 1e-3), "µs": ("time", 1e-3), "μs": ("time", 1e-3),
    "ms": ("time", 1.0), "s": ("time", 1e3), "min": ("time", 60e3),
    # CPU, base: millicores
    "mcores": ("cpu", 1.0), "m": ("cpu", 1.0), "millicores": ("cpu", 1.0), "cores": ("cpu", 1e3),
    # memory, base: MiB
    "B": ("memory", 1 / 2**20), "bytes": ("memory", 1 / 2**20), "KiB": ("memory", 1 / 2**10),
    "MiB": ("memory", 1.0), "GiB": ("memory", 2**10), "kB": ("memory", 1e3 / 2**20), "KB": ("memory", 1e3 / 2**20),
    "MB": ("memory", 1e6 / 2**20), "GB": ("memory", 1e9 / 2**20),
    # plain counts and rates
    "1": ("count", 1.0), "%": ("ratio", 0.01), "ratio": ("ratio", 1.0),
}


def target_dimension(column: str) -> tuple[str, float] | None:
    """The dimension a benchmark column is measured in, and the factor of its own unit to that base.

    ``duration_s`` is in seconds: one of its units is 1000 of the base (milliseconds).
    """
    if column.startswith("latency_") and column.endswith("_ms"):
        return ("time", 1.0)
    if column == "duration_s":
        return ("time", 1e3)  # one second is 1000 ms
    if column.endswith("_cpu_mcores"):
        return ("cpu", 1.0)
    if column.endswith("_mem_mib"):
        return ("memory", 1.0)
    if column == "error_ratio":
        return ("ratio", 1.0)
    return None


def convert_factor(unit: str, column: str, argument: str = "units") -> float:
    """The factor that converts a value in ``unit`` to the unit of benchmark column ``column``.

    Raises
    ------
    InvalidArgument
        If the unit is unknown or measures something else than the column.
    """
    if unit not in DIMENSION:
        raise InvalidArgument(f"{argument}: unknown unit {unit!r} for {column!r}; known units: {', '.join(DIMENSION)}")
    dimension, factor = DIMENSION[unit]
    target = target_dimension(column)
    if target is None:
        raise InvalidArgument(f"{argument}: column {column!r} takes no unit (it is a count, a rate or a label); "
                              f"remove it from {argument}")
    if target[0] != dimension:
        raise InvalidArgument(f"{argument}: unit {unit!r} measures {dimension}, but {column!r} measures {target[0]}")
    return factor / target[1]
