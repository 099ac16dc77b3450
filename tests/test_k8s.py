"""meshlab.k8s: mesh detection, Prometheus discovery, the port-forward, the SMI API reader.

The real ``kubernetes`` client talks to ``tests/k8s_stub.py``, a small HTTP server on
127.0.0.1 that STANDS IN FOR AN APISERVER: it answers with API-shaped JSON and speaks the
real port-forward protocol (websocket, ``v4.channel.k8s.io``), forwarding to a real local
Prometheus, so ``ml.connect()`` is tested end to end. It is checked against Debian's
``kubectl`` where that is installed.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import meshlab as ml
from meshlab.errors import InvalidArgument, MeshlabError
from meshlab.k8s import (
    Forbidden,
    KubeconfigError,
    KubernetesError,
    KubernetesUnavailable,
    PortForwardError,
    PrometheusNotFound,
)
from meshlab.k8s import _client as k8s_client

from .conftest import require_binary
from .k8s_stub import (
    TOKEN,
    Cluster,
    crd,
    deployment,
    namespace,
    pod,
    service,
    stub_apiserver,
    write_kubeconfig,
)
from .reference import raw_json, reference_frame
from .testdata import LONG_POINTS, POINTS, STEP_MS, T0_MS

T0 = T0_MS / 1000


def meshed_cluster(prom_port: int = 1) -> Cluster:
    """Linkerd (with linkerd-viz's Prometheus) and Istio running; Kuma's CRDs left over, no control plane."""
    c = Cluster()
    c.add("namespaces", *(namespace(n) for n in ("default", "linkerd", "linkerd-viz", "istio-system", "monitoring",
                                                 "shop")))
    c.add("deployments",
          deployment("linkerd", "linkerd-destination", {"linkerd.io/control-plane-component": "destination"}),
          deployment("linkerd", "linkerd-identity", {"linkerd.io/control-plane-component": "identity"}),
          deployment("istio-system", "istiod", {"app": "istiod"}),
          deployment("shop", "web", {"app": "web"}))
    c.add("daemonsets", deployment("kube-system", "kube-proxy", {"k8s-app": "kube-proxy"}, kind="DaemonSet"))
    c.add("customresourcedefinitions", crd("serviceprofiles", "linkerd.io", "ServiceProfile", "v1alpha2"),
          crd("servers", "policy.linkerd.io", "Server", "v1beta3"),
          crd("virtualservices", "networking.istio.io", "VirtualService"),
          crd("peerauthentications", "security.istio.io", "PeerAuthentication"),
          crd("meshes", "kuma.io", "Mesh", "v1alpha1"))
    # linkerd-viz's Prometheus: its Service targets the container port by name
    c.add("pods", pod("linkerd-viz", "prometheus-7c9d5-x2k4q", {"component": "prometheus"}, {"admin-http": 9090}),
          pod("monitoring", "prometheus-kps-0", {"app.kubernetes.io/name": "prometheus"}, {"web": 9090}),
          pod("shop", "web-5d8f-abcde", {"app": "web"}, {"http": 8080}))
    c.add("services",
          service("linkerd-viz", "prometheus", {"component": "prometheus"},
                  [{"name": "admin-http", "port": 9090, "targetPort": "admin-http"}]),
          service("monitoring", "kps-prometheus", {"app.kubernetes.io/name": "prometheus"},
                  [{"name": "http-web", "port": 9090, "targetPort": 9090},
                   {"name": "reloader-web", "port": 8080, "targetPort": 8080}],
                  labels={"app.kubernetes.io/name": "prometheus"}),
          service("monitoring", "kps-operator", {"app": "kube-prometheus-stack-operator"},
                  [{"name": "https", "port": 443, "targetPort": "https"}],
                  labels={"app": "kube-prometheus-stack-operator"}),
          service("monitoring", "prometheus-node-exporter", {"app": "node-exporter"},
                  [{"name": "metrics", "port": 9100, "targetPort": 9100}]),
          service("monitoring", "alertmanager", {"app": "alertmanager"}, [{"name": "web", "port": 9093}]),
          service("default", "kubernetes", {}, [{"name": "https", "port": 443, "targetPort": 6443}]),
          service("shop", "web", {"app": "web"}, [{"name": "http", "port": 80, "targetPort": 8080}]))
    for ns, name in (("linkerd-viz", "prometheus-7c9d5-x2k4q"), ("monitoring", "prometheus-kps-0")):
        c.pod_addresses[(ns, name)] = ("127.0.0.1", prom_port)
    return c


@pytest.fixture
def kube(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Start the stand-in apiserver on a cluster and point KUBECONFIG at it: ``kube(cluster) -> cluster``."""
    stack = []

    def start(cluster: Cluster) -> Cluster:
        cm = stub_apiserver(cluster)
        url = cm.__enter__()
        stack.append(cm)
        monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "kubeconfig", url, namespace="shop")))
        return cluster

    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    yield start
    for cm in stack:
        cm.__exit__(None, None, None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- detection ----------------------------------------------------------------------------------


def test_detect_meshes_finds_running_control_planes_with_their_evidence(kube):
    kube(meshed_cluster())
    found = ml.k8s.detect_meshes()
    # Kuma's CRDs are served but no control plane runs: an uninstall's leftovers, not a mesh.
    assert found == {
        "linkerd": ["Deployment linkerd/linkerd-destination", "Deployment linkerd/linkerd-identity",
                    "API group linkerd.io", "API group policy.linkerd.io"],
        "istio": ["Deployment istio-system/istiod", "API group networking.istio.io", "API group security.istio.io"],
    }


def test_detect_meshes_sees_cilium_by_its_daemonset_and_a_plain_cluster_as_no_mesh(kube):
    c = kube(Cluster())
    assert ml.k8s.detect_meshes() == {}
    c.add("daemonsets", deployment("kube-system", "cilium", {"k8s-app": "cilium"}, kind="DaemonSet"))
    c.add("customresourcedefinitions", crd("ciliumnetworkpolicies", "cilium.io", "CiliumNetworkPolicy", "v2"))
    assert ml.k8s.detect_meshes() == {"hubble": ["DaemonSet kube-system/cilium", "API group cilium.io"]}


def test_long_lists_are_read_page_by_page(kube):
    c = meshed_cluster()
    c.page_size = 2  # the apiserver returns 2 items a page, with a continue token
    kube(c)
    assert list(ml.k8s.detect_meshes()) == ["linkerd", "istio"]
    assert [str(s) for s in ml.k8s.find_prometheus(mesh="istio")] == ["monitoring/kps-prometheus:9090",
                                                                      "linkerd-viz/prometheus:9090"]
    pages = [path for _, path, _ in c.requests if path.startswith("/api/v1/services?")]
    assert len(pages) == 4  # 7 services, 2 a page
    assert sum("continue=" in p for p in pages) == 3


def test_every_mesh_known_in_a_cluster_is_a_registered_mesh():
    assert set(ml.k8s.MESH_SIGNS) <= set(ml.meshes.available())


# -- finding Prometheus -------------------------------------------------------------------------


def test_find_prometheus_puts_the_mesh_s_own_first_and_skips_look_alikes(kube):
    kube(meshed_cluster())
    by_mesh = ml.k8s.find_prometheus(mesh="linkerd")
    # operator, node-exporter and alertmanager are not Prometheus; the apiserver and the app are not either
    assert [str(s) for s in by_mesh] == ["linkerd-viz/prometheus:9090", "monitoring/kps-prometheus:9090"]
    assert by_mesh[0].target_port == "admin-http"
    assert by_mesh[0].selector == (("component", "prometheus"),)
    # without a mesh, the Service labelled as Prometheus comes before the one only named so
    assert [str(s) for s in ml.k8s.find_prometheus()] == ["monitoring/kps-prometheus:9090",
                                                          "linkerd-viz/prometheus:9090"]


def test_no_prometheus_is_an_error_listing_what_was_looked_for(kube):
    c = meshed_cluster()
    c.objects["services"] = [s for s in c.objects["services"] if "prometheus" not in s["metadata"]["name"]]
    kube(c)
    with pytest.raises(PrometheusNotFound) as info:
        ml.k8s.find_prometheus(mesh="linkerd")
    message = str(info.value)
    for looked_for in ("every namespace", "app.kubernetes.io/name", "'prometheus'", "linkerd-viz/prometheus",
                       "prometheus='NAMESPACE/SERVICE:PORT'"):
        assert looked_for in message
    with pytest.raises(PrometheusNotFound):
        ml.connect(mesh=None)


# -- kubeconfig and errors ----------------------------------------------------------------------


def test_no_kubeconfig_says_where_it_looked_and_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    for call in (ml.k8s.detect_meshes, ml.k8s.find_prometheus, ml.connect, ml.k8s.read_smi):
        with pytest.raises(KubeconfigError, match=r"no kubeconfig found \(looked at .*absent\); set KUBECONFIG"):
            call()


def test_in_a_pod_without_a_service_account_the_error_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "9")
    with pytest.raises(KubeconfigError, match="no kubeconfig, and the in-cluster service account is unusable"):
        ml.k8s.detect_meshes()


