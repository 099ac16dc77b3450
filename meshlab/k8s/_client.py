"""Loading a kubeconfig context and calling the apiserver, with errors that say what to do.

``kubernetes`` is imported inside the functions: ``import meshlab`` must stay light.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from meshlab.errors import InvalidArgument

from .errors import Forbidden, KubeconfigError, KubernetesError, KubernetesUnavailable

#: (connect, read) seconds for every apiserver request: nothing hangs on a dead apiserver.
REQUEST_TIMEOUT = (10.0, 60.0)
_SA_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


@dataclass
class Cluster:
    """A client for one kubeconfig context."""

    api: Any  #: kubernetes.client.ApiClient
    context: str
    namespace: str  #: the context's default namespace
    server: str

    def close(self) -> None:
        self.api.close()


def kubeconfig_paths() -> list[str]:
    """Where kubectl would look: ``$KUBECONFIG`` (a path list) or ``~/.kube/config``."""
    env = os.environ.get("KUBECONFIG")
    if env:
        return [p for p in env.split(os.pathsep) if p]
    return [os.path.expanduser("~/.kube/config")]


def load(context: str | None = None) -> Cluster:
    """A client for ``context`` of the kubeconfig (its current context when None), or in-cluster."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    from meshlab.prometheus.client import redact_url  # the server URL appears in errors

    if context is not None and (not isinstance(context, str) or not context.strip()):
        raise InvalidArgument(f"context must be a kubeconfig context name or None (the current context), "
                              f"got {context!r}")
    paths = kubeconfig_paths()
    existing = [p for p in paths if os.path.isfile(p)]
    if not existing:
        if context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            cfg = client.Configuration()
            try:
                config.load_incluster_config(client_configuration=cfg)
            except ConfigException as exc:
                raise KubeconfigError(f"no kubeconfig, and the in-cluster service account is unusable: {exc}") from None
            try:
                with open(_SA_NAMESPACE) as f:
                    namespace = f.read().strip() or "default"
            except OSError:
                namespace = "default"
            return Cluster(client.ApiClient(cfg), "in-cluster", namespace, redact_url(str(cfg.host)))
        where = " or ".join(paths)
        raise KubeconfigError(
            f"no kubeconfig found (looked at {where}); set KUBECONFIG to your kubeconfig file or put it at "
            "~/.kube/config (kind, minikube and the clouds' get-credentials commands write it), "
            "or run inside a pod with a service account")
    config_file = os.pathsep.join(existing)
    try:
        contexts, active = config.list_kube_config_contexts(config_file=config_file)
    except (ConfigException, OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise KubeconfigError(f"the kubeconfig {config_file} is unusable: {exc}; check it with "
                              "`kubectl config view`") from None
    names = [c.get("name") for c in contexts or []]
    if context is None:
        if not active:
            raise KubeconfigError(f"the kubeconfig {config_file} has no current-context; pass context= one of "
                                  f"{names} or run `kubectl config use-context NAME`")
        chosen = active
    else:
        chosen = next((c for c in contexts or [] if c.get("name") == context), None)
        if chosen is None:
            raise InvalidArgument(f"context {context!r} is not in the kubeconfig {config_file}; "
                                  f"its contexts are {names}")
    name = chosen["name"]
    cfg = client.Configuration()
    try:
        config.load_kube_config(config_file=config_file, context=name, client_configuration=cfg,
                                persist_config=False)
    except (ConfigException, OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise KubeconfigError(f"context {name!r} of the kubeconfig {config_file} is unusable: {exc}; "
                              f"check it with `kubectl --context {name} cluster-info`") from None
    namespace = (chosen.get("context") or {}).get("namespace") or "default"
    return Cluster(client.ApiClient(cfg), name, namespace, redact_url(str(cfg.host)))


def server_message(body: Any) -> str:
    """The ``message`` of a Kubernetes ``Status`` body, else the body's start."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not body:
        return ""
    try:
        decoded = json.loads(body)
    except ValueError:
        return str(body)[:300]
    if isinstance(decoded, dict) and isinstance(decoded.get("message"), str):
        return decoded["message"]
    return str(body)[:300]


def error_for(status: int, reason: str, body: Any, cluster: Cluster, *, verb: str, resource: str,
              group: str = "", namespace: str | None = None) -> KubernetesError:
    """The meshlab error for an apiserver answer ``status``, naming what to do."""
    message = server_message(body) or reason
    gr = f"{resource}.{group}" if group else resource
    where = f"in namespace {namespace!r}" if namespace else "at cluster scope"
    ns_flag = f"-n {namespace}" if namespace else "-A"
    if status == 403:
        return Forbidden(
            f"forbidden: the user of context {cluster.context!r} may not {verb} {gr} {where} "
            f"(RBAC verb {verb!r}, resource {resource!r}, API group {group!r}); ask for a Role or ClusterRole "
            f"granting it, check with `kubectl --context {cluster.context} auth can-i {verb} {gr} {ns_flag}`. "
            f"The apiserver said: {message}",
            verb=verb, resource=resource, group=group, namespace=namespace)
    if status == 401:
        return KubeconfigError(
            f"the apiserver of context {cluster.context!r} ({cluster.server}) refused its credentials "
            f"(401 {reason}); refresh them (the cloud's get-credentials command, or a new token) and check with "
            f"`kubectl --context {cluster.context} get ns`")
    return KubernetesError(f"the apiserver of context {cluster.context!r} answered {status} {reason} to "
                           f"{verb} {gr} {where}: {message}")


def call(cluster: Cluster, fn: Callable[..., Any], *args: Any, verb: str, resource: str, group: str = "",
         namespace: str | None = None, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` with a timeout; apiserver failures become meshlab errors."""
    import urllib3
    from kubernetes.client.exceptions import ApiException

    try:
        return fn(*args, _request_timeout=REQUEST_TIMEOUT, **kwargs)
    except ApiException as exc:
        raise error_for(exc.status or 0, str(exc.reason), exc.body, cluster, verb=verb, resource=resource,
                        group=group, namespace=namespace) from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise KubernetesUnavailable(
            f"cannot reach the apiserver of context {cluster.context!r} at {cluster.server}: "
            f"{_reason(exc)}; check it with `kubectl --context {cluster.context} cluster-info`") from None


def list_all(cluster: Cluster, fn: Callable[..., Any], *args: Any, verb: str = "list", resource: str,
             group: str = "", namespace: str | None = None, **kwargs: Any) -> Iterator[Any]:
    """Every item of a list call, page by page (500 at a time)."""
    token = None
    while True:
        page = call(cluster, fn, *args, verb=verb, resource=resource, group=group, namespace=namespace,
                    limit=500, _continue=token, **kwargs)
        yield from page.items or []
        token = getattr(page.metadata, "var_continue", None) or getattr(page.metadata, "_continue", None)
        if not token:
            return


def get_raw(cluster: Cluster, path: str, *, verb: str, resource: str, group: str,
            namespace: str | None) -> bytes:
    """GET ``path`` on the apiserver (an aggregated API such as SMI's) and return the body."""
    import urllib3

    params = cluster.api.param_serialize("GET", path, header_params={"Accept": "application/json"},
                                         auth_settings=["BearerToken"])
    try:
        response = cluster.api.call_api(*params, _request_timeout=REQUEST_TIMEOUT)
        response.read()
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise KubernetesUnavailable(
            f"cannot reach the apiserver of context {cluster.context!r} at {cluster.server}: "
            f"{_reason(exc)}; check it with `kubectl --context {cluster.context} cluster-info`") from None
    if response.status != 200:
        raise error_for(response.status, str(response.reason), response.data, cluster, verb=verb,
                        resource=resource, group=group, namespace=namespace)
    return bytes(response.data)


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason or exc)
