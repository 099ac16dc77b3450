"""Mesh adapters: each mesh's Prometheus metrics as meshlab's tidy traffic, edge, TCP and proxy frames.

>>> import meshlab as ml
>>> ml.Linkerd(prom).traffic(start="-1h", end="now", step="1m")          # doctest: +SKIP
>>> ml.mesh("istio", prom).edges(at="now", window="30s")                 # doctest: +SKIP
>>> ml.Kuma(prom).tcp(per="workload", at="now")                           # doctest: +SKIP
>>> ml.concat_sources({"eu": prom_eu, "us": prom_us}, "proxies", mesh="istio", at="now")  # doctest: +SKIP
"""

from __future__ import annotations

from .base import KINDS, Identity, Mesh, Owners, Signal, TcpSignal, available, detect, get_mesh, mesh, register
from .consul import Consul
from .hubble import Hubble
from .istio import Istio
from .kuma import Kuma
from .linkerd import Linkerd
from .sources import concat_sources

__all__ = ["KINDS", "Consul", "Hubble", "Identity", "Istio", "Kuma", "Linkerd", "Mesh", "Owners", "Signal", "TcpSignal",
           "available", "concat_sources", "detect", "get_mesh", "mesh", "register"]
