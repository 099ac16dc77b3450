"""Errors of the Kubernetes layer; each says what to do."""

from __future__ import annotations

from meshlab.errors import MeshlabError

__all__ = ["Forbidden", "KubeconfigError", "KubernetesError", "KubernetesUnavailable", "PortForwardError",
           "PrometheusNotFound"]


class KubernetesError(MeshlabError):
    """Talking to a Kubernetes cluster failed."""


class KubeconfigError(KubernetesError):
    """No kubeconfig (or in-cluster service account) was found, or the context is unusable."""


class KubernetesUnavailable(KubernetesError):
    """The apiserver could not be reached or did not answer in time."""


class Forbidden(KubernetesError):
    """The apiserver refused a request by RBAC.

    Attributes
    ----------
    verb, resource, group, namespace : str or None
        The RBAC verb (``list``, ``get``, ``create``), the resource (``deployments``,
        ``pods/portforward``), its API group (``""`` for the core group) and the namespace
        (None: cluster scope).
    """

    def __init__(self, message: str, *, verb: str, resource: str, group: str, namespace: str | None):
        super().__init__(message)
        self.verb, self.resource, self.group, self.namespace = verb, resource, group, namespace

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_forbidden, (str(self), self.verb, self.resource, self.group, self.namespace))


def _rebuild_forbidden(message: str, verb: str, resource: str, group: str, namespace: str | None) -> Forbidden:
    return Forbidden(message, verb=verb, resource=resource, group=group, namespace=namespace)


class PrometheusNotFound(KubernetesError):
    """No Prometheus Service was found in the cluster."""


class PortForwardError(KubernetesError):
    """The port-forward to a pod was refused or broke."""
