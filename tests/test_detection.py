"""Cheap detection: a year of sparse history, a handful of requests per mesh, the same answers.

A counting proxy on 127.0.0.1 sits between the client and a real server and records every
request; the ground truth is the first timestamp written for each mesh's marker.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd
import pytest
import requests

import meshlab as ml
from meshlab.meshes import detection
from meshlab.openmetrics import Series, write_openmetrics
from meshlab.prometheus.local import LocalPrometheus, LocalVictoriaMetrics

from .conftest import require_binary

DAY_MS = 86_400_000
NOW_MS = (int(time.time() * 1000) // 60_000) * 60_000 - 600_000  # the history ends ten minutes ago


WEEK_MS = 7 * DAY_MS


def weekly(name: str, labels: dict[str, str], first_ms: int, last_ms: int = NOW_MS) -> Series:
    """A counter sampled once a week from ``first_ms``: sparse, so a year backfills quickly.

    Every series samples at the same time of the week (give or take milliseconds), so the
    whole year makes about 52 two-hour TSDB blocks.
    """
    times = np.arange(first_ms, last_ms, WEEK_MS, dtype=np.int64)
    return Series(name, labels, times, np.cumsum(np.ones(len(times))))


#: mesh -> the first timestamp of its marker (odd milliseconds, so no grid can hit them by luck)
FIRST = {
    "linkerd": NOW_MS - 52 * WEEK_MS + 12_345,
    "istio": NOW_MS - 28 * WEEK_MS + 777,
    "kuma": NOW_MS - 43 * WEEK_MS + 1_501,
    "consul": NOW_MS - 14 * WEEK_MS + 123,
}


def year_of_history() -> list[Series]:
    return [
        weekly("response_total", {"direction": "inbound", "namespace": "shop", "deployment": "web"}, FIRST["linkerd"]),
        weekly("response_total", {"direction": "inbound", "namespace": "shop", "deployment": "api"},
              FIRST["linkerd"] + 6 * WEEK_MS + 5),
        weekly("istio_requests_total", {"reporter": "destination", "destination_workload": "web"},
              FIRST["istio"] + WEEK_MS),
        weekly("istio_requests_total", {"reporter": "destination", "destination_workload": "api"}, FIRST["istio"]),
        # Kuma's data ended months ago: it is still in the history
        weekly("envoy_cluster_upstream_rq_xx", {"kuma_io_service": "web", "envoy_response_code_class": "2"},
              FIRST["kuma"], NOW_MS - 36 * WEEK_MS),
        # Envoy stats without Kuma's or Consul's labels, older than both: neither mesh's
        weekly("envoy_cluster_upstream_rq_xx", {"envoy_response_code_class": "2"}, NOW_MS - 52 * WEEK_MS + 9),
        weekly("envoy_http_downstream_rq_xx", {"envoy_response_code_class": "2"}, NOW_MS - 51 * WEEK_MS + 9),
        weekly("envoy_http_downstream_rq_xx", {"consul_source_service": "web", "envoy_response_code_class": "2"},
              FIRST["consul"]),
    ]


class CountingProxy:
    """Forwards every request to ``upstream`` and records its path and parameters."""

    def __init__(self, upstream: str) -> None:
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                params = parse_qs(parts.query if self.command == "GET" else body.decode())
                proxy.requests.append((parts.path, params))
                answer = requests.request(self.command, upstream + self.path, data=body or None, timeout=120,
                                          headers={"Content-Type": self.headers.get("Content-Type", "")})
                self.send_response(answer.status_code)
                self.send_header("Content-Type", answer.headers.get("Content-Type", "application/json"))
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def history_file(tmp_path_factory: pytest.TempPathFactory):
    return write_openmetrics(tmp_path_factory.mktemp("year") / "year.om", year_of_history())


def counted(server: LocalPrometheus | LocalVictoriaMetrics) -> Iterator[tuple[CountingProxy, ml.Prometheus]]:
    with server:
        proxy = CountingProxy(server.url)
        try:
            yield proxy, ml.Prometheus(proxy.url, params=server.client.params)
        finally:
            proxy.close()


@pytest.fixture(scope="module")
def prometheus_year(history_file) -> Iterator[tuple[CountingProxy, ml.Prometheus]]:
    """A real Prometheus holding the year, behind a counting proxy; the client talks to the proxy."""
    require_binary("prometheus")
    require_binary("promtool")
    yield from counted(LocalPrometheus(openmetrics=history_file))


@pytest.fixture(scope="module")
def victoria_year(history_file) -> Iterator[tuple[CountingProxy, ml.Prometheus]]:
    """The same in VictoriaMetrics."""
    require_binary("victoria-metrics", "victoria-metrics-prod")
    yield from counted(LocalVictoriaMetrics(openmetrics=history_file))


@pytest.fixture(params=["prometheus", "victoriametrics"])
def year_server(request: pytest.FixtureRequest) -> tuple[CountingProxy, ml.Prometheus]:
    """Each real server holding the year in turn (each started once per module)."""
    return request.getfixturevalue("prometheus_year" if request.param == "prometheus" else "victoria_year")


def bisection(prom: ml.Prometheus, series: str) -> pd.Timestamp | None:
    """The detection meshlab had before: bisection from the epoch to now, about 40 queries."""
    hi_ms, lo_ms = int(pd.Timestamp.now(tz="UTC").value // 1_000_000), 0

    def any_in(lo: int, hi: int) -> bool:
        return len(prom.query(f"count(last_over_time({series}[{hi - lo}ms]))", time=hi / 1000)) > 0

    if not any_in(lo_ms, hi_ms):
        return None
    while hi_ms - lo_ms > 1000:
        mid = (lo_ms + hi_ms) // 2
        if any_in(lo_ms, mid):
            hi_ms = mid
        else:
            lo_ms = mid
    return pd.Timestamp(hi_ms, unit="ms", tz="UTC")


@pytest.mark.parametrize("name", ml.meshes.available())
def test_detection_is_exact_in_a_handful_of_requests_per_mesh(year_server, name):
    proxy, prom = year_server
    before = len(proxy.requests)
    since = ml.meshes.get_mesh(name).detect(prom)
    sent = proxy.requests[before:]
    if name in FIRST:
        assert since == pd.Timestamp(FIRST[name], unit="ms", tz="UTC")
        assert len(sent) <= 5, [path for path, _ in sent]
    else:
        assert since is None
        assert [path for path, _ in sent] == ["/api/v1/label/__name__/values"]


@pytest.mark.parametrize("name", sorted(FIRST))
def test_detection_gives_the_bisections_answer(prometheus_year, name):
    # Prometheus only: the bisection's first window reaches back to 1970, where VictoriaMetrics
    # selects nothing, so it never found a mesh there (the test above checks the new answers).
    proxy, prom = prometheus_year
    cls = ml.meshes.get_mesh(name)
    marker = {"consul": 'envoy_http_downstream_rq_xx{consul_source_service!=""}',
              "kuma": 'envoy_cluster_upstream_rq_xx{kuma_io_service!=""}'}.get(name, cls.marker)
    before = len(proxy.requests)
    old = bisection(prom, marker)
    assert len(proxy.requests) - before > 30  # what detection used to cost
    new = cls.detect(prom)
    assert old is not None and new is not None
    assert pd.Timedelta(0) <= old - new < pd.Timedelta("1s")


def test_detect_finds_every_mesh_of_a_year_in_few_requests(year_server):
    proxy, prom = year_server
    before = len(proxy.requests)
    found = ml.detect(prom)
    assert found == {name: pd.Timestamp(ms, unit="ms", tz="UTC") for name, ms in FIRST.items()}
    absent = len(ml.meshes.available()) - len(FIRST)
    assert len(proxy.requests) - before <= 5 * len(FIRST) + absent


def test_no_detection_range_query_loads_more_than_a_window_per_step(year_server):
    proxy, prom = year_server
    before = len(proxy.requests)
    ml.Linkerd.detect(prom)
    ranges = [params for path, params in proxy.requests[before:] if path.endswith("/query_range")]
    assert ranges
    for params in ranges:
        step_ms = float(params["step"][0]) * 1000
        points = (float(params["end"][0]) - float(params["start"][0])) * 1000 / step_ms + 1
        assert points <= detection.POINTS_PER_LEVEL + 2
        assert f"[{round(step_ms)}ms]" in params["query"][0]  # windows tile the range, never overlap


def test_detection_holds_no_more_samples_at_once_than_one_query_over_everything(tmp_path):
    """A dense day: the peak of samples Prometheus holds for any detection query (its own
    ``stats=all`` count) is no more than for one query over the whole history."""
    require_binary("prometheus")
    require_binary("promtool")
    start = NOW_MS - DAY_MS + 4_321
    times = np.arange(start, NOW_MS, 15_000, dtype=np.int64)
    dense = [Series("response_total", {"direction": "inbound", "pod": f"web-{i}"}, times,
                    np.arange(len(times), dtype=float)) for i in range(20)]
    with LocalPrometheus(openmetrics=write_openmetrics(tmp_path / "day.om", dense)) as server:
        proxy = CountingProxy(server.url)
        try:
            assert ml.Linkerd.detect(ml.Prometheus(proxy.url)) == pd.Timestamp(start, unit="ms", tz="UTC")
        finally:
            proxy.close()

        def peak(path: str, params: dict[str, str]) -> int:
            answer = requests.get(server.url + path, params={**params, "stats": "all"}, timeout=60).json()
            return int(answer["data"]["stats"]["samples"]["peakSamples"])

        queries = [(path, {k: v[0] for k, v in params.items()}) for path, params in proxy.requests
                   if path.endswith(("/query", "/query_range"))]
        assert len(queries) >= 2
        everything = peak("/api/v1/query", {"query": "count(last_over_time(response_total[2d]))",
                                            "time": str(NOW_MS / 1000)})
        assert everything >= len(times)  # one series' whole day, at least
        assert max(peak(path, params) for path, params in queries) <= everything
