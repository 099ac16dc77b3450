"""``ml.k8s.serve_smi``: the SMI Traffic Metrics API server, which lives in :mod:`meshlab.smi.server`.

It needs no kubernetes client (a cluster only routes to it through an ``APIService``), so it
sits beside the SMI writer and reader; this name stays for ``ml.k8s.serve_smi``.
"""

from __future__ import annotations

from meshlab.smi.server import SMIServer, serve_smi

__all__ = ["SMIServer", "serve_smi"]