def test_credentials_in_the_server_url_never_show(kube, tmp_path, monkeypatch):
    kube(Cluster())
    path = Path(os.environ["KUBECONFIG"])
    config = json.loads(path.read_text())
    config["clusters"][1]["cluster"]["server"] = "http://admin:s3cr3t-pw@127.0.0.1:9"
    path.write_text(json.dumps(config))
    with pytest.raises(KubernetesUnavailable) as info:
        ml.k8s.detect_meshes(context="nowhere")
    assert "s3cr3t-pw" not in str(info.value) and "127.0.0.1:9" in str(info.value)


def test_an_unknown_context_lists_the_contexts(kube):
    kube(Cluster())
    with pytest.raises(InvalidArgument, match=r"context 'prod' is not in the kubeconfig .*\['stand-in', 'nowhere'\]"):
        ml.k8s.detect_meshes(context="prod")
    with pytest.raises(InvalidArgument, match="context must be"):
        ml.k8s.detect_meshes(context="")


def test_an_unreachable_apiserver_is_named_quickly(kube):
    kube(Cluster())
    started = time.monotonic()
    with pytest.raises(KubernetesUnavailable, match=r"context 'nowhere' at http://127.0.0.1:9.*cluster-info"):
        ml.k8s.detect_meshes(context="nowhere")
    assert time.monotonic() - started < 10


