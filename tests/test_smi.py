"""SMI Traffic Metrics interop (``meshlab.smi``), held to the spec rather than to itself.

The expected objects are written by hand from the spec and from what the reference server
returned, not from meshlab's output:

- servicemeshinterface/smi-spec, ``apis/traffic-metrics/v1alpha1/traffic-metrics.md``
  (the item, edge and list shapes; ``side``; ``resource: {}`` for all inbound traffic);
- servicemeshinterface/smi-sdk-go, ``pkg/apis/metrics/v1alpha1`` and ``v1alpha2`` (field
  names and order, ``unit: "ms"``, ``metav1.Duration`` windows, no ``side`` in v1alpha1);
- servicemeshinterface/smi-metrics, ``README.md``: real responses of the server for Linkerd
  (``"296875m"``, ``"resource": null``, ``selfLink``, ``.../edges`` lists).

Quantities follow apimachinery's canonical form ("1.5 is serialized as 1500m"), and the
parser is cross-checked against the kubernetes client's ``parse_quantity``.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from decimal import Decimal

import numpy as np
import pandas as pd
import pandas.testing as tm
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import meshlab as ml
from meshlab import schema
from meshlab.errors import InvalidArgument
from meshlab.smi import format_go_duration, format_quantity, from_traffic_metrics, parse_quantity, to_traffic_metrics

try:  # an independent parser to check ours against (the kubernetes client is a dependency, but optional here)
    from kubernetes.utils.quantity import parse_quantity as K8S_PARSE
except ImportError:  # pragma: no cover
    K8S_PARSE = None

V1A1 = "metrics.smi-spec.io/v1alpha1"
BASE = "/apis/metrics.smi-spec.io/v1alpha1"
GOLDEN = ["success_count", "failure_count", "requests", "success_rate", "rps"]
LATENCY = ["latency_p50_ms", "latency_p90_ms", "latency_p99_ms"]
NANO = 5e-10  # half a nano-unit: the finest a quantity keeps


# -- helpers -----------------------------------------------------------------------------------

def traffic_frame(rows: list[dict], window_s: float) -> pd.DataFrame:
    """A traffic frame the way Mesh.traffic builds one: requests, success_rate and rps derived."""
    return _derive(pd.DataFrame(rows), window_s, "traffic")


def edges_frame(rows: list[dict], window_s: float) -> pd.DataFrame:
    return _derive(pd.DataFrame(rows), window_s, "edges")


def _derive(frame: pd.DataFrame, window_s: float, kind: str) -> pd.DataFrame:
    frame["requests"] = frame["success_count"] + frame["failure_count"]
    with np.errstate(divide="ignore", invalid="ignore"):
        frame["success_rate"] = np.where(frame["requests"] > 0, frame["success_count"] / frame["requests"], np.nan)
    frame["rps"] = frame["requests"] / window_s
    for column in LATENCY:
        if column not in frame:
            frame[column] = np.nan
    return schema.conform(frame, kind)


def metrics(p99, p90, p50, success, failure) -> list[dict]:
    """The metrics list of an item, in smi-sdk-go's AvailableMetrics order."""
    return [
        {"name": "p99_response_latency", "unit": "ms", "value": p99},
        {"name": "p90_response_latency", "unit": "ms", "value": p90},
        {"name": "p50_response_latency", "unit": "ms", "value": p50},
        {"name": "success_count", "value": success},
        {"name": "failure_count", "value": failure},
    ]


def within_resolution(got: pd.Series, want: pd.Series) -> bool:
    """Equal to half a nano-unit (plus float rounding either way), NaN where NaN."""
    got, want = got.to_numpy(dtype="float64"), want.to_numpy(dtype="float64")
    same_nan = np.isnan(got) == np.isnan(want)
    close = np.abs(got - want) <= NANO + 2 * np.spacing(np.abs(want))
    return bool(same_nan.all() and (close | np.isnan(want)).all())


