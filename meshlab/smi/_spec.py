"""The SMI Traffic Metrics API's names: group, versions, kinds, labels and latency metrics."""

from __future__ import annotations

import re
from collections.abc import Mapping

API_GROUP = "metrics.smi-spec.io"
#: The API versions written and read. v1alpha2 is v1alpha1 plus ``edge.side`` (and traffic
#: split ``backend``, which meshlab does not use).
VERSIONS = ("v1alpha1", "v1alpha2")
#: The metadata label that names the mesh whose proxies observed an item's traffic.
MESH_LABEL = "meshlab/mesh"
#: The metadata label naming the cluster (source) of an item, for frames from ``concat_sources``.
CLUSTER_LABEL = "meshlab/cluster"

# meshlab kind -> (Kubernetes kind, the resource's plural in the API path). The spec's
# resource list is namespaces, nodes, pods, replicationcontrollers, services, daemonsets,
# deployments, replicasets, statefulsets, jobs and trafficsplits. Nodes have no namespace
# for meshlab's namespace column, and a traffic split's items are per backend, which no
# meshlab frame holds: both are left out.
_KINDS: Mapping[str, tuple[str, str]] = {
    "namespace": ("Namespace", "namespaces"),
    "pod": ("Pod", "pods"),
    "replicationcontroller": ("ReplicationController", "replicationcontrollers"),
    "service": ("Service", "services"),
    "daemonset": ("DaemonSet", "daemonsets"),
    "deployment": ("Deployment", "deployments"),
    "replicaset": ("ReplicaSet", "replicasets"),
    "statefulset": ("StatefulSet", "statefulsets"),
    "job": ("Job", "jobs"),
}
# Kinds that are not namespaced: their ObjectReference has no namespace (meshlab's is the name).
_CLUSTER_KINDS = ("namespace",)

_LATENCY_UNIT = "ms"
_STANDARD_LATENCIES = ("latency_p99_ms", "latency_p90_ms", "latency_p50_ms")  # the spec's order
_LATENCY_COLUMN = re.compile(r"^latency_p(\d+)_ms$")
_LATENCY_METRIC = re.compile(r"^p(\d+)_response_latency$")
_LABEL_VALUE = re.compile(r"^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$")