def test_wrong_credentials_say_to_refresh_them(kube, tmp_path, monkeypatch):
    kube(Cluster())
    config = json.loads(Path(os.environ["KUBECONFIG"]).read_text())
    config["users"][0]["user"]["token"] = "expired-token-0000"
    Path(os.environ["KUBECONFIG"]).write_text(json.dumps(config))
    with pytest.raises(KubeconfigError, match="refused its credentials") as info:
        ml.k8s.find_prometheus()
    assert "expired-token-0000" not in str(info.value)


FORBIDDEN_CASES = [
    # (call, what RBAC refuses, the verb, resource, group and namespace the error must name)
    (lambda: ml.k8s.detect_meshes(), ("list", "deployments"), ("list", "deployments", "apps", None)),
    (lambda: ml.k8s.detect_meshes(), ("list", "daemonsets"), ("list", "daemonsets", "apps", None)),
    (lambda: ml.k8s.find_prometheus(), ("list", "services"), ("list", "services", "", None)),
    (lambda: ml.connect(mesh=None, prometheus="linkerd-viz/prometheus"), ("get", "services"),
     ("get", "services", "", "linkerd-viz")),
    (lambda: ml.connect(mesh=None), ("list", "pods"), ("list", "pods", "", "monitoring")),
    (lambda: ml.connect(mesh="linkerd"), ("create", "pods/portforward"),
     ("create", "pods/portforward", "", "linkerd-viz")),
    (lambda: ml.k8s.read_smi(), ("list", "deployments"), ("list", "deployments", "metrics.smi-spec.io", "shop")),
    (lambda: ml.k8s.read_smi("pods", "web-1", "front"), ("get", "pods"),
     ("get", "pods", "metrics.smi-spec.io", "front")),
]


