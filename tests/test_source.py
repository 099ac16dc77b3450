"""meshlab.Prometheus against real servers, compared with each server's own raw API JSON.

Runs once against Debian's prometheus (backfilled with promtool) and once against
VictoriaMetrics (loaded through /api/v1/import/prometheus), the stand-in for the
scale-out engines. Each is compared with its own raw answers, never with the other's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandas.testing as tm
import pytest

from meshlab import schema
from meshlab.errors import QueryError
from meshlab.prometheus import parse
from meshlab.timeutil import format_unix_ms

from . import testdata
from .reference import raw_json, reference_frame

T0 = testdata.T0_MS / 1000
T_END = T0 + (testdata.POINTS - 1) * 15


def raw_range(server, query: str, start: float, end: float, step: str) -> pd.DataFrame:
    params = {"query": query, "start": format_unix_ms(round(start * 1000)),
              "end": format_unix_ms(round(end * 1000)), "step": step}
    return reference_frame(raw_json(server.url, "query_range", **params, **server.client.params))


@pytest.mark.parametrize("query", ["test_gauge", "test_odd", "test_reserved", 'test_gauge{job="job-1"} * 2'])
def test_query_range_equals_raw_api(server, query):
    frame = server.client.query_range(query, T0, T_END, "15s")
    expected = raw_range(server, query, T0, T_END, "15")
    assert len(expected) > 0
    tm.assert_frame_equal(frame, expected)
    schema.validate(frame, "query")


@pytest.mark.parametrize("query", ["test_gauge", "test_odd", "test_reserved"])
def test_instant_query_equals_raw_api(server, query):
    at = T0 + 600
    frame = server.client.query(query, time=at)
    expected = reference_frame(raw_json(server.url, "query", query=query, time=str(at)))
    tm.assert_frame_equal(frame.reset_index(drop=True), expected)
    assert (frame["timestamp"] == pd.Timestamp(at, unit="s", tz="UTC")).all()


def test_fast_path_equals_generic_path_on_real_response(server, monkeypatch):
    generic = server.client.query_range("test_odd", T0, T_END, "15s")
    monkeypatch.setattr(parse, "FAST_PATH_MIN_BYTES", 0)
    calls = []
    original = parse._parse_matrix_fast
    monkeypatch.setattr(parse, "_parse_matrix_fast", lambda buf: calls.append(1) or original(buf))
    fast = server.client.query_range("test_odd", T0, T_END, "15s")
    assert calls, "the fast path was not taken"
    tm.assert_frame_equal(fast, generic)


def test_odd_label_values_and_special_floats_survive(server):
    frame = server.client.query_range("test_odd", T0, T_END, "15s")
    assert set(frame["odd"].cat.categories) == set(testdata.ODD_VALUES)
    values = frame["value"].to_numpy()
    # VictoriaMetrics drops NaN samples (it reserves NaN for staleness); Prometheus keeps them.
    if server.name == "prometheus":
        assert np.isnan(values).any()
        # VictoriaMetrics also stores floats as decimal mantissa and exponent, which loses
        # the extremes (5e-324 becomes 0), so exact values are Prometheus' alone.
        assert 5e-324 in values and 1.7976931348623157e308 in values
    assert np.isposinf(values).any() and np.isneginf(values).any()


def test_reserved_label_names_are_renamed(server):
    frame = server.client.query("test_reserved", time=T0 + 60)
    # A label keeps its own name unless it is reserved; `value` yields to the real `label_value`.
    assert list(frame.columns) == ["timestamp", "value", "__name__", "label_value",
                                   "label_timestamp", "label_label_value"]
    assert frame.loc[0, "label_label_value"] == "v" and frame.loc[0, "label_value"] == "lv"
    assert frame.loc[0, "label_timestamp"] == "t"
    assert frame.loc[0, "value"] == 4.0


def test_chunked_range_equals_single_query(server):
    single = server.client.query_range("test_gauge", T0, T_END, "15s")
    chunked = server.client.query_range("test_gauge", T0, T_END, "15s", max_points=37)
    tm.assert_frame_equal(chunked, single)


def test_range_over_11000_steps_returns_the_full_series(server):
    end = T0 + (testdata.LONG_POINTS - 1) * 15
    frame = server.client.query_range("test_long", T0, end, "15s")
    dense = frame[frame["kind"] == "dense"]
    truth = testdata.long_series()[0]
    assert len(dense) == testdata.LONG_POINTS > 11_000
    np.testing.assert_array_equal(dense["value"].to_numpy(), truth.values)
    np.testing.assert_array_equal(dense["timestamp"].astype("int64").to_numpy() // 1_000_000, truth.timestamps_ms)
    # Independently: the server's own raw answers, fetched in two halves by hand.
    mid = T0 + 6_000 * 15
    expected = pd.concat([raw_range(server, "test_long", T0, mid, "15"),
                          raw_range(server, "test_long", mid + 15, end, "15")])
    expected = expected.sort_values(["kind", "timestamp"], kind="stable").reset_index(drop=True)
    expected["kind"] = expected["kind"].astype("category")
    expected["__name__"] = expected["__name__"].astype("category")
    tm.assert_frame_equal(frame, expected)


def test_prometheus_refuses_what_meshlab_splits(prometheus_server):
    end = T0 + (testdata.LONG_POINTS - 1) * 15
    doc = raw_json(prometheus_server.url, "query_range", query="test_long", start=str(T0), end=str(end), step="15")
    assert doc["status"] == "error" and "11,000" in doc["error"]


def test_empty_result_has_the_right_columns(server):
    frame = server.client.query_range("no_such_metric", T0, T_END, "15s")
    assert list(frame.columns) == ["timestamp", "value"] and len(frame) == 0
    schema.validate(frame, "query")
    assert len(server.client.query("no_such_metric", time=T0)) == 0


def test_scalar_result(server):
    frame = server.client.query("1 + 1", time=T0)
    doc = raw_json(server.url, "query", query="1 + 1", time=str(T0))
    tm.assert_frame_equal(frame, reference_frame(doc))
    assert frame["value"].tolist() == [2.0]
    assert frame["timestamp"].tolist() == [pd.Timestamp(T0, unit="s", tz="UTC")]


def test_string_result(server):
    frame = server.client.query('"hello"', time=T0)
    doc = raw_json(server.url, "query", query='"hello"', time=str(T0))
    if doc["data"]["resultType"] == "string":  # Prometheus
        schema.validate(frame, "string")
        assert frame["value"].tolist() == [doc["data"]["result"][1]] == ["hello"]
        assert frame["timestamp"].tolist() == [pd.Timestamp(T0, unit="s", tz="UTC")]
    else:  # VictoriaMetrics answers string literals with an empty vector
        assert doc["data"]["result"] == [] and len(frame) == 0


def test_syntax_error_carries_the_servers_message(server):
    doc = raw_json(server.url, "query", query="sum(rate(x[5m])", time=str(T0))
    with pytest.raises(QueryError) as caught:
        server.client.query("sum(rate(x[5m])", time=T0)
    error = caught.value
    assert error.message == doc["error"] and error.error_type == doc["errorType"]
    assert error.query == "sum(rate(x[5m])" and error.status in (400, 422)
    assert doc["error"] in str(error)


def test_victoriametrics_aligns_ranges_unless_nocache(victoria_server):
    start = T0 + 7  # not a multiple of the step
    aligned = raw_json(victoria_server.url, "query_range", query="test_gauge", start=str(start),
                       end=str(T_END), step="15")
    exact = raw_json(victoria_server.url, "query_range", query="test_gauge", start=str(start),
                     end=str(T_END), step="15", nocache="1")
    assert aligned["data"]["result"][0]["values"][0][0] % 15 == 0
    assert exact["data"]["result"][0]["values"][0][0] == start
    frame = victoria_server.client.query_range("test_gauge", start, T_END, "15s")
    assert frame["timestamp"].min() == pd.Timestamp(start, unit="s", tz="UTC")


def test_victoriametrics_rate_does_not_extrapolate(prometheus_server, victoria_server):
    query = "rate(test_counter_total[1m])"
    at = T0 + 3_000 + 7  # a window that does not line up with the samples
    prom = prometheus_server.client.query(query, time=at)
    vm = victoria_server.client.query(query, time=at)
    for server, frame in ((prometheus_server, prom), (victoria_server, vm)):
        raw = reference_frame(raw_json(server.url, "query", query=query, time=str(at)))
        tm.assert_frame_equal(frame.reset_index(drop=True), raw)  # each matches its own API
    # VictoriaMetrics: the increase since the last sample before the window, over the
    # time between those samples; no extrapolation to the window's edges.
    truth = testdata.counter_series()[0]
    t = np.asarray(truth.timestamps_ms) / 1000
    v = np.asarray(truth.values)
    last = np.flatnonzero(t <= at)[-1]
    before = np.flatnonzero(t <= at - 60)[-1]
    expected_vm = (v[last] - v[before]) / (t[last] - t[before])
    assert vm["value"].item() == pytest.approx(expected_vm, rel=1e-9)
    assert prom["value"].item() != pytest.approx(expected_vm, rel=1e-6)
    assert prom["value"].item() == pytest.approx(expected_vm, rel=0.5)


def test_other_endpoints_return_their_data(server):
    names = server.client.get("label/__name__/values")
    assert {"test_gauge", "test_odd", "test_long"} <= set(names)
    assert names == raw_json(server.url, "label/__name__/values")["data"]
    with pytest.raises(QueryError) as caught:
        server.client.get("query", {"query": "sum("})
    assert caught.value.status in (400, 422)
    raw = raw_json(server.url, "query", query="sum(")
    assert caught.value.error_type == raw["errorType"]
    assert caught.value.message[:40] == raw["error"][:40]  # VictoriaMetrics quotes the current time
