"""Mesh adapters: each mesh's Prometheus metrics as meshlab's tidy traffic, edge, TCP and proxy frames.

>>> import meshlab as ml
>>> ml.Linkerd(prom).traffic(start="-1h", end="now", step="1m")          # doctest: +SKIP
>>> ml.mesh("istio", prom).edges(at="now", window="30s")                 # doctest: +SKIP
>>> ml.Kuma(prom).tcp(per="workload", at="now")                           # doctest: +SKIP
>>> ml.concat_sources({"eu": prom_eu, "us": prom_us}, "proxies", mesh="istio", at="now")  # doctest: +SKIP
"""

from __future__ import annotations

from . import queries
from .base import KINDS, Identity, Mesh, Owners, Signal, Span, TcpSignal
from .consul import Consul
from .hubble import Hubble
from .istio import Istio
from .kuma import Kuma
from .linkerd import Linkerd
from .registry import MeshRegistry, available, detect, get_mesh, mesh, register, registry, unregister
from .sources import concat_sources

__all__ = ["KINDS", "Consul", "Hubble", "Identity", "Istio", "Kuma", "Linkerd", "Mesh", "MeshRegistry", "Owners",
           "Signal", "Span", "TcpSignal", "available", "concat_sources", "detect", "get_mesh", "mesh", "queries",
           "register", "registry", "unregister"]