@pytest.mark.parametrize(("call", "refused", "named"), FORBIDDEN_CASES)
def test_forbidden_names_the_rbac_verb_and_resource(kube, call, refused, named):
    c = meshed_cluster()
    c.forbidden.add(refused)
    kube(c)
    with pytest.raises(Forbidden) as info:
        call()
    err = info.value
    assert (err.verb, err.resource, err.group, err.namespace) == named
    verb, resource, group, ns = named
    gr = f"{resource}.{group}" if group else resource
    assert f"may not {verb} {gr}" in str(err)
    assert f"auth can-i {verb} {gr} {'-n ' + ns if ns else '-A'}" in str(err)
    assert TOKEN not in str(err) and TOKEN not in repr(err)
    again = pickle.loads(pickle.dumps(err))
    assert (again.verb, again.resource, str(again)) == (err.verb, err.resource, str(err))


def test_connect_says_how_to_skip_detection_when_it_is_forbidden(kube):
    c = meshed_cluster()
    c.forbidden.add(("list", "deployments"))
    kube(c)
    with pytest.raises(Forbidden, match=r"connect\(mesh=None\)"):
        ml.connect()


@pytest.mark.parametrize("bad", ["prometheus", "linkerd-viz/", "/prometheus", "a/b:0", "a/b:99999", "A/B",
                                 "http://127.0.0.1:9090", 9090])
def test_connect_refuses_a_malformed_prometheus_argument(bad):
    with pytest.raises(InvalidArgument, match="prometheus"):
        ml.connect(prometheus=bad)


@pytest.mark.parametrize(("kwargs", "argument"), [({"mesh": "envoy"}, "mesh"), ({"local_port": -1}, "local_port"),
                                                  ({"local_port": "80"}, "local_port")])
def test_connect_refuses_bad_arguments_naming_them(kwargs, argument):
    with pytest.raises(InvalidArgument, match=argument):
        ml.connect(**kwargs)


# -- port-forward -------------------------------------------------------------------------------


def test_a_pod_port_where_nothing_listens_is_a_port_forward_error(kube):
    kube(meshed_cluster(prom_port=free_port()))
    with pytest.raises(PortForwardError) as info:
        ml.connect(mesh="linkerd")
    message = str(info.value)
    assert "linkerd-viz/prometheus:9090" in message and "prometheus-7c9d5-x2k4q" in message
    assert "error forwarding port 9090" in message  # the kubelet's own words, from the error channel
    assert "port-forward pod/prometheus-7c9d5-x2k4q 9090" in message


def test_a_silent_port_forward_ends_within_the_timeout(kube):
    c = meshed_cluster()
    c.portforward_delay = 60  # the websocket handshake has no timeout of its own
    kube(c)
    ml.k8s.find_prometheus()  # loads the kubernetes client's modules, slow on a busy machine, before timing
    started = time.monotonic()
    with pytest.raises(PortForwardError, match=r"did not open a port-forward to pod linkerd-viz/prometheus-7c9d5-x2k4q "
                                               r"port 9090 within 1 s"):
        ml.connect(mesh="linkerd", timeout="1s")
    assert time.monotonic() - started < 15


def test_a_missing_pod_or_no_ready_pod_is_a_port_forward_error(kube):
    c = meshed_cluster()
    c.objects["pods"][0]["status"]["conditions"][0]["status"] = "False"
    kube(c)
    with pytest.raises(PortForwardError, match=r"no running, ready pod behind Service linkerd-viz/prometheus:9090"):
        ml.connect(mesh="linkerd")


def test_a_refused_upgrade_is_reported_with_the_apiserver_s_reason(kube):
    c = kube(meshed_cluster())
    cluster = k8s_client.load()
    try:
        with pytest.raises(KubernetesError, match=r'answered 404 Not Found .*pods "gone" not found'):
            ml.k8s.PortForward(cluster, "linkerd-viz", "gone", 9090)
    finally:
        cluster.close()
    assert c.portforwards == 0


