"""The latency model: what a request to a workload takes, per interval, as one side sees it.

The service time is the workload's own lognormal mixture (:class:`~meshlab.sim.scenario.Latency`),
multiplied by its incidents' ``latency_spike`` factors and, for a workload with
``capacity_rps``, by a queueing factor. Proxies (and, client side, the network) add to it:

- ``proxy_latency: linear`` (the default): each proxy on the way adds one load-dependent
  shift (:meth:`~meshlab.sim.costs.ProxyCost.latency_ms`), the same at every quantile.
- ``proxy_latency: fitted``: each proxy adds its fitted p50, p90 and p99
  (:meth:`~meshlab.sim.costs.ProxyCost.added_latency_ms`, at its request rate and
  connections). The sum over the proxies is realised as ``shift + (1 + r) * service``:
  ``shift`` and ``r`` are chosen so that the p50 and p99 of the result are exactly the
  service's plus the added p50 and p99 (the p90 lands near the fitted one: both grow with
  the quantile), and the result stays a mixture the ground truth reads exactly. ``r`` is
  held so that ``shift >= 0``; where that binds (a service whose spread is small next to the
  proxies'), the p99 gets less than the fitted addition.

Kept apart from :mod:`meshlab.sim.traffic` (who calls whom, how often) so each stays short.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .costs import MESH_COSTS
from .dist import Mixture

if TYPE_CHECKING:
    from .scenario import Workload
    from .traffic import Traffic

__all__ = ["MAX_UTILISATION", "latency_mixture", "queueing_factor"]

#: Above this share of its capacity a workload's queue is held (factor 20) instead of growing without bound.
MAX_UTILISATION = 0.95


def queueing_factor(load_rps: np.ndarray, capacity_rps: float | None) -> np.ndarray:
    """How much longer requests take at a load: M/M/1's ``1 / (1 - load / capacity)``, held at 20."""
    load = np.asarray(load_rps, dtype=np.float64)
    if capacity_rps is None:
        return np.ones(load.shape)
    return 1.0 / (1.0 - np.clip(load / capacity_rps, 0.0, MAX_UTILISATION))


def latency_mixture(traffic: Traffic, workload: Workload, mesh: str, side: str, caller: Workload | None = None,
                    network_ms: float = 0.0) -> Mixture:
    """The latency distribution per interval of requests to ``workload``; see :meth:`Traffic.latency`."""
    spec = workload.latency
    n = traffic.n
    server_proxy = mesh != "none" and not workload.external
    caller_proxy = side == "client" and mesh != "none" and caller is not None and caller.meshed
    median = spec.median_ms * traffic.latency_factor[workload.key]
    sigma, tail_p, tail_f = np.full(n, spec.sigma), np.full(n, spec.tail_probability), np.full(n, spec.tail_factor)
    if traffic.scenario.proxy_latency == "linear":
        # in this order, so runs built before the fitted model stay identical to the last bit
        shift = np.zeros(n)
        if server_proxy:
            shift = shift + MESH_COSTS[mesh].latency_ms(traffic.proxy_rps(workload))
        if side == "client":
            shift = shift + network_ms
            if caller_proxy:
                assert caller is not None
                shift = shift + MESH_COSTS[mesh].latency_ms(traffic.proxy_rps(caller))
        return Mixture(median=median, sigma=sigma, tail_p=tail_p, tail_f=tail_f, shift=shift)
    base = np.full(n, network_ms if side == "client" else 0.0)
    proxies = [w for w, on in ((workload, server_proxy), (caller, caller_proxy)) if on and w is not None]
    if not proxies:
        return Mixture(median=median, sigma=sigma, tail_p=tail_p, tail_f=tail_f, shift=base)
    cost = MESH_COSTS[mesh]
    added = np.sum([cost.added_latency_ms(traffic.proxy_rps(w), traffic.proxy_connections(w)) for w in proxies], axis=0)
    first, last = added[:, 0], added[:, -1]
    bare = Mixture(median=median, sigma=sigma, tail_p=tail_p, tail_f=tail_f, shift=np.zeros(n))
    low, high = bare.quantile(cost.added_quantiles[0]), bare.quantile(cost.added_quantiles[-1])
    with np.errstate(divide="ignore", invalid="ignore"):
        stretch = np.nan_to_num(np.clip((last - first) / (high - low), 0.0, first / low), nan=0.0, posinf=0.0)
    return Mixture(median=median * (1 + stretch), sigma=sigma, tail_p=tail_p, tail_f=tail_f,
                   shift=base + first - stretch * low)
