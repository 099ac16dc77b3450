"""PromQL built from the adapters' declarations alone: no server, no client."""

from __future__ import annotations

import pytest

import meshlab as ml
from meshlab.errors import InvalidArgument
from meshlab.meshes import Span, queries
from meshlab.meshes.spec import Owners


def test_promql_names_every_signal():
    consul = ml.Consul  # the builders need no client: a class answers
    with pytest.raises(InvalidArgument, match="consul has no open-connection metric for this view"):
        consul.promql("open_connections", "service")  # the workload view: Envoy's TCP proxy has no gauge
    assert consul.promql("open_connections", "service", namespace="back", side="client") == (
        'sum by (namespace, consul_source_service, consul_destination_namespace, consul_destination_service) '
        '(envoy_cluster_upstream_cx_active{envoy_cluster_name!="local_app",consul_destination_service!="",'
        'namespace="back"})')
    # Istio has no open-connection gauge: opened minus closed, each summed per edge
    sel = '{reporter="destination",source_workload="api",destination_workload!="unknown"}'
    group = "sum by (source_workload_namespace, source_workload, destination_workload_namespace, destination_workload)"
    opened = f"{group} (istio_tcp_connections_opened_total{sel})"
    assert ml.Istio.promql("open_connections", side="server", name="api") == (
        f"{opened} - ({group} (istio_tcp_connections_closed_total{sel}) or {opened} * 0)")
    assert ml.Linkerd.promql("memory_bytes", source="proxy") == (
        'sum by (namespace, pod) (process_resident_memory_bytes{job="linkerd-proxy"})')
    with pytest.raises(InvalidArgument, match="proxy signals are per pod: give namespace= only"):
        ml.Linkerd.promql("cpu_cores", "deployment")
    assert ml.Linkerd.promql("cpu_cores", namespace="front", window="5m") == (
        'sum by (namespace, pod, container) (rate(container_cpu_usage_seconds_total{container=~"linkerd-proxy",'
        'image!="",namespace="front"}[5m]))')
    with pytest.raises(InvalidArgument, match="consul has no 'server' side for TCP; sides: client"):
        consul.promql("opened_connections", "service", side="server")
    with pytest.raises(InvalidArgument, match="unknown signal 'bytes'; must be one of: success_count"):
        consul.promql("bytes", "service")


@pytest.mark.parametrize("mesh", ["consul", "hubble", "istio", "kuma", "linkerd"])
def test_the_class_and_an_instance_build_the_same_promql(mesh):
    cls = ml.meshes.get_mesh(mesh)
    instance = cls("http://127.0.0.1:9")  # never queried
    for signal in ("success_count", "failure_count", "latency"):
        assert cls.promql(signal) == instance.promql(signal) == queries.promql(cls, signal)
    assert cls.promql("success_count", window="90s").endswith("[1m30s]))")


def test_a_span_is_a_range_or_an_instant_checked_once():
    with pytest.raises(InvalidArgument, match="give start= and end= for a range, or at= for one instant"):
        Span()
    with pytest.raises(InvalidArgument, match="give start= and end= for a range"):
        Span(start="-1h")
    with pytest.raises(InvalidArgument, match=r"give either at= \(one instant\) or start= and end="):
        Span(start="-1h", end="now", at="now")
    with pytest.raises(InvalidArgument, match="window"):
        Span(at="now", window="soon")
    assert Span(at=0, window="2m").window_seconds == 120.0
    # the owners' lookback covers every window of the range: end - start + window (by hand: 3600 + 300 s)
    assert Span(start=1_700_000_000, end=1_700_003_600, window="5m").lookback() == ("1h5m", 1_700_003_600)
    assert Span(at=5, window="30s").lookback() == ("30s", 5)


def test_owners_promql_asks_every_owner_series_once():
    owners = (Owners("a|b", {"reporter": "x"}, ("w",)), Owners("c", {}, ("v", "u")))
    assert queries.owners_promql(owners, "1h") == (
        'group by (namespace, pod, w) (last_over_time({__name__=~"a|b",reporter="x"}[1h])) or '
        'group by (namespace, pod, v, u) (last_over_time({__name__=~"c"}[1h]))')