@pytest.mark.prometheus
def test_connect_queries_the_cluster_s_prometheus_through_the_port_forward(kube, prometheus_server, caplog):
    caplog.set_level("DEBUG")
    c = kube(meshed_cluster(prom_port=int(prometheus_server.url.rsplit(":", 1)[1])))
    with ml.connect() as prom:
        assert isinstance(prom, ml.Prometheus)
        assert prom.meshes == ["linkerd", "istio"]
        assert str(prom.service) == "linkerd-viz/prometheus:9090"  # Linkerd's own, found first
        assert prom.url.startswith("http://127.0.0.1:") and prom.url != prometheus_server.url
        end = T0 + (POINTS - 1) * STEP_MS / 1000
        got = prom.query_range("test_gauge", T0, end, "15s")
        expected = reference_frame(raw_json(prometheus_server.url, "query_range", query="test_gauge",
                                            start=str(T0), end=str(end), step="15"))
        pd.testing.assert_frame_equal(got, expected, check_categorical=False)
        assert len(got) == 6 * POINTS
        # more than 11,000 points: two chunks fetched at once, each on its own forwarded connection
        long_end = T0 + (LONG_POINTS - 1) * STEP_MS / 1000
        dense = prom.query_range('test_long{kind="dense"}', T0, long_end, "15s")
        assert np.array_equal(dense["value"].to_numpy(), np.arange(LONG_POINTS) * 0.5)
        assert c.portforwards >= 2
        assert TOKEN not in repr(prom)
        local = prom.tunnel.local_port
    assert prom.tunnel.closed
    with pytest.raises(ConnectionRefusedError):  # the tunnel's port is closed with the client
        socket.create_connection(("127.0.0.1", local), timeout=2).close()
    assert TOKEN not in caplog.text


@pytest.mark.prometheus
def test_connect_to_a_named_service_and_a_chosen_local_port(kube, prometheus_server):
    kube(meshed_cluster(prom_port=int(prometheus_server.url.rsplit(":", 1)[1])))
    port = free_port()
    with ml.connect(mesh=None, prometheus="monitoring/kps-prometheus:9090", local_port=port, timeout=10) as prom:
        assert prom.url == f"http://127.0.0.1:{port}" and prom.meshes == []
        got = prom.query("count(test_gauge)", T0)
        assert got["value"].tolist() == [6.0]
        assert prom.timeout == 10
    with pytest.raises(InvalidArgument, match="has no port 1234"):
        ml.connect(mesh=None, prometheus="monitoring/kps-prometheus:1234")


# -- the SMI metrics API ------------------------------------------------------------------------


def smi_item(kind: str, name: str, ns: str, success: str, failure: str, p99: str | None,
             edge: dict | None = None) -> dict:
    """A TrafficMetrics item as smi-metrics serves it (v1alpha1), written by hand."""
    return {
        "kind": "TrafficMetrics", "apiVersion": "metrics.smi-spec.io/v1alpha1",
        "metadata": {"name": name, "namespace": ns, "selfLink": f"/apis/metrics.smi-spec.io/v1alpha1/namespaces/"
                                                                 f"{ns}/{kind.lower()}s/{name}",
                     "creationTimestamp": "2026-11-29T17:00:00Z"},
        "timestamp": "2026-11-29T17:00:00Z", "window": "30s",
        "resource": {"kind": kind, "namespace": ns, "name": name},
        "edge": edge or {"direction": "from", "resource": None},
        "metrics": [
            {"name": "p99_response_latency", "unit": "ms", "value": p99},
            {"name": "success_count", "value": success},
            {"name": "failure_count", "value": failure},
        ],
    }


def smi_list(items: list[dict], path: str) -> dict:
    return {"kind": "TrafficMetricsList", "apiVersion": "metrics.smi-spec.io/v1alpha1",
            "metadata": {"selfLink": path}, "resource": {"kind": "Deployment", "namespace": "shop"}, "items": items}


def test_read_smi_reads_the_cluster_s_traffic_metrics(kube):
    c = Cluster()
    path = "/apis/metrics.smi-spec.io/v1alpha1/namespaces/shop/deployments"
    c.raw[path] = smi_list([smi_item("Deployment", "web", "shop", "90", "10", "250"),
                            smi_item("Deployment", "cart", "shop", "3", "0", "12500m")], path)
    kube(c)
    frame = ml.k8s.read_smi(mesh="linkerd")  # the context's namespace: shop
    ml.validate(frame, "traffic")
    rows = frame.set_index("name").sort_index()
    assert list(rows.index) == ["cart", "web"]
    assert rows.loc["web", "requests"] == 100 and rows.loc["cart", "requests"] == 3  # success + failure
    assert rows.loc["web", "success_rate"] == pytest.approx(0.9)
    assert rows.loc["web", "rps"] == pytest.approx(100 / 30)  # over the 30 s window
    assert rows.loc["cart", "latency_p99_ms"] == 12.5  # the quantity 12500m (milli-milliseconds)
    assert rows.loc["web", "latency_p99_ms"] == 250
    pd.testing.assert_frame_equal(ml.smi.read(mesh="linkerd"), frame)  # the same reader under ml.smi
    assert (frame["timestamp"] == pd.Timestamp("2026-11-29T17:00:00Z")).all()
    assert set(frame["namespace"]) == {"shop"} and set(frame["mesh"]) == {"linkerd"}
    assert ("GET", path, True) in c.requests