def assert_same_frame(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """Labels and counts exactly, rates to float rounding, latency to the quantity's resolution."""
    schema.validate(got, "edges" if "side" in want else "traffic")
    assert list(got.columns) == list(want.columns)
    assert len(got) == len(want)
    tm.assert_series_equal(got["timestamp"], want["timestamp"].reset_index(drop=True))
    for column in want.columns:
        if isinstance(want[column].dtype, pd.CategoricalDtype):
            assert got[column].astype(str).tolist() == want[column].astype(str).tolist(), column
    for column in ("success_count", "failure_count", "requests", "success_rate"):
        tm.assert_series_equal(got[column], want[column].reset_index(drop=True), check_exact=True)
    tm.assert_series_equal(got["rps"], want["rps"].reset_index(drop=True), rtol=1e-12)
    for column in [c for c in want.columns if c.startswith("latency_")]:
        assert within_resolution(got[column], want[column]), column


# -- the exact JSON, field by field against the spec ------------------------------------------

def test_traffic_frame_is_written_as_the_reference_server_wrote_it():
    # smi-metrics README: GET .../namespaces/linkerd/deployments/linkerd-web, window 30s.
    frame = traffic_frame([
        dict(timestamp="2019-06-17T14:26:22Z", mesh="linkerd", kind="deployment", namespace="linkerd",
             name="linkerd-web", success_count=73.492, failure_count=0.0,
             latency_p50_ms=162.5, latency_p90_ms=268.75, latency_p99_ms=296.875),
        # 30 s later: no requests, so no latency (NaN), and the rates are NaN and 0
        dict(timestamp="2019-06-17T14:26:52Z", mesh="linkerd", kind="deployment", namespace="linkerd",
             name="linkerd-web", success_count=0.0, failure_count=0.0),
    ], window_s=30)
    obj = to_traffic_metrics(frame)

    def item(ts: str, values: list[dict]) -> dict:
        return {
            "kind": "TrafficMetrics",
            "apiVersion": V1A1,
            "metadata": {
                "name": "linkerd-web",
                "namespace": "linkerd",
                "selfLink": f"{BASE}/namespaces/linkerd/deployments/linkerd-web",
                # the README's is the server's clock; meshlab's is the item's time (deterministic)
                "creationTimestamp": ts,
                "labels": {"meshlab/mesh": "linkerd"},  # meshlab's addition: a list can hold many meshes
            },
            "timestamp": ts,
            "window": "30s",
            "resource": {"kind": "Deployment", "namespace": "linkerd", "name": "linkerd-web"},
            # side is the spec's (v1alpha2 in the SDK); a workload's own view is its server side
            "edge": {"direction": "from", "side": "server", "resource": None},
            "metrics": values,
        }

    expected = {
        "kind": "TrafficMetricsList",
        "apiVersion": V1A1,
        "metadata": {"selfLink": f"{BASE}/namespaces/linkerd/deployments"},
        "resource": {"kind": "Deployment", "namespace": "linkerd"},
        "items": [
            item("2019-06-17T14:26:22Z", metrics("296875m", "268750m", "162500m", "73492m", "0")),
            item("2019-06-17T14:26:52Z", metrics(None, None, None, "0", "0")),
        ],
    }
    assert obj == expected
    # Go's field order (TypeMeta, ObjectMeta, Interval, Resource, Edge, Metrics), as the README prints it
    assert list(obj) == ["kind", "apiVersion", "metadata", "resource", "items"]
    assert list(obj["items"][0]) == ["kind", "apiVersion", "metadata", "timestamp", "window", "resource", "edge",
                                     "metrics"]
    assert list(obj["items"][0]["resource"]) == ["kind", "namespace", "name"]
    assert list(obj["items"][0]["edge"]) == ["direction", "side", "resource"]
    assert json.loads(json.dumps(obj, allow_nan=False)) == expected  # plain JSON, no NaN


def test_edges_frame_is_written_as_the_reference_server_wrote_it():
    # smi-metrics README: GET .../namespaces/linkerd/deployments/linkerd-controller/edges.
    # With direction "auto", resource is the observer: server-side rows are "from", client-side "to".
    ts = "2019-06-17T14:51:57Z"
    common = dict(timestamp=ts, mesh="linkerd", kind="deployment", src_namespace="linkerd", dst_namespace="linkerd")
    frame = edges_frame([
        dict(common, src_name="linkerd-web", dst_name="linkerd-controller", side="server", success_count=28.58,
             failure_count=0.0, latency_p50_ms=150.0, latency_p90_ms=240.0, latency_p99_ms=294.0),
        dict(common, src_name="linkerd-controller", dst_name="linkerd-prometheus", side="client",
             success_count=1008.1, failure_count=0.0, latency_p50_ms=120.731, latency_p90_ms=247.199,
             latency_p99_ms=368.0),
    ], window_s=30)
    controller = {"kind": "Deployment", "namespace": "linkerd", "name": "linkerd-controller"}
    link = f"{BASE}/namespaces/linkerd/deployments/linkerd-controller/edges"

    def item(edge: dict, values: list[dict]) -> dict:
        return {
            "kind": "TrafficMetrics",
            "apiVersion": V1A1,
            "metadata": {"name": "linkerd-controller", "namespace": "linkerd", "selfLink": link,
                         "creationTimestamp": ts, "labels": {"meshlab/mesh": "linkerd"}},
            "timestamp": ts,
            "window": "30s",
            "resource": controller,
            "edge": edge,
            "metrics": values,
        }

    expected = {
        "kind": "TrafficMetricsList",
        "apiVersion": V1A1,
        "metadata": {"selfLink": link},
        "resource": controller,
        "items": [
            item({"direction": "from", "side": "server",
                  "resource": {"kind": "Deployment", "namespace": "linkerd", "name": "linkerd-web"}},
                 metrics("294", "240", "150", "28580m", "0")),
            item({"direction": "to", "side": "client",
                  "resource": {"kind": "Deployment", "namespace": "linkerd", "name": "linkerd-prometheus"}},
                 metrics("368", "247199m", "120731m", "1008100m", "0")),
        ],
    }
    assert to_traffic_metrics(frame) == expected

    # Forced directions: "to" puts the source in resource, "from" the destination.
    forced_to = to_traffic_metrics(frame, direction="to")["items"][0]
    assert forced_to["resource"]["name"] == "linkerd-web"
    assert forced_to["edge"] == {"direction": "to", "side": "server", "resource": controller}
    forced_from = to_traffic_metrics(frame, direction="from")["items"][1]
    assert forced_from["resource"]["name"] == "linkerd-prometheus"
    assert forced_from["edge"] == {"direction": "from", "side": "client", "resource": controller}
    assert forced_from["metadata"]["selfLink"] == f"{BASE}/namespaces/linkerd/deployments/linkerd-prometheus/edges"


def test_kinds_namespaces_versions_and_extra_quantiles():
    frame = traffic_frame([
        dict(timestamp="2024-03-04T00:00:15.25Z", mesh="istio", kind="namespace", namespace="shop", name="shop",
             success_count=3.0, failure_count=1.0, latency_p999_ms=7.5),
        dict(timestamp="2024-03-04T00:00:15.25Z", mesh="istio", kind="statefulset", namespace="shop",
             name="ledger", success_count=2.0, failure_count=0.0, latency_p999_ms=1.0),
    ], window_s=60)
    obj = to_traffic_metrics(frame, version="v1alpha2")
    assert obj["apiVersion"] == "metrics.smi-spec.io/v1alpha2"
    assert obj["resource"] == {} and obj["metadata"] == {"selfLink": "/apis/metrics.smi-spec.io/v1alpha2"}
    ns, sts = obj["items"]
    # a Namespace is not namespaced: no namespace in its reference or metadata
    assert ns["resource"] == {"kind": "Namespace", "name": "shop"}
    assert ns["metadata"]["selfLink"] == "/apis/metrics.smi-spec.io/v1alpha2/namespaces/shop"
    assert "namespace" not in ns["metadata"]
    assert sts["resource"] == {"kind": "StatefulSet", "namespace": "shop", "name": "ledger"}
    assert sts["metadata"]["selfLink"] == "/apis/metrics.smi-spec.io/v1alpha2/namespaces/shop/statefulsets/ledger"
    assert ns["timestamp"] == "2024-03-04T00:00:15.25Z"  # a fraction only when there is one
    assert ns["window"] == "1m0s"  # metav1.Duration is Go's time.Duration.String()
    # the extra quantile after the spec's three, in the same form
    assert [m["name"] for m in ns["metrics"]] == ["p99_response_latency", "p90_response_latency",
                                                  "p50_response_latency", "p999_response_latency",
                                                  "success_count", "failure_count"]
    assert ns["metrics"][3] == {"name": "p999_response_latency", "unit": "ms", "value": "7500m"}
    back = from_traffic_metrics(obj)
    assert list(back.columns) == [*schema.FRAMES["traffic"].names, "latency_p999_ms"]
    assert_same_frame(back, frame)


@pytest.mark.parametrize(("window", "text"), [
    ("30s", "30s"), (15, "15s"), (60, "1m0s"), ("1m30s", "1m30s"), ("1h", "1h0m0s"), ("1d", "24h0m0s"),
    ("500ms", "500ms"), (1.5, "1.5s"), (pd.Timedelta(microseconds=1500), "1.5ms"),
])
def test_window_is_a_go_duration(window, text):
    # Go: (60 * time.Second).String() == "1m0s", (90 * time.Minute).String() == "1h30m0s", ...
    frame = traffic_frame([dict(timestamp="2024-01-01", mesh="linkerd", kind="pod", namespace="a", name="p-1",
                                success_count=0.0, failure_count=0.0)], window_s=1)
    assert to_traffic_metrics(frame, window=window)["items"][0]["window"] == text


def test_go_duration_formatting_below_a_second_and_for_long_windows():
    assert format_go_duration(0) == "0s"
    assert format_go_duration(999) == "999ns"
    assert format_go_duration(1_500) == "1.5µs"
    assert format_go_duration(2 * 3600 * 10**9 + 3 * 10**9 + 5 * 10**8) == "2h0m3.5s"


# -- Kubernetes quantities ---------------------------------------------------------------------

FORMAT_CASES = [
    # smi-metrics README (NewMilliQuantity values, canonicalised)
    (296.875, "296875m"), (268.75, "268750m"), (162.5, "162500m"), (73.492, "73492m"), (28.58, "28580m"),
    (1008.1, "1008100m"), (247.199, "247199m"), (120.731, "120731m"), (368.0, "368"), (294, "294"),
    # the spec's YAML examples: 10m and 100
    (0.01, "10m"), (100, "100"),
    # apimachinery's canonical form: integer mantissa, the largest power of 1000 that keeps it one
    (0, "0"), (-0.0, "0"), (1.5, "1500m"), (0.1, "100m"), (1000, "1k"), (1500, "1500"), (1_500_000, "1500k"),
    (2e9, "2G"), (3e12, "3T"), (7e15, "7P"), (1e18, "1E"), (1e-6, "1u"), (2.5e-6, "2500n"), (1e-9, "1n"),
    (-0.5, "-500m"), (-3000.0, "-3k"), (123456789.5, "123456789500m"), (2**53 + 2.0, "9007199254740994"),
    # finer than a nano-unit: rounded to it, half to even
    (1.5e-9, "2n"), (2.5e-9, "2n"), (4e-10, "0"), (30.5611460241234, "30561146024n"),
    # other number types
    (5, "5"), (np.int64(3000), "3k"), (np.float64(0.25), "250m"), (Decimal("0.001"), "1m"), (Decimal("1E+3"), "1k"),
]


@pytest.mark.parametrize(("value", "text"), FORMAT_CASES)
def test_format_quantity(value, text):
    assert format_quantity(value) == text


PARSE_CASES = [
    ("296875m", "296.875"), ("0", "0"), ("100", "100"), ("10m", "0.01"), ("5n", "0.000000005"), ("2u", "0.000002"),
    ("1k", "1000"), ("100M", "100000000"), ("3G", "3e9"), ("3T", "3e12"), ("2P", "2e15"), ("1E", "1e18"),
    ("1Ki", "1024"), ("12Mi", "12582912"), ("1.5Gi", "1610612736"), ("1Ti", str(2**40)), ("1Ei", str(2**60)),
    ("1e3", "1000"), ("1E3", "1000"), ("1e-3", "0.001"), ("2.5E+2", "250"),
    ("-1.5", "-1.5"), ("+1", "1"), (".5", "0.5"), ("1.", "1"), ("0.1n", "0.0000000001"),
]


@pytest.mark.parametrize(("text", "value"), PARSE_CASES)
def test_parse_quantity(text, value):
    assert parse_quantity(text) == Decimal(value)


INVALID = ["", " 1", "1 ", "abc", "m", "1.2.3", "--1", "1e", "1e3.5", "1mi", "1ki", "1Kii", "1 m", "nan", "inf",
           "1_000", "0x10", "1K",  # "K" is not a suffix in Go (the Python client accepts it)
           "\u0661"]  # a non-ASCII digit


@pytest.mark.parametrize("text", INVALID)
def test_parse_quantity_rejects(text):
    with pytest.raises(InvalidArgument, match="is not a Kubernetes quantity"):
        parse_quantity(text)


def test_format_quantity_rejects_what_a_quantity_cannot_hold():
    for value in (math.nan, math.inf, -math.inf, Decimal("NaN")):
        with pytest.raises(InvalidArgument, match="cannot express"):
            format_quantity(value)
    for value in ("1", True, None):
        with pytest.raises(InvalidArgument, match="must be a number"):
            format_quantity(value)


def test_parser_agrees_with_the_kubernetes_client():
    if K8S_PARSE is None:
        pytest.skip("the kubernetes client is not installed")
    texts = [t for t, _ in PARSE_CASES] + [t for _, t in FORMAT_CASES]
    for text in texts:
        assert parse_quantity(text) == K8S_PARSE(text), text


# Canonical DecimalSI: "0", or an integer mantissa without a factor of 1000 (except in E) and a suffix.
CANONICAL = r"0|-?[1-9][0-9]*[numkMGTPE]?"


@settings(max_examples=500, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_any_float_is_written_canonically_and_read_back_to_the_nano_unit(value):
    text = format_quantity(value)
    assert re.fullmatch(CANONICAL, text), text
    mantissa = text.rstrip("numkMGTPE")
    assert text.endswith("E") or text == "0" or int(mantissa) % 1000 != 0, text
    # exact to the nano-unit: the decimal the float prints as, rounded to 1n at most
    assert abs(parse_quantity(text) - Decimal(repr(value))) <= Decimal("5e-10")
    if K8S_PARSE is not None:
        assert K8S_PARSE(text) == parse_quantity(text)


# -- reading what real servers wrote ---------------------------------------------------------

# smi-metrics README.md: the responses of the server for Linkerd (same fields and values, reflowed).
README_ITEM = """{
  "kind": "TrafficMetrics", "apiVersion": "metrics.smi-spec.io/v1alpha1",
  "metadata": {"name": "linkerd-web", "namespace": "linkerd",
    "selfLink": "/apis/metrics.smi-spec.io/v1alpha1/namespaces/linkerd/deployments/linkerd-web",
    "creationTimestamp": "2019-06-17T14:26:22Z"},
  "timestamp": "2019-06-17T14:26:22Z", "window": "30s",
  "resource": {"kind": "Deployment", "namespace": "linkerd", "name": "linkerd-web"},
  "edge": {"direction": "from", "resource": null},
  "metrics": [
    {"name": "p99_response_latency", "unit": "ms", "value": "296875m"},
    {"name": "p90_response_latency", "unit": "ms", "value": "268750m"},
    {"name": "p50_response_latency", "unit": "ms", "value": "162500m"},
    {"name": "success_count", "value": "73492m"},
    {"name": "failure_count", "value": "0"}]
}"""

README_EDGES = {
    "kind": "TrafficMetricsList", "apiVersion": V1A1,
    "metadata": {"selfLink": f"{BASE}/namespaces/linkerd/deployments/linkerd-controller/edges"},
    "resource": {"kind": "Deployment", "namespace": "linkerd", "name": "linkerd-controller"},
    "items": [
        {"kind": "TrafficMetrics", "apiVersion": V1A1,
         "metadata": {"name": "linkerd-controller", "namespace": "linkerd",
                      "selfLink": f"{BASE}/namespaces/linkerd/deployments/linkerd-controller/edges",
                      "creationTimestamp": "2019-06-17T14:51:57Z"},
         "timestamp": "2019-06-17T14:51:57Z", "window": "30s",
         "resource": {"kind": "Deployment", "namespace": "linkerd", "name": "linkerd-controller"},
         "edge": {"direction": "from",
                  "resource": {"kind": "Deployment", "namespace": "linkerd", "name": "linkerd-web"}},
         "metrics": metrics("294", "240", "150", "28580m", "0")},
        {"kind": "TrafficMetrics", "apiVersion": V1A1,
         "metadata": {"name": "linkerd-controller", "namespace": "linkerd",
                      "selfLink": f"{BASE}/namespaces/linkerd/deployments/linkerd-controller/edges",
                      "creationTimestamp": "2019-06-17T14:51:58Z"},
         "timestamp": "2019-06-17T14:51:57Z", "window": "30s",
         "resource": {"kind": "Deployment", "namespace": "linkerd", "name": "linkerd-controller"},
         "edge": {"direction": "to",
                  "resource": {"kind": "Deployment", "namespace": "linkerd", "name": "linkerd-prometheus"}},
         "metrics": metrics("368", "247199m", "120731m", "1008100m", "0")},
    ],
}


def test_reads_a_single_item_from_smi_metrics():
    frame = from_traffic_metrics(README_ITEM, mesh="linkerd")
    expected = traffic_frame([dict(timestamp="2019-06-17T14:26:22Z", mesh="linkerd", kind="deployment",
                                   namespace="linkerd", name="linkerd-web", success_count=73.492,
                                   failure_count=0.0, latency_p50_ms=162.5, latency_p90_ms=268.75,
                                   latency_p99_ms=296.875)], window_s=30)
    tm.assert_frame_equal(frame, expected)  # every value here is exact in a quantity
    assert frame["rps"].iloc[0] == 73.492 / 30 and frame["success_rate"].iloc[0] == 1.0


def test_reads_an_edges_list_from_smi_metrics_given_the_side():
    with pytest.raises(InvalidArgument, match=r"items\[0\]\.edge has no side .* pass side='client' or side='server'"):
        from_traffic_metrics(README_EDGES, mesh="linkerd")
    frame = from_traffic_metrics(README_EDGES, mesh="linkerd", side="client")  # Linkerd's edges are outbound
    common = dict(timestamp="2019-06-17T14:51:57Z", mesh="linkerd", kind="deployment", src_namespace="linkerd",
                  dst_namespace="linkerd", side="client", failure_count=0.0)
    expected = edges_frame([
        # direction "from": the resource is the destination
        dict(common, src_name="linkerd-web", dst_name="linkerd-controller", success_count=28.58,
             latency_p50_ms=150.0, latency_p90_ms=240.0, latency_p99_ms=294.0),
        # direction "to": the resource is the source
        dict(common, src_name="linkerd-controller", dst_name="linkerd-prometheus", success_count=1008.1,
             latency_p50_ms=120.731, latency_p90_ms=247.199, latency_p99_ms=368.0),
    ], window_s=30)
    tm.assert_frame_equal(frame, expected)


def test_reads_the_spec_examples():
    # The spec's YAML item (plus the apiVersion every API response has): seconds, plain numbers, side.
    item = {
        "kind": "TrafficMetrics", "apiVersion": V1A1,
        "resource": {"name": "foo-775b9cbd88-ntxsl", "namespace": "foobar", "kind": "Pod"},
        "edge": {"direction": "to", "side": "client",
                 "resource": {"name": "baz-577db7d977-lsk2q", "namespace": "foobar", "kind": "Pod"}},
        "timestamp": "2019-04-08T22:25:55Z", "window": "30s",
        "metrics": [{"name": f"p{q}_response_latency", "unit": "seconds", "value": "10m"} for q in (99, 90, 50)]
        + [{"name": "success_count", "value": 100}, {"name": "failure_count", "value": 100}],
    }
    frame = from_traffic_metrics(item, mesh="istio")
    row = frame.iloc[0]
    assert (row["src_name"], row["dst_name"], row["side"], row["kind"]) == (
        "foo-775b9cbd88-ntxsl", "baz-577db7d977-lsk2q", "client", "pod")
    assert row["latency_p99_ms"] == 10.0 and row["requests"] == 200.0 and row["success_rate"] == 0.5
    assert row["rps"] == 200 / 30
    # "a direction of from and an empty resource": all the traffic received
    item["edge"] = {"direction": "from", "side": "server", "resource": {}}
    traffic = from_traffic_metrics(item, mesh="istio")
    assert list(traffic.columns) == schema.FRAMES["traffic"].names
    assert (traffic["namespace"].iloc[0], traffic["name"].iloc[0]) == ("foobar", "foo-775b9cbd88-ntxsl")


def test_reading_details():
    obj = json.loads(README_ITEM)
    # smi-sdk-go spells 'Daemonset' and 'Statefulset'; kinds are read case-insensitively
    obj["resource"]["kind"] = "Daemonset"
    assert from_traffic_metrics(obj, mesh="linkerd")["kind"].tolist() == ["daemonset"]
    # no edge at all is the workload's own traffic too; unknown metrics are ignored; null latency is NaN
    obj["edge"] = None
    obj["metrics"] = [*metrics(None, "1", None, "2", "1"), {"name": "p75_tcp_bytes", "value": "3"}]
    frame = from_traffic_metrics(obj, mesh="linkerd")
    assert np.isnan(frame["latency_p99_ms"].iloc[0]) and frame["latency_p90_ms"].iloc[0] == 1.0
    assert frame["success_rate"].iloc[0] == 2 / 3
    # a latency left out entirely is NaN as well
    obj["metrics"] = metrics("1", "1", "1", "0", "0")[3:]
    frame = from_traffic_metrics(obj, mesh="linkerd")
    assert frame[LATENCY].isna().all(axis=None) and np.isnan(frame["success_rate"].iloc[0])
    assert frame["rps"].iloc[0] == 0.0
    # mesh= wins over the label meshlab writes
    written = to_traffic_metrics(frame, window="30s")
    assert from_traffic_metrics(written)["mesh"].tolist() == ["linkerd"]
    assert from_traffic_metrics(written, mesh="istio")["mesh"].tolist() == ["istio"]
    # empty lists: the selfLink says which frame
    empty = {"kind": "TrafficMetricsList", "apiVersion": V1A1, "metadata": {"selfLink": f"{BASE}/pods"}, "items": []}
    tm.assert_frame_equal(from_traffic_metrics(empty), schema.empty("traffic"))
    empty["metadata"]["selfLink"] = f"{BASE}/namespaces/a/pods/p/edges"
    tm.assert_frame_equal(from_traffic_metrics(empty), schema.empty("edges"))
    # windows: Go's grammar, and meshlab's own as a fallback
    for window, seconds in [("1m0s", 60), ("1h0m0s", 3600), ("1.5s", 1.5), ("300ms", 0.3), ("2h45m", 9900),
                            ("1µs", 1e-6), ("1us", 1e-6), ("1d", 86400)]:
        obj["window"] = window
        obj["metrics"] = metrics(None, None, None, "3", "0")
        assert from_traffic_metrics(obj, mesh="x")["rps"].iloc[0] == 3 / seconds, window
    # timestamps in other offsets are converted to UTC
    obj["timestamp"] = "2019-06-17T16:26:22.5+02:00"
    assert from_traffic_metrics(obj, mesh="x")["timestamp"].iloc[0] == pd.Timestamp("2019-06-17T14:26:22.5Z")


# -- round trips ---------------------------------------------------------------------------------

def dataset_slice(kind: str) -> pd.DataFrame:
    """Half an hour of the bundled dataset around the payments error burst at 2 h: all meshes and sides."""
    frame = ml.datasets.load("mesh-shootout").truth[kind]
    start = frame["timestamp"].min() + pd.Timedelta("1h45m")
    keep = (frame["timestamp"] >= start) & (frame["timestamp"] < start + pd.Timedelta("30min"))
    return frame[keep].reset_index(drop=True)


@pytest.mark.parametrize("kind", ["traffic", "edges"])
def test_the_bundled_dataset_round_trips(kind):
    frame = dataset_slice(kind)
    assert frame["failure_count"].sum() > 0 and set(frame["mesh"]) == {"linkerd", "istio", "consul", "none"}
    if kind == "edges":
        assert set(frame["side"]) == {"client", "server"}
    obj = to_traffic_metrics(frame)  # the window (15 s) inferred from requests / rps
    assert len(obj["items"]) == len(frame)
    assert {item["window"] for item in obj["items"]} == {"15s"}
    back = from_traffic_metrics(json.dumps(obj, allow_nan=False))
    assert_same_frame(back, frame)


names = st.sampled_from(["web", "api-v2", "db-0", "payments", "a.b"])
namespaces = st.sampled_from(["shop", "payments", "kube-system"])
kinds = st.sampled_from(["deployment", "statefulset", "daemonset", "pod", "namespace", "service", "job"])
counts = st.integers(0, 10**12).map(float)
latencies = st.one_of(st.just(math.nan), st.floats(0, 1e7, allow_nan=False, allow_infinity=False))
instants = st.integers(0, 4 * 10**18).map(lambda ns: pd.Timestamp(ns, unit="ns", tz="UTC"))


@st.composite
def golden_rows(draw, edges: bool) -> tuple[pd.DataFrame, int]:
    window_ms = draw(st.integers(1, 86_400_000))
    extra = draw(st.booleans())  # an extra quantile column
    rows = []
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(kinds)
        row = dict(timestamp=draw(instants), mesh=draw(st.sampled_from(["linkerd", "istio", "consul", "none"])),
                   kind=kind, success_count=draw(counts), failure_count=draw(counts),
                   latency_p50_ms=draw(latencies), latency_p90_ms=draw(latencies), latency_p99_ms=draw(latencies))
        if extra:
            row["latency_p999_ms"] = draw(latencies)
        if edges:
            src_ns, dst_ns = draw(namespaces), draw(namespaces)
            row.update(src_namespace=src_ns, dst_namespace=dst_ns, side=draw(st.sampled_from(["client", "server"])),
                       src_name=src_ns if kind == "namespace" else draw(names),
                       dst_name=dst_ns if kind == "namespace" else draw(names))
        else:
            ns = draw(namespaces)
            row.update(namespace=ns, name=ns if kind == "namespace" else draw(names))
        rows.append(row)
    frame = _derive(pd.DataFrame(rows), window_ms / 1000, "edges" if edges else "traffic")
    return frame, window_ms


@settings(max_examples=60, deadline=None)
@given(golden_rows(edges=False), st.booleans())
def test_traffic_frames_round_trip(case, infer_window):
    frame, window_ms = case
    infer_window = infer_window and bool((frame["requests"] > 0).any())
    obj = to_traffic_metrics(frame, window=None if infer_window else pd.Timedelta(window_ms, unit="ms"))
    back = from_traffic_metrics(json.dumps(obj, allow_nan=False))
    assert_same_frame(back, frame)


@settings(max_examples=60, deadline=None)
@given(golden_rows(edges=True), st.sampled_from(["auto", "to", "from"]), st.sampled_from(["v1alpha1", "v1alpha2"]))
def test_edges_frames_round_trip(case, direction, version):
    frame, window_ms = case
    obj = to_traffic_metrics(frame, window=f"{window_ms}ms", direction=direction, version=version)
    assert {item["edge"]["direction"] for item in obj["items"]} <= ({"to", "from"} if direction == "auto"
                                                                    else {direction})
    back = from_traffic_metrics(json.dumps(obj, allow_nan=False))
    assert_same_frame(back, frame)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0, 1e9, allow_nan=False), min_size=2, max_size=2))
