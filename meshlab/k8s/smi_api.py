"""Reading the SMI Traffic Metrics API (``metrics.smi-spec.io``) of a cluster into frames."""

from __future__ import annotations

import re
from typing import Literal

import pandas as pd

from meshlab.errors import InvalidArgument

from . import _client
from .errors import KubernetesError

__all__ = ["read_smi"]

GROUP = "metrics.smi-spec.io"
#: the resource kinds smi-metrics serves, by plural; singular and Kind spellings are accepted too
KINDS = ("namespaces", "deployments", "pods", "daemonsets", "statefulsets", "jobs")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def read_smi(kind: str = "deployments", name: str | None = None, namespace: str | None = None, *,
             edges: bool = False, context: str | None = None, version: str = "v1alpha1",
             mesh: str | None = None, side: Literal["client", "server"] | None = None) -> pd.DataFrame:
    """Read TrafficMetrics from the cluster's SMI metrics API into a ``traffic`` or ``edges`` frame.

    What ``kubectl get --raw /apis/metrics.smi-spec.io/v1alpha1/namespaces/NS/deployments[/NAME[/edges]]``
    returns, through :func:`meshlab.smi.from_traffic_metrics`.

    Parameters
    ----------
    kind : str
        ``deployments`` (default), ``pods``, ``daemonsets``, ``statefulsets``, ``jobs`` or
        ``namespaces`` (singular and ``Deployment`` spellings too).
    name : str, optional
        One resource; by default every one of ``kind`` in ``namespace``.
    namespace : str, optional
        By default the context's namespace. For ``kind="namespaces"`` it is the resource itself.
    edges : bool
        The resource's edges (``.../NAME/edges``: an ``edges`` frame); needs ``name``.
    context : str, optional
        A kubeconfig context; by default the current one.
    version : str
        The API version, ``v1alpha1`` (smi-metrics) or ``v1alpha2``.
    mesh, side
        As for :func:`meshlab.smi.from_traffic_metrics` (smi-metrics' Linkerd edges are
        ``side="client"``).

    Raises
    ------
    KubernetesError
        The cluster does not serve the SMI metrics API (the message says to install
        smi-metrics), or the resource does not exist.
    Forbidden
        RBAC refuses ``get``/``list`` on the kind in ``metrics.smi-spec.io``.
    """
    plural = _plural(kind)
    if version not in ("v1alpha1", "v1alpha2"):
        raise InvalidArgument(f"version must be 'v1alpha1' or 'v1alpha2', got {version!r}")
    for arg, value in (("name", name), ("namespace", namespace)):
        if value is not None and (not isinstance(value, str) or not _NAME.match(value)):
            raise InvalidArgument(f"{arg} must be a Kubernetes object name (lower case letters, digits, '-', '.'), "
                                  f"got {value!r}")
    if edges and name is None:
        raise InvalidArgument("edges=True needs name=: edges belong to one resource "
                              "(read_smi('deployments', 'web', edges=True))")
    if not isinstance(edges, bool):
        raise InvalidArgument(f"edges must be True or False, got {edges!r}")
    cluster = _client.load(context)
    try:
        ns = namespace or cluster.namespace
        if plural == "namespaces":
            path = f"/apis/{GROUP}/{version}/namespaces" + (f"/{name}" if name else "")
            scope = None
        else:
            path = f"/apis/{GROUP}/{version}/namespaces/{ns}/{plural}" + (f"/{name}" if name else "")
            scope = ns
        path += "/edges" if edges else ""
        try:
            body = _client.get_raw(cluster, path, verb="get" if name else "list", resource=plural, group=GROUP,
                                   namespace=scope)
        except KubernetesError as exc:
            if "could not find the requested resource" in str(exc):
                raise KubernetesError(
                    f"the cluster of context {cluster.context!r} does not serve the SMI metrics API "
                    f"({GROUP}/{version}): GET {path} was not found; install smi-metrics (its APIService registers "
                    f"{version}.{GROUP}), check with `kubectl --context {cluster.context} get apiservices "
                    f"{version}.{GROUP}`") from None
            raise
    finally:
        cluster.close()
    from meshlab.smi import from_traffic_metrics

    return from_traffic_metrics(body, mesh=mesh, side=side)


def _plural(kind: object) -> str:
    if isinstance(kind, str):
        k = kind.strip().lower()
        for plural in KINDS:
            if k in (plural, plural[:-1]):
                return plural
    raise InvalidArgument(f"kind must be one of {list(KINDS)} (or singular), got {kind!r}")