def test_read_smi_reads_one_resource_s_edges(kube):
    c = Cluster()
    path = "/apis/metrics.smi-spec.io/v1alpha1/namespaces/shop/deployments/web/edges"
    c.raw[path] = smi_list([smi_item("Deployment", "web", "shop", "40", "0", "8", edge={
        "direction": "to", "resource": {"kind": "Deployment", "namespace": "shop", "name": "cart"}})], path)
    kube(c)
    edges = ml.k8s.read_smi("Deployment", "web", "shop", edges=True, mesh="linkerd", side="client")
    ml.validate(edges, "edges")
    assert len(edges) == 1
    assert edges["requests"].tolist() == [40.0]


def test_read_smi_says_when_the_cluster_does_not_serve_the_api(kube):
    kube(Cluster())
    with pytest.raises(KubernetesError, match=r"does not serve the SMI metrics API .*install smi-metrics"):
        ml.k8s.read_smi("pods", namespace="shop")


@pytest.mark.parametrize(("kwargs", "argument"), [
    ({"kind": "replicasets"}, "kind"), ({"kind": 3}, "kind"), ({"name": "Web"}, "name"),
    ({"namespace": "a/b"}, "namespace"), ({"edges": True}, "edges=True needs name"),
    ({"version": "v1"}, "version"), ({"name": "web", "edges": "yes"}, "edges"),
])
def test_read_smi_refuses_bad_arguments_naming_them(kwargs, argument):
    with pytest.raises(InvalidArgument, match=argument):
        ml.k8s.read_smi(**kwargs)


# -- the package --------------------------------------------------------------------------------


def test_meshlab_k8s_loads_the_kubernetes_client_only_when_used():
    code = ("import sys, meshlab as ml; ml.k8s; ml.connect; assert 'kubernetes' not in sys.modules, 'eager'; "
            "import os; os.environ['KUBECONFIG'] = '/nonexistent'; os.environ.pop('KUBERNETES_SERVICE_HOST', None)\n"
            "try: ml.k8s.detect_meshes()\nexcept ml.MeshlabError: pass\nassert 'kubernetes' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": os.getcwd()})


def test_every_k8s_error_is_a_meshlab_error():
    for cls in (Forbidden, KubeconfigError, KubernetesError, KubernetesUnavailable, PortForwardError,
                PrometheusNotFound):
        assert issubclass(cls, MeshlabError)


# -- the stand-in, checked with kubectl ---------------------------------------------------------


def test_kubectl_reads_the_stand_in_apiserver_as_a_cluster(kube):
    require_binary("kubectl")  # a skip outside CI, a failure under CI=true
    c = kube(meshed_cluster())
    c.require_token = False  # client-go sends bearer tokens only over TLS; the stand-in is plain HTTP
    path = "/apis/metrics.smi-spec.io/v1alpha1/namespaces/shop/deployments"
    c.raw[path] = smi_list([smi_item("Deployment", "web", "shop", "9", "1", "5")], path)

    def kubectl(*args: str) -> str:
        done = subprocess.run(["kubectl", "--request-timeout=20s", *args], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "HOME": os.environ.get("HOME", "/tmp")})
        assert done.returncode == 0, done.stderr
        return done.stdout

    deployments = json.loads(kubectl("get", "deployments", "-A", "-o", "json"))
    assert sorted(d["metadata"]["name"] for d in deployments["items"]) == [
        "istiod", "linkerd-destination", "linkerd-identity", "web"]
    names = kubectl("get", "services", "-n", "monitoring", "-o", "name").split()
    assert names == ["service/kps-prometheus", "service/kps-operator", "service/prometheus-node-exporter",
                     "service/alertmanager"]
    kinds = set(kubectl("api-resources", "-o", "name").split())
    assert {"pods", "services", "namespaces", "deployments.apps", "daemonsets.apps", "serviceprofiles.linkerd.io",
            "virtualservices.networking.istio.io", "meshes.kuma.io"} <= kinds
    assert json.loads(kubectl("get", "--raw", path)) == c.raw[path]