def test_fractional_counts_round_trip_to_the_nano_unit(values):
    # increase() extrapolates, so real counts are fractional; a quantity keeps them to 1n
    frame = traffic_frame([dict(timestamp="2024-01-01", mesh="linkerd", kind="pod", namespace="a", name="p",
                                success_count=values[0], failure_count=values[1])], window_s=30)
    back = from_traffic_metrics(to_traffic_metrics(frame, window="30s"))
    for column in ("success_count", "failure_count"):
        assert within_resolution(back[column], frame[column])
    assert abs(back["requests"].iloc[0] - frame["requests"].iloc[0]) <= 2 * NANO + 2 * np.spacing(2e9)


# -- errors ------------------------------------------------------------------------------------

@pytest.fixture
def small() -> pd.DataFrame:
    return traffic_frame([dict(timestamp="2024-01-01", mesh="linkerd", kind="deployment", namespace="shop",
                               name="web", success_count=10.0, failure_count=2.0, latency_p99_ms=5.0)], window_s=30)


def test_writing_errors(small):
    with pytest.raises(InvalidArgument, match="needs a traffic or edges frame, got str"):
        to_traffic_metrics("frame")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=r"read as a traffic frame: .*missing columns \['rps'\]"):
        to_traffic_metrics(small.drop(columns="rps"))
    # text labels (what pandas.concat leaves) are accepted; numbers are no labels
    assert to_traffic_metrics(small.astype({"mesh": object})) == to_traffic_metrics(small)
    with pytest.raises(InvalidArgument, match=r"column 'mesh' has dtype float64.*conform\(frame, 'traffic'\)"):
        to_traffic_metrics(small.assign(mesh=1.0))
    with pytest.raises(InvalidArgument, match=r"read as an edges frame: .*missing columns"):
        to_traffic_metrics(small.assign(side="client"))
    with pytest.raises(InvalidArgument, match="no resource for kind 'cronjob'; it covers: namespace, pod"):
        to_traffic_metrics(small.assign(kind=pd.Categorical(["cronjob"])))
    with pytest.raises(InvalidArgument, match="cannot infer the window: no row has requests > 0"):
        to_traffic_metrics(small.assign(success_count=0.0, failure_count=0.0, requests=0.0, rps=0.0))
    two = schema.concat([small, small.assign(rps=small["requests"] / 60)], "traffic")
    with pytest.raises(InvalidArgument, match="cannot infer one window: requests / rps ranges from 30 s to 60 s"):
        to_traffic_metrics(two)
    with pytest.raises(InvalidArgument, match=r"window='1m' disagrees with the frame: requests / rps is 30 s"):
        to_traffic_metrics(small, window="1m")
    with pytest.raises(InvalidArgument, match="window must be positive"):
        to_traffic_metrics(small, window=0)
    with pytest.raises(InvalidArgument, match=r"latency_p99_ms is inf on row 0: .*cannot express infinity"):
        to_traffic_metrics(small.assign(latency_p99_ms=math.inf))
    with pytest.raises(InvalidArgument, match="direction='to' is for edges frames"):
        to_traffic_metrics(small, direction="to")
    with pytest.raises(InvalidArgument, match="direction must be 'auto', 'to' or 'from'"):
        to_traffic_metrics(small, direction="both")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="version must be one of v1alpha1, v1alpha2, not 'v1'"):
        to_traffic_metrics(small, version="v1")
    with pytest.raises(InvalidArgument, match="mesh 'Linkerd 2' cannot be a Kubernetes label value"):
        to_traffic_metrics(small.assign(mesh=pd.Categorical(["Linkerd 2"])))
    with pytest.raises(InvalidArgument, match="row 0 has no name"):
        to_traffic_metrics(small.assign(name=pd.Categorical([None], categories=["web"])))


