"""Read several Prometheus servers (one per cluster) at once, into one frame with a ``cluster`` column.

>>> frame = ml.concat_sources({"prod-eu": prom_eu, "prod-us": prom_us}, "traffic",   # doctest: +SKIP
...                           mesh="istio", start="-1h", end="now", step="1m")
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import pandas as pd

from .. import schema
from ..errors import InvalidArgument, PrometheusError, SchemaError, SourcesFailed, SourcesFailedWarning
from ..prometheus.client import Prometheus
from .base import as_prometheus
from .registry import get_mesh

__all__ = ["FRAME_METHODS", "concat_sources"]

#: The adapter methods ``concat_sources`` can call by name; each returns a frame of the same kind.
FRAME_METHODS = ("traffic", "edges", "tcp", "proxies")


def concat_sources(sources: Mapping[str, Prometheus | str],
                   frame: str | Callable[[Prometheus], pd.DataFrame] = "traffic", *,
                   mesh: str | Mapping[str, str] | None = None, errors: Literal["warn", "raise"] = "warn",
                   max_workers: int = 8, **options: Any) -> pd.DataFrame:
    """Read the same frame from several sources concurrently, as one frame with a ``cluster`` column.

    Each source is asked once per signal, for all of its workloads, in its own thread.

    Parameters
    ----------
    sources : mapping of str to Prometheus or str
        Cluster name -> the Prometheus (a client, or its URL) that holds its mesh metrics.
    frame : {"traffic", "edges", "tcp", "proxies"} or callable
        The adapter method to call, or any ``f(prom) -> DataFrame`` (such as
        ``lambda prom: ml.Istio(prom).traffic(at="now")``).
    mesh : str or mapping of str to str
        The mesh adapter, when ``frame`` is a method name: one for all sources, or one per
        cluster when clusters run different meshes.
    errors : {"warn", "raise"}
        What to do when some sources fail: are unreachable, answer badly or reject a
        query (:class:`~meshlab.errors.PrometheusError`); any other error, such as a bad
        argument, is raised at once. ``"warn"`` returns the others' rows, warns
        with :class:`~meshlab.errors.SourcesFailedWarning`, and lists the failures in
        ``frame.attrs["failed_sources"]``. ``"raise"`` raises
        :class:`~meshlab.errors.SourcesFailed`, whose ``frame`` holds the others' rows.
        When every source fails, :class:`~meshlab.errors.SourcesFailed` is raised either way.
    max_workers : int
        How many sources to read at once.
    **options
        Passed to the adapter method: ``kind``, ``namespace``, ``start``, ``end``, ``step``,
        ``window``, ``at``...

    Returns
    -------
    pandas.DataFrame
        The frame of that kind with ``cluster`` after ``timestamp``: a categorical whose
        categories are every source, in the order given, failed ones included.
    """
    if not sources:
        raise InvalidArgument("concat_sources needs at least one source: {'cluster name': meshlab.Prometheus(...)}")
    if errors not in ("warn", "raise"):
        raise InvalidArgument(f"errors must be 'warn' or 'raise', got {errors!r}")
    if not isinstance(sources, Mapping):
        raise InvalidArgument("concat_sources needs a mapping {'cluster name': meshlab.Prometheus or URL}, "
                              f"got {type(sources).__name__}")
    clients = {name: as_prometheus(prom, f"source {name!r}") for name, prom in sources.items()}
    read = _reader(clients, frame, mesh, options)

    def attempt(name: str) -> pd.DataFrame | str:
        try:
            return read(name)
        except PrometheusError as exc:  # the source's failure, not the caller's: keep the others' rows
            return f"{type(exc).__name__}: {exc}"

    with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(sources)))) as pool:
        results = dict(zip(sources, pool.map(attempt, sources), strict=True))
    frames = {name: r for name, r in results.items() if isinstance(r, pd.DataFrame)}
    failed = {name: r for name, r in results.items() if isinstance(r, str)}
    if not frames:
        raise SourcesFailed(failed)
    combined = _combine(frames, frame, list(sources))
    if failed:
        if errors == "raise":
            raise SourcesFailed(failed, combined)
        combined.attrs["failed_sources"] = failed
        warnings.warn(f"{len(failed)} of {len(sources)} sources failed; the frame has the others' rows: "
                      + "; ".join(f"{name}: {message}" for name, message in failed.items()),
                      SourcesFailedWarning, stacklevel=2)
    return combined


def _reader(sources: Mapping[str, Prometheus], frame: str | Callable[[Prometheus], pd.DataFrame],
            mesh: str | Mapping[str, str] | None, options: dict[str, Any]) -> Callable[[str], pd.DataFrame]:
    if callable(frame):
        if mesh is not None or options:
            raise InvalidArgument("with a callable frame, pass mesh and options inside it, not to concat_sources")
        function = frame
        return lambda name: function(sources[name])
    if frame not in FRAME_METHODS:
        raise InvalidArgument(f"unknown frame {frame!r}; must be one of: {', '.join(FRAME_METHODS)}, or a callable")
    if mesh is None:
        raise InvalidArgument("give mesh= (e.g. mesh='istio', or {'prod-eu': 'istio', 'prod-us': 'linkerd'})")
    meshes = {name: mesh for name in sources} if isinstance(mesh, str) else dict(mesh)
    missing = [name for name in sources if name not in meshes]
    if missing:
        raise InvalidArgument(f"no mesh given for sources {missing}")
    # the caller's mistakes fail here, before any query, rather than as every source failing
    adapters = {name: get_mesh(meshes[name]) for name in sources}
    for name, adapter in adapters.items():
        try:
            inspect.signature(getattr(adapter, frame)).bind(None, **options)
        except TypeError as exc:
            raise InvalidArgument(f"{adapter.__name__}.{frame}(): {exc}") from None
        kind = options.get("kind")
        if kind is not None and frame != "proxies" and kind not in adapter.kinds:
            raise InvalidArgument(f"source {name!r} runs {adapter.name}, which cannot name workloads by kind "
                                  f"{kind!r} (supported: {', '.join(adapter.kinds)}); leave kind= out to use "
                                  "each mesh's default")
    return lambda name: getattr(adapters[name](sources[name]), frame)(**options)


def _combine(frames: Mapping[str, pd.DataFrame], frame: str | Callable[[Prometheus], pd.DataFrame],
             clusters: list[str]) -> pd.DataFrame:
    # every source is a category, failed ones too, so frames from repeated calls line up
    parts = [part.assign(cluster=name) for name, part in frames.items()]
    kind = frame if isinstance(frame, str) else _kind_of(next(iter(frames.values())))
    if kind is None:  # an arbitrary frame from a callable: concatenate as it is
        out = pd.concat(parts, ignore_index=True)
        out.insert(0, "cluster", out.pop("cluster").astype(pd.CategoricalDtype(clusters)))
        return out
    out = schema.concat(parts, kind)
    out["cluster"] = out["cluster"].cat.set_categories(clusters)
    return out


def _kind_of(frame: pd.DataFrame) -> str | None:
    """The adapter frame kind ``frame`` is, if any."""
    for kind in FRAME_METHODS:
        try:
            schema.validate(frame, kind)
        except SchemaError:
            continue
        return kind
    return None
