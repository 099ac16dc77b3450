"""SMI Traffic Metrics (``metrics.smi-spec.io``): meshlab frames to and from ``TrafficMetricsList``.

:func:`to_traffic_metrics` writes a ``traffic`` or ``edges`` frame as the SMI metrics API
serves it, one ``TrafficMetrics`` item per row; :func:`from_traffic_metrics` reads a list
or a single item, from meshlab or from any SMI metrics server, back into a frame.

The wire format is the spec's (servicemeshinterface/smi-spec,
``apis/traffic-metrics/v1alpha1/traffic-metrics.md``), as its Go types
(servicemeshinterface/smi-sdk-go, ``pkg/apis/metrics/v1alpha1`` and ``v1alpha2``) encode it
and as the reference server, servicemeshinterface/smi-metrics, returned it:

- ``resource`` and ``edge.resource`` are Kubernetes ObjectReferences: ``kind`` as Kubernetes
  spells it (``Deployment``, ``StatefulSet``), ``namespace`` (absent for a ``Namespace``), ``name``;
- ``timestamp`` is RFC 3339 in UTC; ``window`` is a Go duration (``30s``, ``1m0s``), which is
  how ``metav1.Duration`` writes it;
- metric values are Kubernetes quantity strings (``"296875m"`` is 296.875); the latency
  quantiles have ``unit: "ms"``, the counts no unit;
- a workload's own traffic (a ``traffic`` row) is ``edge: {direction: "from", side:
  "server", resource: null}``: everything it received, as its own proxies saw it.

What the archived smi-metrics server got wrong, and what meshlab does instead:

- it answered for one instant with one fixed window (30 s unless ``?t=``); meshlab writes
  whole time series, any window, one item per row and step;
- it served one mesh per install; a meshlab frame can hold several, and each item names
  its mesh in the ``meshlab/mesh`` metadata label;
- its Istio queries counted only ``response_code="200"`` as success and read
  ``istio_request_duration_seconds`` while labelling the values ``ms`` (1000 times too
  small); meshlab's adapters classify as each mesh does and read millisecond histograms.
  Consul was never implemented there;
- it truncated every value to milli-units (``int64(v * 1000)``), so NaN became whatever
  integer the platform makes of it and a missing series ``"0"``; meshlab writes exact
  canonical quantities (to the nano-unit, the finest a quantity keeps) and ``null`` where
  there is no value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from .server import SMIServer

from ._spec import API_GROUP, CLUSTER_LABEL, MESH_LABEL, VERSIONS
from ._wire import format_go_duration, format_quantity, parse_go_duration, parse_quantity
from .read import from_traffic_metrics
from .write import to_traffic_metrics


def read(*args: Any, **kwargs: Any) -> pd.DataFrame:
    """Read a cluster's SMI metrics API into a frame: :func:`meshlab.k8s.read_smi` (loads the kubernetes client)."""
    from ..k8s.smi_api import read_smi

    return read_smi(*args, **kwargs)


def serve(*args: Any, **kwargs: Any) -> SMIServer:
    """Serve meshes' signals as the SMI metrics API: :func:`meshlab.smi.server.serve_smi` (loads starlette)."""
    from .server import serve_smi

    return serve_smi(*args, **kwargs)


__all__ = [
    "API_GROUP",
    "CLUSTER_LABEL",
    "MESH_LABEL",
    "VERSIONS",
    "format_go_duration",
    "format_quantity",
    "from_traffic_metrics",
    "parse_go_duration",
    "parse_quantity",
    "read",
    "serve",
    "to_traffic_metrics",
]
