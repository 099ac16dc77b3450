"""A stand-in for a Kubernetes apiserver, on 127.0.0.1, for the tests of :mod:`meshlab.k8s`.

This is not a cluster: it is a small HTTP server that answers the requests meshlab's
Kubernetes layer makes with JSON shaped as the real apiserver's (``NamespaceList``,
``DeploymentList``, ``PodList``, ``ServiceList``, ``APIGroupList``, ``APIResourceList``,
``CustomResourceDefinitionList``, ``Status`` for errors), so the real ``kubernetes`` client
parses it. The pod port-forward endpoint speaks the real protocol: a websocket upgrade with
the ``v4.channel.k8s.io`` subprotocol, one data and one error channel per port, each opened
with a frame carrying the port number (little-endian), and data frames prefixed by their
channel byte. It forwards to a real local TCP server (a real Prometheus in the tests), as a
kubelet forwards into a pod's network namespace.

Debian's ``kubectl`` can be pointed at it (``kubectl --kubeconfig ... get pods -A``), which
checks that its answers are shaped as kubectl expects.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TOKEN = "stand-in-token-d2a1f7"  # what the kubeconfig carries; tests check it never leaks

# resource plural -> (group, version, kind, namespaced)
RESOURCES: dict[str, tuple[str, str, str, bool]] = {
    "namespaces": ("", "v1", "Namespace", False),
    "pods": ("", "v1", "Pod", True),
    "services": ("", "v1", "Service", True),
    "deployments": ("apps", "v1", "Deployment", True),
    "daemonsets": ("apps", "v1", "DaemonSet", True),
    "customresourcedefinitions": ("apiextensions.k8s.io", "v1", "CustomResourceDefinition", False),
}


def meta(name: str, namespace: str | None = None, labels: dict[str, str] | None = None) -> dict[str, Any]:
    uid = hashlib.md5(f"{namespace}/{name}".encode()).hexdigest()
    m: dict[str, Any] = {"name": name, "uid": f"{uid[:8]}-{uid[8:12]}-{uid[12:16]}-{uid[16:20]}-{uid[20:32]}",
                         "resourceVersion": "1000", "creationTimestamp": "2026-11-01T10:00:00Z"}
    if namespace is not None:
        m["namespace"] = namespace
    if labels:
        m["labels"] = dict(labels)
    return m


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": meta(name, labels={"kubernetes.io/metadata.name": name}),
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}


def deployment(ns: str, name: str, labels: dict[str, str], kind: str = "Deployment") -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": meta(name, ns, labels),
            "spec": {"selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": name, "image": f"example/{name}:1"}]}}},
            "status": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1, "updatedReplicas": 1}
            if kind == "Deployment" else
            {"currentNumberScheduled": 1, "desiredNumberScheduled": 1, "numberMisscheduled": 0, "numberReady": 1}}


def pod(ns: str, name: str, labels: dict[str, str], ports: dict[str, int], *, ready: bool = True,
        phase: str = "Running") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta(name, ns, labels),
            "spec": {"containers": [{"name": "main", "image": "example/main:1",
                                     "ports": [{"name": k, "containerPort": v, "protocol": "TCP"}
                                               for k, v in ports.items()]}]},
            "status": {"phase": phase, "podIP": "10.0.0.7",
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def service(ns: str, name: str, selector: dict[str, str], ports: list[dict[str, Any]],
            labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta(name, ns, labels),
            "spec": {"selector": selector, "type": "ClusterIP", "clusterIP": "10.96.0.10",
                     "ports": [{"protocol": "TCP", **p} for p in ports]}}


def crd(plural: str, group: str, kind: str, version: str = "v1") -> dict[str, Any]:
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": meta(f"{plural}.{group}"),
            "spec": {"group": group, "scope": "Namespaced",
                     "names": {"plural": plural, "singular": plural.rstrip("s"), "kind": kind,
                               "listKind": kind + "List"},
                     "versions": [{"name": version, "served": True, "storage": True}]}}


def status(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                           "message": message, "reason": reason, "code": code}
    if details:
        out["details"] = details
    return out


@dataclass
class Cluster:
    """What the stand-in apiserver holds. Tests fill it, then start :class:`StubApiserver`."""

    objects: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {k: [] for k in RESOURCES})
    #: extra API groups served (besides the built-in ones and the CRDs'), e.g. {"linkerd.io": "v1alpha2"}
    groups: dict[str, str] = field(default_factory=dict)
    #: (verb, resource) pairs the user may not do, answered 403 as the real RBAC denial
    forbidden: set[tuple[str, str]] = field(default_factory=set)
    #: (namespace, pod) -> (host, port) where that pod's ports really are
    pod_addresses: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)
    #: raw GET path -> JSON answer (the SMI metrics API and anything else aggregated)
    raw: dict[str, Any] = field(default_factory=dict)
    #: what came in: (method, path, authorization header present and right)
    requests: list[tuple[str, str, bool]] = field(default_factory=list)
    portforwards: int = 0
    #: refuse requests without the kubeconfig's token (client-go sends tokens only over TLS, so the
    #: kubectl check turns this off; the stand-in is plain HTTP)
    require_token: bool = True
    #: API group -> URL of the server behind it, proxied as the aggregation layer does (an APIService)
    aggregated: dict[str, str] = field(default_factory=dict)
    #: most items per list page when the client sends limit= (apiservers may return fewer than asked)
    page_size: int = 500
    #: seconds the port-forward endpoint stays silent before answering the upgrade (a stuck apiserver)
    portforward_delay: float = 0.0

    def add(self, resource: str, *objs: dict[str, Any]) -> None:
        self.objects[resource].extend(objs)


def _selector_matches(selector: str, labels: dict[str, str]) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        key, _, value = term.partition("=")
        if labels.get(key.strip()) != value.lstrip("=").strip():
            return False
    return True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        cluster = self.server.cluster
        url = urlsplit(self.path)
        url = url._replace(path=url.path.rstrip("/") or "/")
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        authorised = self.headers.get("Authorization") == f"Bearer {TOKEN}"
        cluster.requests.append(("GET", self.path, authorised))
        if not authorised and cluster.require_token:
            return self._send(401, status(401, "Unauthorized", "Unauthorized"))
        parts = [p for p in url.path.split("/") if p]
        if self.headers.get("Upgrade", "").lower() == "websocket":
            return self._portforward(parts, query)
        if len(parts) >= 6 and parts[:2] == ["apis", "metrics.smi-spec.io"] and parts[3] == "namespaces":
            verb = "get" if len(parts) >= 7 else "list"  # RBAC is checked before the aggregated server is asked
            if (verb, parts[5]) in cluster.forbidden:
                return self._send(403, status(403, "Forbidden", (
                    f'{parts[5]}.metrics.smi-spec.io is forbidden: User "system:serviceaccount:default:reader" cannot '
                    f'{verb} resource "{parts[5]}" in API group "metrics.smi-spec.io" in the namespace "{parts[4]}"'),
                    {"group": "metrics.smi-spec.io", "kind": parts[5]}))
        if len(parts) >= 2 and parts[0] == "apis" and parts[1] in cluster.aggregated:
            with urlopen_quiet(cluster.aggregated[parts[1]] + self.path) as (code, body):
                data = body
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return None
        if url.path in cluster.raw:
            return self._send(200, cluster.raw[url.path])
        if url.path.startswith("/apis/metrics.smi-spec.io/"):
            return self._send(404, status(404, "NotFound", "the server could not find the requested resource"))
        if url.path == "/api":
            return self._send(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]})
        if url.path == "/apis":
            return self._send(200, self._group_list())
        if url.path == "/version":
            return self._send(200, {"major": "1", "minor": "31", "gitVersion": "v1.31.0", "platform": "linux/amd64"})
        served = self._served()
        if url.path == "/api/v1" or (len(parts) == 3 and parts[0] == "apis" and served.get(parts[1]) == parts[2]):
            return self._send(200, self._resource_list(url.path))
        # /api/v1/[namespaces/NS/]RESOURCE[/NAME]  or  /apis/GROUP/VERSION/[namespaces/NS/]RESOURCE[/NAME]
        rest = parts[2:] if parts[:1] == ["api"] else parts[3:]
        ns = None
        if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] in RESOURCES:
            ns, rest = rest[1], rest[2:]
        if not rest or rest[0] not in RESOURCES:
            return self._send(404, status(404, "NotFound", "the server could not find the requested resource"))
        resource, name = rest[0], (rest[1] if len(rest) > 1 else None)
        group, version, kind, _ = RESOURCES[resource]
        verb = "get" if name else "list"
        if (verb, resource) in cluster.forbidden:
            gr = f"{resource}.{group}" if group else resource
            where = f'in the namespace "{ns}"' if ns else "at the cluster scope"
            return self._send(403, status(403, "Forbidden", (
                f'{gr} is forbidden: User "system:serviceaccount:default:reader" cannot {verb} resource '
                f'"{resource}" in API group "{group}" {where}'), {"group": group, "kind": resource}))
        items = [o for o in cluster.objects[resource] if ns is None or o["metadata"].get("namespace") == ns]
        if "labelSelector" in query:
            items = [o for o in items if _selector_matches(query["labelSelector"], o["metadata"].get("labels", {}))]
        api_version = f"{group}/{version}" if group else version
        if name is not None:
            found = [o for o in items if o["metadata"]["name"] == name]
            if not found:
                return self._send(404, status(404, "NotFound", f'{resource} "{name}" not found',
                                              {"name": name, "group": group, "kind": resource}))
            return self._send(200, found[0])
        list_meta: dict[str, Any] = {"resourceVersion": "1000"}
        if "limit" in query:  # pages, with an opaque continue token as the real one
            offset = int(base64.urlsafe_b64decode(query["continue"]).decode()) if query.get("continue") else 0
            size = min(int(query["limit"]), cluster.page_size)
            if offset + size < len(items):
                list_meta["continue"] = base64.urlsafe_b64encode(str(offset + size).encode()).decode()
                list_meta["remainingItemCount"] = len(items) - offset - size
            items = items[offset:offset + size]
        return self._send(200, {"apiVersion": api_version, "kind": kind + "List", "metadata": list_meta,
                                "items": items})

    def _group_list(self) -> dict[str, Any]:
        groups = self._served()
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
            {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v}],
             "preferredVersion": {"groupVersion": f"{g}/{v}", "version": v}} for g, v in groups.items()]}

    def _served(self) -> dict[str, str]:
        cluster = self.server.cluster
        crds = {c["spec"]["group"]: c["spec"]["versions"][0]["name"]
                for c in cluster.objects["customresourcedefinitions"]}
        return {"apps": "v1", "apiextensions.k8s.io": "v1", **crds, **cluster.groups}

    def _resource_list(self, path: str) -> dict[str, Any]:
        group_version = path.removeprefix("/api/").removeprefix("/apis/")
        resources = []
        for plural, (group, version, kind, namespaced) in RESOURCES.items():
            if (f"{group}/{version}" if group else version) != group_version:
                continue
            resources.append({"name": plural, "singularName": kind.lower(), "namespaced": namespaced, "kind": kind,
                              "verbs": ["get", "list", "watch"]})
            if plural == "pods":
                resources.append({"name": "pods/portforward", "singularName": "", "namespaced": True,
                                  "kind": "PodPortForwardOptions", "verbs": ["create", "get"]})
        for c in self.server.cluster.objects["customresourcedefinitions"]:  # a CRD's group lists its kinds
            if f"{c['spec']['group']}/{c['spec']['versions'][0]['name']}" == group_version:
                names = c["spec"]["names"]
                resources.append({"name": names["plural"], "singularName": names["singular"],
                                  "namespaced": c["spec"]["scope"] == "Namespaced", "kind": names["kind"],
                                  "verbs": ["get", "list", "watch"]})
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}

    # -- port-forward: websocket, v4.channel.k8s.io -------------------------------------------

    def _portforward(self, parts: list[str], query: dict[str, str]) -> None:
        cluster = self.server.cluster
        if len(parts) != 7 or parts[:3] != ["api", "v1", "namespaces"] or parts[4] != "pods" \
                or parts[6] != "portforward":
            return self._send(404, status(404, "NotFound", "the server could not find the requested resource"))
        ns, name = parts[3], parts[5]
        if cluster.portforward_delay:
            time.sleep(cluster.portforward_delay)
        if ("create", "pods/portforward") in cluster.forbidden:
            return self._send(403, status(403, "Forbidden", (
                f'pods "{name}" is forbidden: User "system:serviceaccount:default:reader" cannot create resource '
                f'"pods/portforward" in API group "" in the namespace "{ns}"'), {"name": name, "kind": "pods"}))
        if not any(p["metadata"]["name"] == name and p["metadata"]["namespace"] == ns for p in cluster.objects["pods"]):
            return self._send(404, status(404, "NotFound", f'pods "{name}" not found', {"name": name, "kind": "pods"}))
        offered = [p.strip() for p in self.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        if "v4.channel.k8s.io" not in offered:
            return self._send(400, status(400, "BadRequest", "no supported subprotocol offered"))
        port = int(query["ports"])
        key = self.headers["Sec-WebSocket-Key"]
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.send_header("Sec-WebSocket-Protocol", "v4.channel.k8s.io")
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        cluster.portforwards += 1
        lock = threading.Lock()

        def send(opcode: int, payload: bytes) -> None:
            with lock:
                self.wfile.write(_frame(opcode, payload))
                self.wfile.flush()

        port_bytes = struct.pack("<H", port)
        send(2, b"\x00" + port_bytes)  # data channel 0 opens with its port
        send(2, b"\x01" + port_bytes)  # error channel 1 too
        host, target_port = cluster.pod_addresses.get((ns, name), ("127.0.0.1", 1))
        target_port = target_port if target_port else port
        try:
            upstream = socket.create_connection((host, target_port), timeout=5)
        except OSError as exc:
            # The kubelet's words when nothing listens on the port inside the pod.
            send(2, b"\x01" + (f"error forwarding port {port} to pod {name}, uid : failed to execute portforward "
                               f"in network namespace: failed to connect to localhost:{port} inside namespace: "
                               f"{exc.strerror or exc}").encode())
            send(8, struct.pack(">H", 1000))
            return
        upstream.settimeout(None)

        def pump_back() -> None:
            try:
                while data := upstream.recv(65536):
                    send(2, b"\x00" + data)
            except OSError:
                pass
            with suppress(OSError):
                send(8, struct.pack(">H", 1000))

        back = threading.Thread(target=pump_back, daemon=True)
        back.start()
        try:
            while True:
                opcode, payload = _read_frame(self.rfile)
                if opcode == 8:
                    break
                if opcode == 2 and payload[:1] == b"\x00" and len(payload) > 1:
                    upstream.sendall(payload[1:])
        except (OSError, ConnectionError, EOFError):
            pass
        finally:
            with suppress(OSError):
                upstream.shutdown(socket.SHUT_RDWR)
            upstream.close()
            back.join(5)


@contextmanager
def urlopen_quiet(url: str) -> Iterator[tuple[int, bytes]]:
    """GET ``url``: (status, body), an HTTP error status included."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            yield response.status, response.read()
    except urllib.error.HTTPError as exc:
        yield exc.code, exc.read()


