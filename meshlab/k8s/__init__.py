"""meshlab in a Kubernetes cluster: which meshes run, where Prometheus is, a port-forward to it.

``ml.k8s.detect_meshes()``, ``ml.k8s.find_prometheus()``, ``ml.connect()`` (also
``ml.k8s.connect``) and ``ml.k8s.read_smi()`` (the SMI Traffic Metrics API; ``ml.k8s.serve_smi()`` serves it). The
``kubernetes`` client is imported only when one of them runs.
"""

from __future__ import annotations

from .discovery import MESH_SIGNS, MeshSigns, PrometheusService, detect_meshes, find_prometheus
from .errors import (
    Forbidden,
    KubeconfigError,
    KubernetesError,
    KubernetesUnavailable,
    PortForwardError,
    PrometheusNotFound,
)
from .portforward import PortForward
from .remote import ForwardedPrometheus, connect
from .smi_api import read_smi
from .smi_server import SMIServer, serve_smi

__all__ = [
    "MESH_SIGNS",
    "Forbidden",
    "ForwardedPrometheus",
    "KubeconfigError",
    "KubernetesError",
    "KubernetesUnavailable",
    "MeshSigns",
    "PortForward",
    "PortForwardError",
    "PrometheusNotFound",
    "PrometheusService",
    "SMIServer",
    "connect",
    "detect_meshes",
    "find_prometheus",
    "read_smi",
    "serve_smi",
]