# -- serving the SMI metrics API ----------------------------------------------------------------

SIM_AT = pd.Timestamp("2024-05-01T00:12:00Z")  # tests/scenarios/incidents.yaml, during api's error burst
SMI_COLUMNS = ["requests", "success_rate", "rps", "latency_p50_ms", "latency_p90_ms", "latency_p99_ms"]


@pytest.mark.prometheus
def test_served_smi_api_reads_back_as_the_adapter_s_frame_through_the_apiserver(kube, sim_run):
    import requests

    _, prom, _ = sim_run
    with ml.k8s.serve_smi(prom, "linkerd", at=SIM_AT, window="30s") as smi:
        c = kube(Cluster())
        c.aggregated["metrics.smi-spec.io"] = smi.url  # as its APIService would route it
        got = ml.k8s.read_smi("deployments", namespace="back", mesh="linkerd")
        direct = ml.Linkerd(prom).traffic("deployment", namespace="back", at=SIM_AT, window="30s")
        assert len(direct) >= 2 and direct["requests"].sum() > 0
        got, direct = got.set_index("name").sort_index(), direct.set_index("name").sort_index()
        assert list(got.index) == list(direct.index)
        for column in SMI_COLUMNS:  # quantities carry nano-units
            assert got[column].to_numpy() == pytest.approx(direct[column].to_numpy(), abs=1e-6, nan_ok=True), column
        assert (got["timestamp"] == SIM_AT).all()

        edges = ml.k8s.read_smi("deployments", "web", namespace="front", edges=True, mesh="linkerd")
        direct_edges = ml.Linkerd(prom).edges("deployment", namespace="front", name="web", at=SIM_AT, window="30s")
        assert len(edges) == len(direct_edges) > 0
        assert sorted(edges["requests"]) == pytest.approx(sorted(direct_edges["requests"]), abs=1e-6)

        # one resource is one TrafficMetrics; what is not there is a Status, as from an apiserver
        base = f"{smi.url}/apis/metrics.smi-spec.io/v1alpha1"
        one = requests.get(f"{base}/namespaces/back/deployments/api", timeout=30).json()
        assert one["kind"] == "TrafficMetrics" and one["resource"] == {"kind": "Deployment", "namespace": "back",
                                                                        "name": "api"}
        missing = requests.get(f"{base}/namespaces/back/deployments/nope", timeout=30)  # an empty item, not an error
        assert missing.status_code == 200 and missing.json()["metadata"]["annotations"]["meshlab/status"] == "NoTraffic"
        unserved = requests.get(f"{base}/namespaces/back/replicasets", timeout=30)
        assert unserved.status_code == 404 and "served:" in unserved.json()["message"]
        listing = requests.get(base, timeout=30).json()
        assert listing["kind"] == "APIResourceList" and "deployments" in [r["name"] for r in listing["resources"]]

        if shutil.which("kubectl"):  # kubectl reads it through the stand-in apiserver
            c.require_token = False
            done = subprocess.run(["kubectl", "--request-timeout=30s", "get", "--raw",
                                   "/apis/metrics.smi-spec.io/v1alpha1/namespaces/back/deployments"],
                                  capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            assert json.loads(done.stdout) == requests.get(f"{base}/namespaces/back/deployments", timeout=30).json()
    with pytest.raises(requests.ConnectionError):
        requests.get(base, timeout=5)


def test_serve_smi_refuses_bad_arguments_naming_them():
    with pytest.raises(InvalidArgument, match="version"):
        ml.k8s.serve_smi("http://127.0.0.1:9", "linkerd", version="v2")
    with pytest.raises(InvalidArgument, match="port"):
        ml.k8s.serve_smi("http://127.0.0.1:9", "linkerd", port=-5)
    with pytest.raises(InvalidArgument, match="unknown mesh"):
        ml.k8s.serve_smi("http://127.0.0.1:9", "envoy")