def _frame(opcode: int, payload: bytes) -> bytes:
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([n])
    elif n < 65536:
        head += bytes([126]) + struct.pack(">H", n)
    else:
        head += bytes([127]) + struct.pack(">Q", n)
    return head + payload


def _read_frame(rfile: Any) -> tuple[int, bytes]:
    def exactly(n: int) -> bytes:
        data = rfile.read(n)
        if len(data) < n:
            raise EOFError
        return bytes(data)

    b0, b1 = exactly(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack(">H", exactly(2))[0]
    elif n == 127:
        n = struct.unpack(">Q", exactly(8))[0]
    mask = exactly(4) if b1 & 0x80 else b"\0\0\0\0"
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(exactly(n)))
    return b0 & 0x0F, payload


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    cluster: Cluster


@contextmanager
def stub_apiserver(cluster: Cluster) -> Iterator[str]:
    """Serve ``cluster`` on a free 127.0.0.1 port; yields its URL."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.cluster = cluster
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def write_kubeconfig(path: Path, server: str, *, context: str = "stand-in", token: str = TOKEN,
                     namespace: str = "default") -> Path:
    """A kubeconfig with one context pointing at the stand-in (and a second, unreachable one)."""
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": context, "preferences": {},
        "clusters": [{"name": "stand-in", "cluster": {"server": server}},
                     {"name": "nowhere", "cluster": {"server": "http://127.0.0.1:9"}}],
        "users": [{"name": "reader", "user": {"token": token}}],
        "contexts": [{"name": context, "context": {"cluster": "stand-in", "user": "reader", "namespace": namespace}},
                     {"name": "nowhere", "context": {"cluster": "nowhere", "user": "reader"}}],
    }
    path.write_text(json.dumps(config))  # JSON is YAML
    return path
