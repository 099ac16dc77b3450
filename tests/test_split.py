"""query_range splits what a server refuses for its size, and the merged frame is one query's.

Real servers with low limits (Prometheus' --query.max-samples, VictoriaMetrics'
-search.maxSamplesPerSeries) answer the same queries as the unlimited session servers.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import requests

from meshlab.errors import PrometheusWarning, QueryError
from meshlab.prometheus.local import LocalPrometheus, LocalVictoriaMetrics

from . import testdata
from .conftest import require_binary
from .test_faults import ScriptedServer, json_reply

T0 = testdata.T0_MS / 1000
T1 = T0 + (testdata.LONG_POINTS - 1) * testdata.STEP_MS / 1000


@pytest.fixture(scope="module")
def small_prometheus(testdata_file) -> Iterator[LocalPrometheus]:
    require_binary("prometheus")
    require_binary("promtool")
    with LocalPrometheus(openmetrics=testdata_file, extra_args=["--query.max-samples=2000"]) as server:
        yield server


@pytest.fixture(scope="module")
def small_victoria(testdata_file) -> Iterator[LocalVictoriaMetrics]:
    require_binary("victoria-metrics", "victoria-metrics-prod")
    with LocalVictoriaMetrics(openmetrics=testdata_file, extra_args=["-search.maxSamplesPerSeries=5000"]) as server:
        yield server


def refused_whole(url: str, query: str, **extra: str) -> str:
    """The server's own refusal of one request's worth of the range (so the test cannot pass vacuously)."""
    end = T0 + 10_999 * 15  # the first chunk: 11,000 points
    answer = requests.get(f"{url}/api/v1/query_range", timeout=30,
                          params={"query": query, "start": T0, "end": end, "step": 15, **extra})
    assert answer.status_code == 422, answer.text[:300]
    return str(answer.json()["error"])


def split_query(client, query: str) -> tuple[pd.DataFrame, list[str]]:
    return split_query_with(client, query)


def split_query_with(client, query: str, **options: int) -> tuple[pd.DataFrame, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = client.query_range(query, T0, T1, "15s", progress=False, **options)
    return frame, [str(w.message) for w in caught if issubclass(w.category, PrometheusWarning)]


@pytest.mark.parametrize("query", ["test_long", "rate(test_long[5m])", "sum(test_long)"])
def test_query_range_splits_ranges_prometheus_refuses_for_size(small_prometheus, prometheus_server, query):
    assert "too many samples" in refused_whole(small_prometheus.url, query)
    frame, notes = split_query(small_prometheus.client, query)
    pd.testing.assert_frame_equal(frame, prometheus_server.client.query_range(query, T0, T1, "15s"))
    assert len(notes) == 1 and "split the range" in notes[0] and "too many samples" in notes[0]


@pytest.mark.parametrize("query", ["test_long", "sum(test_long)", "max_over_time(test_long[10m])"])
def test_query_range_splits_ranges_victoriametrics_refuses_for_size(small_victoria, victoria_server, query):
    # VictoriaMetrics' rate() over the gappy series' gaps differs with the range queried,
    # chunked or not (a server quirk), so the queries here are ones it answers alike.
    assert "maxSamplesPerSeries" in refused_whole(small_victoria.url, query, nocache="1")
    frame, notes = split_query(small_victoria.client, query)
    pd.testing.assert_frame_equal(frame, victoria_server.client.query_range(query, T0, T1, "15s"))
    assert len(notes) == 1 and "split the range" in notes[0]


def test_split_query_range_matches_the_data_written(small_prometheus):
    frame, _ = split_query(small_prometheus.client, 'test_long{kind="dense"}')
    times = testdata.T0_MS + np.arange(testdata.LONG_POINTS, dtype=np.int64) * testdata.STEP_MS
    assert (frame["timestamp"].astype("int64").to_numpy() // 1_000_000 == times).all()
    np.testing.assert_array_equal(frame["value"].to_numpy(), np.arange(testdata.LONG_POINTS) * 0.5)


def test_a_step_too_large_on_its_own_is_a_clear_error(small_prometheus):
    with pytest.raises(QueryError, match="even for one step") as caught:
        small_prometheus.client.query_range("count_over_time(test_long[1d])", T0, T1, "15s", progress=False)
    assert "too many samples" in caught.value.message


def test_splitting_stays_within_max_requests(small_prometheus):
    with pytest.raises(QueryError, match="max_requests=3"):
        small_prometheus.client.query_range("sum(test_long)", T0, T1, "15s", max_requests=3, progress=False)


REFUSED = {"status": "error", "errorType": "execution",
           "error": "query processing would load too many samples into memory in query execution"}


def test_a_server_refusing_every_size_ends_after_a_few_requests():
    fake = ScriptedServer()
    fake.script = [json_reply(REFUSED, 422)]
    try:
        from meshlab import Prometheus

        with pytest.raises(QueryError, match="even for one step"):
            Prometheus(fake.url, max_workers=1).query_range("x", 0, 999, 1, progress=False)
        # 1000 points halved down to one: about log2(1000) refusals, not one per point
        assert len(fake.requests) <= 12
    finally:
        fake.close()


def test_a_points_per_series_refusal_is_split_too(prometheus_server):
    # a server whose points-per-series limit is lower than max_points (e.g. behind a proxy) says so
    frame, notes = split_query_with(prometheus_server.client, "test_long", max_points=12_500)
    pd.testing.assert_frame_equal(frame, prometheus_server.client.query_range("test_long", T0, T1, "15s"))
    assert len(notes) == 1 and "11,000 points" in notes[0]


def test_other_query_errors_are_not_split():
    fake = ScriptedServer()
    fake.script = [json_reply({"status": "error", "errorType": "bad_data", "error": "parse error"}, 400)]
    try:
        from meshlab import Prometheus

        with pytest.raises(QueryError, match="parse error"):
            Prometheus(fake.url).query_range("x", 0, 999, 1, progress=False)
        assert len(fake.requests) == 1
    finally:
        fake.close()


VM_POINTS = 100_000  # one series over 17 days at 15 s: many of VictoriaMetrics' blocks (8,192 samples at most)


@pytest.fixture(scope="module")
def long_victoria_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalVictoriaMetrics, ...]]:
    """The same long series in an unlimited VictoriaMetrics and one with -search.maxSamplesPerQuery=20000."""
    require_binary("victoria-metrics", "victoria-metrics-prod")
    from meshlab.openmetrics import Series, write_openmetrics

    times = testdata.T0_MS + np.arange(VM_POINTS, dtype=np.int64) * testdata.STEP_MS
    path = write_openmetrics(tmp_path_factory.mktemp("vm") / "long.om",
                             [Series("vm_long", {"k": "a"}, times, np.arange(VM_POINTS) * 1.0)])
    with LocalVictoriaMetrics(openmetrics=path) as unlimited, \
            LocalVictoriaMetrics(openmetrics=path, extra_args=["-search.maxSamplesPerQuery=20000"]) as limited:
        yield unlimited, limited


@pytest.mark.parametrize("query", ["vm_long", "max_over_time(vm_long[5m])", "sum(vm_long)"])
def test_query_range_splits_what_victoriametrics_max_samples_per_query_refuses(long_victoria_pair, query):
    unlimited, limited = long_victoria_pair
    end = T0 + (VM_POINTS - 1) * testdata.STEP_MS / 1000
    answer = requests.get(f"{limited.url}/api/v1/query_range", timeout=30, params={
        "query": query, "start": T0, "end": T0 + 10_999 * 60, "step": 60, "nocache": "1"})
    assert answer.status_code == 422 and "maxSamplesPerQuery" in answer.json()["error"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = limited.client.query_range(query, T0, end, "60s", progress=False)
    pd.testing.assert_frame_equal(frame, unlimited.client.query_range(query, T0, end, "60s"))
    assert len(frame) == (VM_POINTS - 1) * testdata.STEP_MS // 60_000 + 1
    notes = [str(w.message) for w in caught if issubclass(w.category, PrometheusWarning)]
    assert len(notes) == 1 and "maxSamplesPerQuery" in notes[0]
