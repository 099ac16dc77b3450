"""Latency distributions: a shifted two-component lognormal mixture, in closed form.

Each observed latency is ``shift + X`` where ``X`` is the service time: with
probability ``1 - p`` lognormal(median ``m``, shape ``s``), with probability ``p``
lognormal(median ``m * f``, shape ``s``). ``shift`` is what proxies and the network add.
Every function is vectorised over arrays of parameters (one entry per interval).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np
from scipy.special import ndtr, ndtri

__all__ = ["Mixture"]


@dataclass(frozen=True)
class Mixture:
    """Arrays (broadcastable) of mixture parameters; milliseconds throughout."""

    median: np.ndarray
    sigma: np.ndarray
    tail_p: np.ndarray
    tail_f: np.ndarray
    shift: np.ndarray

    def cdf(self, x: np.ndarray) -> np.ndarray:
        """P(latency <= x)."""
        y = np.asarray(x, dtype=np.float64) - self.shift
        with np.errstate(divide="ignore", invalid="ignore"):
            logy = np.log(np.where(y > 0, y, 1.0))
            body = ndtr((logy - np.log(self.median)) / self.sigma)
            tail = ndtr((logy - np.log(self.median * self.tail_f)) / self.sigma)
        value = (1 - self.tail_p) * body + self.tail_p * tail
        return np.where(y > 0, value, 0.0)

    def partial_mean(self, x: np.ndarray) -> np.ndarray:
        """E[latency ; latency <= x]: the contribution of latencies up to x to the mean."""
        y = np.asarray(x, dtype=np.float64) - self.shift
        out = self.shift * self.cdf(x)
        with np.errstate(divide="ignore", invalid="ignore"):
            logy = np.log(np.where(y > 0, y, 1.0))
            for weight, median in ((1 - self.tail_p, self.median), (self.tail_p, self.median * self.tail_f)):
                mu = np.log(median)
                mean = np.exp(mu + self.sigma**2 / 2)
                out = out + weight * mean * ndtr((logy - mu - self.sigma**2) / self.sigma) * (y > 0)
        return np.where(np.isposinf(x), self.mean(), out)

    def mean(self) -> np.ndarray:
        """E[latency]."""
        body = np.exp(np.log(self.median) + self.sigma**2 / 2)
        return self.shift + body * ((1 - self.tail_p) + self.tail_p * self.tail_f)

    def quantile(self, q: float | np.ndarray) -> np.ndarray:
        """The exact q-quantile (bisection on the CDF to 1e-12 relative)."""
        q = np.asarray(q, dtype=np.float64)
        # Bracket between the quantiles of the pure body and pure tail lognormals.
        z = ndtri(np.clip(q, 1e-300, 1 - 1e-16))
        lo = np.log(self.median) + self.sigma * z - 1.0
        hi = np.log(self.median * self.tail_f) + self.sigma * z + 1.0
        lo, hi = np.broadcast_arrays(lo, hi)
        lo, hi = lo.copy(), hi.copy()
        for _ in range(64):
            mid = (lo + hi) / 2
            below = self.cdf(np.exp(mid) + self.shift) < q
            lo = np.where(below, mid, lo)
            hi = np.where(below, hi, mid)
        return self.shift + np.exp((lo + hi) / 2)

    def _map(self, change: Callable[[np.ndarray], np.ndarray]) -> Mixture:
        return Mixture(*(change(np.asarray(getattr(self, f.name), dtype=np.float64)) for f in fields(self)))

    def select(self, index: slice | np.ndarray, n: int) -> Mixture:
        """The parameters of some intervals of an ``n``-interval run (scalars broadcast first)."""
        return self._map(lambda a: np.broadcast_to(a, (n,))[index])

    def per_bucket(self, bounds: np.ndarray) -> Mixture:
        """The same parameters with a trailing axis, to evaluate at every bucket bound at once."""
        return self._map(lambda a: a[..., None])

    def bucket_probabilities(self, bounds: np.ndarray) -> np.ndarray:
        """P(latency in each bucket) for ascending upper bounds ending with +Inf; last axis is buckets."""
        cdf = self.per_bucket(bounds).cdf(np.asarray(bounds, dtype=np.float64))
        return np.clip(np.diff(cdf, axis=-1, prepend=0.0), 0.0, 1.0)

    def bucket_means(self, bounds: np.ndarray) -> np.ndarray:
        """E[latency | latency in bucket], for each bucket; the bucket's midpoint where it is empty."""
        b = np.asarray(bounds, dtype=np.float64)
        expanded = self.per_bucket(b)
        mass = np.diff(expanded.cdf(b), axis=-1, prepend=0.0)
        partial = np.diff(expanded.partial_mean(b), axis=-1, prepend=0.0)
        lower = np.concatenate([[0.0], b[:-1]])
        fallback = np.where(np.isfinite(b), (lower + b) / 2, lower)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(mass > 1e-300, partial / mass, fallback)


def weighted_quantile(mixtures: Mixture, weights: np.ndarray, q: float) -> float:
    """The q-quantile of a weighted mixture of distributions (e.g. the intervals of a window)."""
    weights = np.asarray(weights, dtype=np.float64)
    total = weights.sum()
    if total <= 0:
        return float("nan")
    lo, hi = 1e-6, 1e7
    for _ in range(100):
        mid = np.sqrt(lo * hi)
        if float((mixtures.cdf(mid) * weights).sum() / total) < q:
            lo = mid
        else:
            hi = mid
    return float(np.sqrt(lo * hi))