READING_ERRORS = [
    (lambda o: o.update(apiVersion="metrics.smi-spec.io/v1beta1"),
     r"the object has apiVersion 'metrics.smi-spec.io/v1beta1'; expected metrics.smi-spec.io/v1alpha1 or "),
    (lambda o: o.pop("apiVersion"), "the object has apiVersion None"),
    (lambda o: o.update(kind="PodMetricsList"),
     "kind must be 'TrafficMetricsList' or 'TrafficMetrics', not 'PodMetricsList'"),
    (lambda o: o["items"][0].update(kind="PodMetrics"),
     r"items\[0\] has kind 'PodMetrics'; expected 'TrafficMetrics'"),
    (lambda o: o["items"][0].pop("resource"), r"items\[0\] has no resource"),
    (lambda o: o["items"][0]["resource"].pop("namespace"),
     r"items\[0\]\.resource \(Deployment 'web'\) has no namespace"),
    (lambda o: o["items"][0]["resource"].update(kind="CronJob"),
     r"items\[0\]\.resource\.kind 'CronJob' is not a kind meshlab reads"),
    (lambda o: o["items"][0]["metrics"][3].update(value="12 apples"),
     r"items\[0\]\.metrics\[3\]\.value: '12 apples' is not a Kubernetes quantity"),
    (lambda o: o["items"][0]["metrics"][3].update(value=True),
     r"items\[0\]\.metrics\[3\]\.value must be a quantity string"),
    (lambda o: o["items"][0]["metrics"].append(o["items"][0]["metrics"][0]),
     r"items\[0\]\.metrics\[5\]: p99_response_latency appears twice"),
    (lambda o: o["items"][0]["metrics"][0].update(unit="furlongs"),
     r"p99_response_latency\) has unit 'furlongs'; latency units read: ms, s, seconds"),
    (lambda o: o["items"][0]["metrics"][3].update(unit="ms"), r"success_count\) has unit 'ms'"),
    (lambda o: o["items"][0].update(timestamp="yesterday"),
     r"items\[0\]\.timestamp must be an RFC 3339 time"),
    (lambda o: o["items"][0].update(window="soon"), r"items\[0\]\.window 'soon' is not a duration"),
    (lambda o: o["items"][0].update(window="-30s"), r"items\[0\]\.window must be positive"),
    (lambda o: o["items"][0]["edge"].update(direction="to"),
     r"items\[0\] is all the traffic its resource sent"),
    (lambda o: o["items"][0]["edge"].update(side="client"),
     r"items\[0\] is received traffic seen by the clients"),
    (lambda o: o["items"][0]["edge"].update(direction="sideways"),
     r"edge\.direction must be 'from' or 'to', not 'sideways'"),
    (lambda o: o["items"][0]["edge"].update(resource={"namespace": "shop"}),
     r"edge\.resource selects traffic without naming a workload"),
    (lambda o: o["items"][0]["edge"].update(resource={"kind": "Pod", "namespace": "a", "name": "p"}),
     "resource is a deployment but edge.resource a pod"),
    (lambda o: o["items"].append({**o["items"][0], "edge": {
        "direction": "to", "side": "client", "resource": o["items"][0]["resource"]}}),
     "the object mixes 1 workload items .* and 1 edge items"),
    (lambda o: o["items"][0]["metadata"].pop("labels"),
     r"items\[0\] does not say which mesh observed it .* pass mesh="),
    (lambda o: o.update(items={}), "items must be a list, not dict"),
]


