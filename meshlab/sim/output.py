"""Simulator outputs: OpenMetrics files for backfilling, and the text a live exporter serves.

Both render the same :class:`~meshlab.sim.render.Block` s, so a scrape of the live
exporter and the backfilled history agree sample for sample.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .._files import atomic_write
from ..openmetrics import family_header, format_labels, format_value, write_sample_rows
from .meshes import mesh_families
from .render import CHUNK_SECONDS, Block, Family, render_chunks
from .traffic import Traffic

if TYPE_CHECKING:
    from ..prometheus.client import Prometheus

__all__ = ["exposition", "format_le", "mesh_chunks", "push_backfill", "write_backfill"]


def format_le(bound: float) -> str:
    """A bucket bound as proxies print it: ``1``, ``0.5``, ``3600000``, ``+Inf``."""
    if np.isinf(bound):
        return "+Inf"
    return str(int(bound)) if float(bound).is_integer() else repr(float(bound))


def mesh_chunks(traffic: Traffic, meshes: Sequence[str]) -> Iterator[tuple[slice, list[Block]]]:
    """Yield ``(scrapes, blocks)`` per chunk, with every mesh's blocks for that chunk."""
    chunk = max(int(CHUNK_SECONDS // traffic.interval_s), 1)
    iterators = [render_chunks(mesh_families(traffic, mesh), traffic.n, chunk, seed=traffic.scenario.seed,
                               mesh=mesh) for mesh in meshes]
    for parts in zip(*iterators, strict=True):
        yield parts[0][0], [block for _, blocks in parts for block in blocks]


def _openmetrics_type(family: Family) -> tuple[str, str]:
    if family.type == "counter":
        if family.name.endswith("_total"):
            return family.name[: -len("_total")], "counter"
        return family.name, "unknown"  # Envoy's counters lack the _total OpenMetrics demands
    return family.name, family.type


def _lines(block: Block) -> tuple[list[list[tuple[str, dict[str, str]]]], np.ndarray]:
    """Every sample line of a block: ``(name, labels)`` per line of each group, and values.

    A group is one counter or gauge series, or one histogram label set's buckets, ``_count``
    and ``_sum``; values are ``[group, scrape, line]``.
    """
    family = block.family
    if family.type != "histogram":
        return [[(name, dict(labels))] for name, labels in zip(block.names, block.labels, strict=True)], \
            block.values[:, :, None]
    les = [format_le(b) for b in family.le]
    groups = [[(f"{family.name}_bucket", {**labels, "le": le}) for le in les]
              + [(f"{family.name}_count", dict(labels)), (f"{family.name}_sum", dict(labels))]
              for labels in block.labels]
    assert block.buckets is not None and block.sums is not None
    values = np.concatenate([block.buckets, block.buckets[..., -1:], block.sums[..., None]], axis=-1)
    return groups, values


def _rows(block: Block) -> tuple[list[list[str]], np.ndarray]:
    groups, values = _lines(block)
    return [[name + format_labels(labels) for name, labels in group] for group in groups], values


def write_chunk(path: Path, blocks: Iterable[Block], times_ms: np.ndarray) -> int:
    """Write one chunk's blocks as an OpenMetrics file (families merged by name); returns samples written."""
    by_family = _by_family(blocks)
    written = 0
    with atomic_write(path, "wb", durable=False) as out:  # backfill input, read once: no fsync
        for members in by_family.values():
            name, kind = _openmetrics_type(members[0].family)
            out.write(family_header(name, kind, members[0].family.help).encode())
            for block in members:
                if block.values.shape[0]:
                    prefixes, values = _rows(block)
                    written += write_sample_rows(out, prefixes, values, times_ms)
        out.write(b"# EOF\n")
    return written


def write_backfill(traffic: Traffic, meshes: Sequence[str], directory: str | os.PathLike[str] | None = None
                   ) -> tuple[list[Path], int]:
    """Write every mesh's metrics for the whole run as OpenMetrics, one file per 2-hour chunk.

    Chunks are rendered one at a time, so memory stays bounded by one chunk. One file per
    chunk lets promtool read each file once (it re-reads a file for every 2-hour block it
    spans) and lets files be backfilled in parallel.

    Returns
    -------
    (list of pathlib.Path, int)
        The files written and the number of samples in them.
    """
    out_dir = Path(directory) if directory is not None else Path(tempfile.mkdtemp(prefix="meshlab-sim-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    paths, total = [], 0
    for scrapes, blocks in mesh_chunks(traffic, meshes):
        path = out_dir / f"chunk-{scrapes.start:07d}.om"
        total += write_chunk(path, blocks, traffic.times_ms[scrapes])
        paths.append(path)
    return paths, total


#: Remote write goes out in slices of this length, oldest first: Prometheus refuses samples
#: more than half a block (an hour) older than the newest it holds.
PUSH_SLICE_SECONDS = 30 * 60


def push_backfill(traffic: Traffic, meshes: Sequence[str], target: Prometheus | str, *,
                  concurrency: int = 2, max_request_bytes: int | None = None,
                  labels: Mapping[str, str] | None = None) -> int:
    """Send every mesh's metrics for the whole run to a server by remote write.

    The fast way to load a run: a day of 30 workloads goes into a local Prometheus about
    six times faster than through OpenMetrics and promtool (``bench/bench_sim.py``). Chunks
    are rendered one at a time and sent in 30-minute slices, oldest first, each stored
    before the next is sent (while the next is encoded), so Prometheus' in-order window
    (an hour behind the newest sample) always holds. The server must hold nothing newer
    than the run's start: a fresh one, or one whose data ends earlier. Push all meshes in
    one call.

    Parameters
    ----------
    traffic : Traffic
        The simulated run.
    meshes : sequence of str
        Whose metrics to render.
    target : Prometheus or str
        A client for a server that accepts remote write on ``/api/v1/write`` (Prometheus
        started with ``--web.enable-remote-write-receiver``, as
        ``LocalPrometheus(remote_write=True)`` is; VictoriaMetrics), or a remote-write URL
        such as ``http://host:9009/api/v1/push`` for Mimir (see
        :class:`~meshlab.prometheus.remote_write.RemoteWriter`).
    concurrency : int
        Requests in flight at once.
    max_request_bytes : int, optional
        Uncompressed bytes per request (4 MiB by default).
    labels : mapping of str to str, optional
        Labels added to every series, such as ``{"cluster": "eu"}`` for one cluster of a fleet.

    Returns
    -------
    int
        The number of samples the server acknowledged. VictoriaMetrics acknowledges and
        then drops samples older than its retention period (a month by default): start it
        with a longer ``-retentionPeriod`` for old runs.

    Raises
    ------
    PrometheusError
        With the server's own message when it refuses a request, and how many samples it
        had acknowledged by then (those stay stored).
    """
    from ..prometheus.remote_write import RemoteWriter, encode_labels, encode_timeseries

    extra = dict(labels or {})
    per_slice = max(int(PUSH_SLICE_SECONDS // traffic.interval_s), 1)
    sizing = {} if max_request_bytes is None else {"max_request_bytes": max_request_bytes}
    with RemoteWriter(target, concurrency=concurrency, **sizing) as writer:
        for scrapes, blocks in mesh_chunks(traffic, meshes):
            times = traffic.times_ms[scrapes]
            encoded = []
            for block in blocks:
                groups, values = _lines(block)
                series = [encode_labels({"__name__": name, **own, **extra}) for group in groups for name, own in group]
                flat = values.transpose(0, 2, 1).reshape(len(series), len(times))  # one row per line
                encoded.append((series, flat))
            for lo in range(0, len(times), per_slice):
                hi = min(lo + per_slice, len(times))
                for series, flat in encoded:
                    writer.write(encode_timeseries(series, flat[:, lo:hi], times[lo:hi]))
                writer.barrier()
        writer.flush()
        return writer.samples


def exposition(blocks: Iterable[Block], index: int) -> str:
    """Prometheus text format (0.0.4) of the samples at one scrape of a chunk, without timestamps."""
    lines: list[str] = []
    for members in _by_family(blocks).values():
        family = members[0].family
        lines += family_header(family.name, family.type, family.help, text_format=True).splitlines()
        for block in members:
            prefixes, values = _rows(block)
            for group, row in zip(prefixes, values[:, index, :], strict=True):
                lines += [f"{p} {format_value(v)}" for p, v in zip(group, row, strict=True) if not np.isnan(v)]
    return "\n".join(lines) + "\n"


def _by_family(blocks: Iterable[Block]) -> dict[str, list[Block]]:
    # Meshes share some families (cAdvisor's); each family's samples must stay together.
    grouped: dict[str, list[Block]] = {}
    for block in blocks:
        grouped.setdefault(block.family.name, []).append(block)
    return grouped
