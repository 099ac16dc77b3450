"""From traffic to samples: metric families, rendered chunk by chunk.

A mesh renderer (:mod:`meshlab.sim.meshes`) describes every series once, as a
:class:`Family` of counters, gauges or histograms whose per-interval increments point
into the :class:`~meshlab.sim.traffic.Traffic` arrays (views, not copies).
:func:`render_chunks` then turns the families into :class:`Block` s of cumulative
sample values for one chunk of scrapes at a time, carrying counter state across chunks,
so a day of data never has to be in memory at once. Histogram buckets are sampled per
chunk with a generator seeded by (scenario seed, mesh, family, chunk), so the same
scenario always renders the same samples.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

from .dist import Mixture
from .traffic import _rng

__all__ = ["CHUNK_SECONDS", "Block", "Family", "render_chunks"]

#: Chunk length: Prometheus' own block length, so each chunk backfills as one TSDB block.
CHUNK_SECONDS = 2 * 3600


@dataclass
class _Series:
    name: str
    labels: Mapping[str, str]
    data: np.ndarray          # per-interval increments (counters, histograms) or values (gauges), length n
    exists: np.ndarray        # bool, length n
    resets: np.ndarray | None  # bool, length n: the counter restarts during the interval before
    mixture: Callable[[], Mixture] | None = None


@dataclass
class Family:
    """One metric family and all its series.

    ``le`` are the histogram's bucket bounds in the family's own unit; ``unit_ms`` is how
    many milliseconds that unit is (1 for ``_ms`` histograms, 1000 for ``_seconds`` ones),
    since latency distributions are in milliseconds.
    """

    name: str
    type: str
    help: str
    le: tuple[float, ...] = ()
    series: list[_Series] = field(default_factory=list)
    unit_ms: float = 1.0

    def counter(self, labels: Mapping[str, str], increments: np.ndarray, exists: np.ndarray,
                resets: np.ndarray | None = None, name: str | None = None) -> None:
        """A counter: cumulative sum of ``increments``, restarting where ``resets`` is set."""
        self.series.append(_Series(name or self.name, labels, increments, exists, resets))

    def gauge(self, labels: Mapping[str, str], values: np.ndarray, exists: np.ndarray,
              name: str | None = None) -> None:
        """A gauge with one value per scrape."""
        self.series.append(_Series(name or self.name, labels, values, exists, None))

    def histogram(self, labels: Mapping[str, str], counts: np.ndarray, mixture: Callable[[], Mixture],
                  exists: np.ndarray, resets: np.ndarray | None = None) -> None:
        """A histogram: ``counts[k]`` observations in interval k, drawn from ``mixture()``."""
        self.series.append(_Series(self.name, labels, counts, exists, resets, mixture))


@dataclass
class Block:
    """Samples of one family for one chunk of scrapes.

    ``values[i, t]`` is series ``i`` at scrape ``t`` of the chunk (NaN: no sample). For
    histograms ``buckets[i, t, b]`` holds the cumulative bucket counts (the last bucket is
    +Inf, which is also ``_count``) and ``sums[i, t]`` the ``_sum``.
    """

    family: Family
    names: list[str]
    labels: list[Mapping[str, str]]
    values: np.ndarray
    buckets: np.ndarray | None = None
    sums: np.ndarray | None = None


def _cumulate(increments: np.ndarray, resets: np.ndarray | None, start: np.ndarray) -> np.ndarray:
    """Cumulative sums along the last axis from ``start``, restarting at resets (2-D)."""
    total = np.cumsum(increments, axis=-1) + start[..., None]
    if resets is None or not resets.any():
        return total
    n = increments.shape[-1]
    index = np.where(resets, np.arange(n), -1)
    last = np.maximum.accumulate(index, axis=-1)
    # value at a reset's interval counts only that interval: subtract the total just before it
    before = np.take_along_axis(np.concatenate([start[..., None], total], axis=-1), np.maximum(last, 0), axis=-1)
    return np.where(last >= 0, total - before, total)


def render_chunks(families: list[Family], n: int, chunk: int, *, seed: int,
                  mesh: str) -> Iterator[tuple[slice, list[Block]]]:
    """Yield ``(scrapes, blocks)`` for consecutive chunks of ``chunk`` scrapes from scrape 0.

    Counter state carries from chunk to chunk, so chunks must be consumed in order.
    """
    state: dict[int, np.ndarray] = {}
    for lo in range(0, n, chunk):
        hi = min(lo + chunk, n)
        yield slice(lo, hi), [_render(family, f_index, lo, hi, state, seed=seed, mesh=mesh)
                              for f_index, family in enumerate(families)]


def _render(family: Family, f_index: int, lo: int, hi: int, state: dict[int, np.ndarray], *,
            seed: int, mesh: str) -> Block:
    series = family.series
    names = [s.name for s in series]
    labels = [s.labels for s in series]
    if not series:
        return Block(family, names, labels, np.zeros((0, hi - lo)))
    exists = np.stack([s.exists[lo:hi] for s in series])
    resets = np.stack([s.resets[lo:hi] if s.resets is not None else np.zeros(hi - lo, bool) for s in series])
    if family.type == "gauge":
        values = np.stack([s.data[lo:hi] for s in series]).astype(np.float64)
        return Block(family, names, labels, np.where(exists, values, np.nan))
    if family.type != "histogram":
        increments = np.stack([s.data[lo:hi] for s in series]).astype(np.float64)
        start = state.get(f_index, np.zeros(len(series)))
        values = _cumulate(increments, resets, start)
        state[f_index] = values[:, -1]
        return Block(family, names, labels, np.where(exists, values, np.nan))
    bounds = np.asarray(family.le, dtype=np.float64) * family.unit_ms  # in ms, as the distributions are
    rng = _rng(seed, mesh, family.name, lo)
    n_buckets = len(bounds)
    increments = np.zeros((len(series), hi - lo, n_buckets))
    sum_increments = np.zeros((len(series), hi - lo))
    for i, s in enumerate(series):
        counts = np.asarray(s.data[lo:hi], dtype=np.int64)
        if not counts.any():
            continue
        assert s.mixture is not None
        mixture = s.mixture()
        window = mixture.select(slice(lo, hi), len(s.data))
        probs = window.bucket_probabilities(bounds)
        probs /= probs.sum(axis=-1, keepdims=True)
        drawn = rng.multinomial(counts, probs)
        increments[i] = drawn
        means = window.bucket_means(bounds)
        sum_increments[i] = (drawn * np.where(np.isfinite(means), means, 0.0)).sum(axis=-1) / family.unit_ms
    per_bucket = np.cumsum(increments, axis=-1)  # cumulative over le
    start_b = state.get(f_index, np.zeros((len(series), n_buckets)))
    start_s = state.get(-1 - f_index, np.zeros(len(series)))
    buckets = np.stack([_cumulate(per_bucket[:, :, b], resets, start_b[:, b]) for b in range(n_buckets)], axis=-1)
    sums = _cumulate(sum_increments, resets, start_s)
    state[f_index] = buckets[:, -1, :]
    state[-1 - f_index] = sums[:, -1]
    buckets = np.where(exists[..., None], buckets, np.nan)
    sums = np.where(exists, sums, np.nan)
    return Block(family, names, labels, buckets[..., -1], buckets, sums)