@pytest.mark.parametrize(("change", "message"), READING_ERRORS)
def test_reading_errors(small, change, message):
    obj = to_traffic_metrics(small)
    change(obj)
    with pytest.raises(InvalidArgument, match=message):
        from_traffic_metrics(obj)


def test_reading_errors_before_the_items(small):
    with pytest.raises(InvalidArgument, match="the text is not JSON"):
        from_traffic_metrics("{not json")
    with pytest.raises(InvalidArgument, match=r"needs a TrafficMetricsList or TrafficMetrics object .* got list"):
        from_traffic_metrics([to_traffic_metrics(small)])  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="side must be 'client' or 'server', not 'both'"):
        from_traffic_metrics(to_traffic_metrics(small), side="both")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mesh must be a mesh name"):  # InvalidArgument is a ValueError
        from_traffic_metrics(to_traffic_metrics(small), mesh="")


def test_import_stays_light():
    code = ("import sys, meshlab; assert 'meshlab.smi' not in sys.modules; import meshlab.smi; "
            "print([m for m in ('kubernetes', 'requests') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert ml.smi.to_traffic_metrics is to_traffic_metrics


def test_the_cluster_of_concat_sources_travels_as_a_label():
    frame = dataset_slice("traffic").head(40)
    two = ml.schema.conform(pd.concat([frame.assign(cluster="prod-eu"), frame.assign(cluster="prod-us")],
                                      ignore_index=True), "traffic")
    obj = to_traffic_metrics(two)
    labels = [item["metadata"]["labels"] for item in obj["items"]]
    assert labels[0] == {"meshlab/mesh": str(two["mesh"].iloc[0]), "meshlab/cluster": "prod-eu"}
    assert [lab["meshlab/cluster"] for lab in labels] == two["cluster"].astype(str).tolist()
    back = from_traffic_metrics(obj)
    assert list(back.columns[:2]) == ["timestamp", "cluster"]
    assert_same_frame(back, two)
    with pytest.raises(InvalidArgument, match="cluster 'prod eu' cannot be a Kubernetes label value"):
        to_traffic_metrics(two.assign(cluster=pd.Categorical(["prod eu"] * len(two))))


# -- hostile input: refused with the field's path, never a raw exception -----------------------

def test_a_missing_count_reads_as_a_null_one(small):
    missing, null = to_traffic_metrics(small), to_traffic_metrics(small)
    missing["items"][0]["metrics"].pop(4)  # failure_count
    null["items"][0]["metrics"][4]["value"] = None
    read_missing, read_null = from_traffic_metrics(missing), from_traffic_metrics(null)
    tm.assert_frame_equal(read_missing, read_null)
    assert math.isnan(read_missing["failure_count"][0]) and read_missing["success_count"][0] == 10.0
    assert math.isnan(read_missing["requests"][0]) and math.isnan(read_missing["rps"][0])


def _set(path: tuple, value):
    def change(obj):
        target = obj["items"][0]
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


_DEEP = "[" * 100_000 + "]" * 100_000
HOSTILE = [
    (_set(("metrics", 3, "value"), "-5"), r"items\[0\]\.metrics\[3\]\.value \(success_count\) is '-5': a count cannot"),
    (_set(("metrics", 4, "value"), -1), r"items\[0\]\.metrics\[4\]\.value \(failure_count\) is -1: a count cannot"),
    (_set(("metrics", 0, "value"), "-1m"), r"metrics\[0\]\.value \(p99_response_latency\) is '-1m': a latency cannot"),
    (_set(("metrics", 3, "value"), "1E308"), None),  # fine alone...
    (lambda o: (_set(("metrics", 3, "value"), "1E308")(o), _set(("metrics", 4, "value"), "1E308")(o)),
     r"items\[0\]\.metrics: success_count \+ failure_count is out of range"),  # ...but not summed
    (lambda o: (_set(("metrics", 3, "value"), "1E300")(o), _set(("window",), "1ns")(o)),
     r"items\[0\]: requests per second over the 0 days 00:00:00.000000001 window are out of range"),
    (_set(("metrics", 3, "value"), 10**400), r"metrics\[3\]\.value 1000.* is out of range"),
    (_set(("metrics", 3, "value"), "1e400"), r"metrics\[3\]\.value: the quantity '1e400' is out of range|out of range"),
    (_set(("timestamp",), "9999-12-31T00:00:00Z"), r"items\[0\]\.timestamp '9999-12-31T00:00:00Z' is not a valid time"),
    (_set(("timestamp",), "0001-01-01T00:00:00Z"), r"items\[0\]\.timestamp '0001-01-01T00:00:00Z' is not a valid"),
    (_set(("timestamp",), "2024-02-30T00:00:00Z"), r"items\[0\]\.timestamp '2024-02-30T00:00:00Z' is not a valid time"),
    (_set(("timestamp",), "2024-01-01T25:00:00Z"), r"items\[0\]\.timestamp '2024-01-01T25:00:00Z' is not a valid time"),
    (_set(("timestamp",), "2024-01-01T10:61:00+02:00"), r"items\[0\]\.timestamp .* is not a valid time"),
    (_set(("window",), "9999999999h"), r"items\[0\]\.window '9999999999h' is out of range"),
    (_set(("window",), "300y"), r"items\[0\]\.window .300y. is not a duration"),   # Go has no 'y' unit
    (_set(("window",), "2600000h"), r"items\[0\]\.window .2600000h. is out of range"),
    (_set(("resource",), json.loads("[" * 500 + "]" * 500)), r"items\[0\]\.resource must be an object reference"),
    (_set(("metrics",), [json.loads("[" * 500 + "]" * 500)]), r"items\[0\]\.metrics\[0\] must be an object"),
]


@pytest.mark.parametrize(("change", "message"), HOSTILE)
def test_hostile_values_are_refused_with_their_path(small, change, message):
    obj = to_traffic_metrics(small)
    change(obj)
    if message is None:
        assert from_traffic_metrics(obj)["success_count"][0] == 1e308
        return
    with pytest.raises(InvalidArgument, match=message):
        from_traffic_metrics(obj)
    with pytest.raises(InvalidArgument, match=message):  # the JSON text too
        from_traffic_metrics(json.dumps(obj))


def test_json_nested_too_deeply_is_refused():
    with pytest.raises(InvalidArgument, match="nested too deeply"):
        from_traffic_metrics(_DEEP)
    with pytest.raises(InvalidArgument, match="nested too deeply"):
        from_traffic_metrics('{"kind": "TrafficMetricsList", "items": ' + _DEEP + "}")


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    | st.sampled_from(["-5", "1E308", "-1m", "0", "9999-12-31T00:00:00Z", "2024-02-30T00:00:00Z",
                       "2024-01-01T25:00:00Z", "30s", "-30s", "9999999999h", "1ns", "Deployment", "from", "to"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
_PATHS = [(), ("timestamp",), ("window",), ("resource",), ("resource", "kind"), ("resource", "name"),
          ("resource", "namespace"), ("edge",), ("edge", "direction"), ("edge", "side"), ("edge", "resource"),
          ("metrics",), ("metrics", 0), ("metrics", 0, "value"), ("metrics", 0, "unit"), ("metrics", 3, "value"),
          ("metrics", 4, "value"), ("metrics", 4, "name"), ("metadata",), ("metadata", "labels"), ("kind",)]


@settings(max_examples=300, deadline=None)
@given(changes=st.lists(st.tuples(st.sampled_from(_PATHS), _JSON), min_size=1, max_size=3))
def test_any_value_anywhere_is_read_or_refused_cleanly(changes):
    frame = traffic_frame([dict(timestamp="2024-01-01", mesh="linkerd", kind="deployment", namespace="shop",
                                name="web", success_count=10.0, failure_count=2.0, latency_p99_ms=5.0)], window_s=30)
    obj = to_traffic_metrics(frame)
    for path, value in changes:
        try:
            if path:
                _set(path, value)(obj)
            else:
                obj["items"][0] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change removed the place
    try:
        out = from_traffic_metrics(obj)
    except InvalidArgument:
        return  # refused, with a MeshlabError
    schema.validate(out, "traffic", strict=True)
    metrics = out[["success_count", "failure_count", "requests", "rps"]].to_numpy()
    assert not np.isinf(metrics).any() and not (metrics < 0).any()
    latencies = out.filter(like="latency_").to_numpy()
    assert not (latencies < 0).any()


@settings(max_examples=60, deadline=None)
@given(st.floats(min_value=1e-6, max_value=1 - 1e-6, allow_nan=False).filter(lambda q: q not in (0.5, 0.9, 0.99)))
def test_every_quantile_column_round_trips_and_validates(q):
    """Extra quantile columns (``latency_p05_ms``, ``latency_p0999_ms``...) come back under their own name, valid."""
    column = schema.quantile_column(q)
    frame = traffic_frame([dict(timestamp="2024-01-01", mesh="linkerd", kind="deployment", namespace="shop",
                                name="web", success_count=10.0, failure_count=2.0, latency_p99_ms=5.0,
                                **{column: 3.0})], window_s=30)
    back = from_traffic_metrics(to_traffic_metrics(frame))
    assert back[column].tolist() == [3.0]
    ml.validate(back, "traffic")


@pytest.mark.parametrize(("metric", "column"), [("p5_response_latency", "latency_p05_ms"),
                                                ("p95_response_latency", "latency_p95_ms"),
                                                ("p999_response_latency", "latency_p999_ms")])
def test_foreign_percentile_names_read_as_percent(small, metric, column):
    """An SMI server's ``p5`` is the 5th percentile: it once became ``latency_p5_ms``, which validate() refuses."""
    obj = to_traffic_metrics(small)
    obj["items"][0]["metrics"].append({"name": metric, "unit": "ms", "value": "4"})
    back = from_traffic_metrics(obj)
    assert back[column].tolist() == [4.0]
    ml.validate(back, "traffic")


def test_a_percentile_name_of_zero_is_refused(small):
    obj = to_traffic_metrics(small)
    obj["items"][0]["metrics"].append({"name": "p0_response_latency", "unit": "ms", "value": "4"})
    with pytest.raises(InvalidArgument, match="names no percentile"):
        from_traffic_metrics(obj)
