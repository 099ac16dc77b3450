"""Faults, served by a small local HTTP server that plays a script of responses.

A real Prometheus cannot be made to fail on cue, so these tests use a local
http.server that speaks HTTP/1.1 and answers with Prometheus' JSON, or with the
failures a real deployment shows: refused connections, slow answers, 503 and 429
before success, an HTML error page from a proxy, a body cut off mid-transfer.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from meshlab import Prometheus
from meshlab.errors import InvalidArgument, PrometheusUnavailable, PrometheusWarning, QueryError, ResponseError

OK = {"status": "success", "data": {"resultType": "vector", "result": [
    {"metric": {"__name__": "up", "job": "a"}, "value": [1700000000, "1"]}]}}

Reply = Callable[[BaseHTTPRequestHandler], None]


def json_reply(doc: dict, status: int = 200, headers: dict | None = None) -> Reply:
    def reply(handler: BaseHTTPRequestHandler) -> None:
        body = json.dumps(doc).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            handler.send_header(k, v)
        handler.end_headers()
        handler.wfile.write(body)
    return reply


def raw_reply(status: int, body: bytes, content_type: str, length: int | None = None) -> Reply:
    def reply(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(length if length is not None else len(body)))
        handler.end_headers()
        handler.wfile.write(body)
        handler.wfile.flush()
        handler.close_connection = True
    return reply


def slow_reply(seconds: float) -> Reply:
    def reply(handler: BaseHTTPRequestHandler) -> None:
        time.sleep(seconds)
        json_reply(OK)(handler)
    return reply


class _QuietServer(ThreadingHTTPServer):
    """A client that gave up (its deadline passed, as these tests intend) is not the server's error to print."""

    def handle_error(self, request, client_address):
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class ScriptedServer:
    """Answers each request with the next reply of its script (the last one repeats)."""

    def __init__(self) -> None:
        self.script: list[Reply] = [json_reply(OK)]
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                parts = urlsplit(self.path)
                params = parse_qs(parts.query if self.command == "GET" else body)
                server.requests.append({"method": self.command, "path": parts.path,
                                        "params": params, "headers": dict(self.headers)})
                reply = server.script.pop(0) if len(server.script) > 1 else server.script[0]
                reply(self)

            do_GET = do_POST = _handle

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    yield server
    server.close()


def test_server_down_is_a_clear_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    prom = Prometheus(f"http://127.0.0.1:{port}", retries=1, backoff=0)
    with pytest.raises(PrometheusUnavailable, match=r"could not connect to http://127\.0\.0\.1:\d+ .*refused"):
        prom.query("up")


def test_slow_server_times_out(fake):
    fake.script = [slow_reply(1.5)]
    prom = Prometheus(fake.url, timeout=0.3, retries=1, backoff=0)
    with pytest.raises(PrometheusUnavailable, match=r"did not answer within 0\.3 s"):
        prom.query("up")
    assert len(fake.requests) == 2  # the first try and one retry
    assert fake.requests[0]["params"]["timeout"] == ["300ms"]  # the server is told too


@pytest.mark.parametrize("status", [503, 502, 500, 429])
def test_transient_errors_are_retried_then_succeed(fake, status):
    fake.script = [json_reply({"status": "error", "errorType": "unavailable", "error": "busy"}, status,
                              {"Retry-After": "0"}),
                   json_reply({"status": "error", "errorType": "unavailable", "error": "busy"}, status),
                   json_reply(OK)]
    frame = Prometheus(fake.url, retries=3, backoff=0.01).query("up")
    assert frame["value"].tolist() == [1.0] and frame["job"].tolist() == ["a"]
    assert len(fake.requests) == 3


def test_retries_give_up_with_the_servers_error(fake):
    fake.script = [json_reply({"status": "error", "errorType": "timeout", "error": "query timed out"}, 503)]
    with pytest.raises(QueryError, match="query timed out") as caught:
        Prometheus(fake.url, retries=2, backoff=0).query("up")
    assert caught.value.error_type == "timeout" and caught.value.status == 503
    assert len(fake.requests) == 3


def test_html_error_page_is_a_clear_error(fake):
    page = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    fake.script = [raw_reply(502, page, "text/html")]
    with pytest.raises(ResponseError, match=r"HTTP 502 with an HTML page instead of Prometheus JSON"):
        Prometheus(fake.url, retries=0).query("up")


def test_login_page_with_200_is_a_clear_error(fake):
    fake.script = [raw_reply(200, b"<!doctype html><html><form>Sign in</form></html>", "text/html")]
    with pytest.raises(ResponseError, match="is the URL the Prometheus API root"):
        Prometheus(fake.url, retries=0).query("up")


def test_truncated_body_is_a_clear_error(fake):
    body = json.dumps(OK).encode()
    fake.script = [raw_reply(200, body[:40], "application/json", length=len(body))]
    with pytest.raises(ResponseError, match=f"cut off after 40 bytes, {len(body) - 40} more expected"):
        Prometheus(fake.url, retries=0).query("up")


def test_promql_error_carries_type_message_and_query(fake):
    fake.script = [json_reply({"status": "error", "errorType": "bad_data",
                               "error": "1:5: parse error: unclosed left parenthesis"}, 400)]
    with pytest.raises(QueryError) as caught:
        Prometheus(fake.url).query("sum(")
    error = caught.value
    assert (error.error_type, error.message, error.query, error.status) == (
        "bad_data", "1:5: parse error: unclosed left parenthesis", "sum(", 400)
    assert len(fake.requests) == 1  # 4xx is not retried


def test_server_warnings_become_python_warnings(fake):
    doc = {**OK, "warnings": ["partial response: store gateway down"], "infos": ["metric might not be a counter"]}
    fake.script = [json_reply(doc)]
    with pytest.warns(PrometheusWarning) as record:
        Prometheus(fake.url).query("up")
    messages = [str(w.message) for w in record]
    assert messages == ["Prometheus: partial response: store gateway down",
                        "Prometheus (info): metric might not be a counter"]


def test_long_queries_are_posted(fake):
    prom = Prometheus(fake.url)
    prom.query("up")
    long_query = "sum(" + " + ".join(f'up{{job="j{i}"}}' for i in range(400)) + ")"
    prom.query(long_query)
    short, long_ = fake.requests
    assert short["method"] == "GET" and long_["method"] == "POST"
    assert long_["params"]["query"] == [long_query]
    assert long_["headers"]["Content-Type"] == "application/x-www-form-urlencoded"


def test_loopback_asks_for_no_compression_and_remote_for_gzip(fake):
    Prometheus(fake.url).query("up")
    assert fake.requests[-1]["headers"]["Accept-Encoding"] == "identity"
    Prometheus(fake.url, compress=True).query("up")
    assert "gzip" in fake.requests[-1]["headers"]["Accept-Encoding"]
    assert Prometheus("http://prometheus.example.com:9090").compress is True
    assert Prometheus("http://[::1]:9090").compress is False


def test_credentials_never_appear_in_repr_errors_or_logs(fake, caplog):
    fake.script = [json_reply({"status": "error", "errorType": "bad_data", "error": "nope"}, 400)]
    url = fake.url.replace("http://", "http://alice:s3cret-pw@")
    prom = Prometheus(url, headers={"Authorization": "Bearer tok3n-value"}, retries=0)
    with caplog.at_level(logging.DEBUG, logger="meshlab"), pytest.raises(QueryError) as caught:
        prom.query("up")
    sent = fake.requests[-1]["headers"]
    assert sent["Authorization"] == "Bearer tok3n-value"  # the header wins over URL basic auth
    texts = [repr(prom), str(prom.url), str(caught.value), repr(caught.value), caplog.text]
    down = Prometheus("http://alice:s3cret-pw@127.0.0.1:9/", retries=0)
    with pytest.raises(PrometheusUnavailable) as unreachable:
        down.query("up")
    texts += [repr(down), str(unreachable.value)]
    for text in texts:
        assert "s3cret-pw" not in text and "tok3n-value" not in text and "alice" not in text
    assert repr(prom) == f"Prometheus({fake.url!r}, headers={{'Authorization': '***'}})"


def test_basic_auth_from_url_is_sent(fake):
    Prometheus(fake.url.replace("http://", "http://alice:pw@")).query("up")
    assert fake.requests[-1]["headers"]["Authorization"].startswith("Basic ")


def test_chunks_are_fetched_concurrently_and_bounded(fake):
    in_flight = {"now": 0, "max": 0}
    lock = threading.Lock()

    def matrix(handler: BaseHTTPRequestHandler) -> None:
        with lock:
            in_flight["now"] += 1
            in_flight["max"] = max(in_flight["max"], in_flight["now"])
        time.sleep(0.05)
        params = parse_qs(urlsplit(handler.path).query)
        start, end, step = (float(params[k][0]) for k in ("start", "end", "step"))
        n = round((end - start) / step) + 1
        values = [[start + i * step, str(start + i * step)] for i in range(n)]
        with lock:
            in_flight["now"] -= 1
        json_reply({"status": "success", "data": {"resultType": "matrix", "result": [
            {"metric": {"a": "b"}, "values": values}]}})(handler)

    fake.script = [matrix]
    frame = Prometheus(fake.url, max_workers=3).query_range("x", 0, 999, 1, max_points=100, progress=False)
    assert len(fake.requests) == 10 and in_flight["max"] <= 3
    assert frame["value"].tolist() == [float(i) for i in range(1000)]
    starts = sorted(float(r["params"]["start"][0]) for r in fake.requests)
    ends = sorted(float(r["params"]["end"][0]) for r in fake.requests)
    assert starts == [100.0 * k for k in range(10)] and ends == [100.0 * k + 99 for k in range(10)]


def test_a_failing_chunk_fails_the_query(fake):
    fake.script = [json_reply({"status": "success", "data": {"resultType": "matrix", "result": []}}),
                   json_reply({"status": "error", "errorType": "execution", "error": "boom"}, 422)]
    with warnings.catch_warnings(), pytest.raises(QueryError, match="boom"):
        Prometheus(fake.url, max_workers=1).query_range("x", 0, 999, 1, max_points=500, progress=False)


def test_progress_bar_over_chunks(fake, capsys):
    values = [[i, str(i)] for i in range(10)]
    fake.script = [json_reply({"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"a": "b"}, "values": values}]}})]
    Prometheus(fake.url).query_range("x", 0, 99, 1, max_points=10, progress=True)
    err = capsys.readouterr().err
    assert "query_range" in err and "0/10" in err and "chunk/s" in err


# -- hostile servers: credentials, redirects, deadlines, rate limits, stalls, logs -------------

def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redirect_reply(status: int, location: str) -> Reply:
    def reply(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()
    return reply


def drip_reply(body: bytes, per_byte: float) -> Reply:
    """Headers at once, then the body one byte at a time: every read is quick, the whole is not."""
    def reply(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        try:
            for i in range(len(body)):
                handler.wfile.write(body[i:i + 1])
                handler.wfile.flush()
                time.sleep(per_byte)
        except OSError:
            pass  # the client hung up, as it should
        handler.close_connection = True
    return reply


def stall_reply(body: bytes, after: int, seconds: float) -> Reply:
    def reply(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body[:after])
        handler.wfile.flush()
        time.sleep(seconds)
        handler.close_connection = True
    return reply


@pytest.fixture
def other() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    yield server
    server.close()


def test_percent_encoded_credentials_are_sent_decoded(fake):
    import base64

    Prometheus(fake.url.replace("http://", "http://al%69ce:p%40ss%3Aw%2F0rd@")).query("up")
    sent = fake.requests[-1]["headers"]["Authorization"]
    assert base64.b64decode(sent.removeprefix("Basic ")).decode() == "alice:p@ss:w/0rd"


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_to_another_origin_are_refused_and_headers_stay_home(fake, other, status):
    fake.script = [redirect_reply(status, other.url + "/api/v1/query?query=up")]
    prom = Prometheus(fake.url, headers={"X-API-Key": "k3y-value"}, retries=0)
    with pytest.raises(ResponseError) as caught:
        prom.query("up")
    assert fake.url in str(caught.value) and other.url in str(caught.value) and "another server" in str(caught.value)
    assert "k3y-value" not in str(caught.value)
    assert other.requests == []  # nothing, and no X-API-Key, went to the other origin


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_same_origin_redirects_of_a_get_are_followed(fake, status):
    fake.script = [redirect_reply(status, "/prefix/api/v1/query?query=up"), json_reply(OK)]
    frame = Prometheus(fake.url, headers={"X-API-Key": "k"}).query("up")
    assert frame["value"].tolist() == [1.0]
    assert [r["path"] for r in fake.requests] == ["/api/v1/query", "/prefix/api/v1/query"]
    assert fake.requests[1]["headers"]["X-API-Key"] == "k"


LONG_QUERY = "sum(" + " + ".join(f'up{{job="j{i}"}}' for i in range(400)) + ")"


@pytest.mark.parametrize("status", [301, 302, 303])
def test_a_posted_query_is_never_turned_into_a_get(fake, status):
    fake.script = [redirect_reply(status, "/other/api/v1/query"), json_reply(OK)]
    with pytest.raises(ResponseError, match=f"answered a POST query with HTTP {status}"):
        Prometheus(fake.url).query(LONG_QUERY)
    assert [r["method"] for r in fake.requests] == ["POST"]


@pytest.mark.parametrize("status", [307, 308])
def test_a_posted_query_is_posted_again_on_307_and_308(fake, status):
    fake.script = [redirect_reply(status, "/other/api/v1/query"), json_reply(OK)]
    Prometheus(fake.url).query(LONG_QUERY)
    second = fake.requests[1]
    assert (second["method"], second["path"]) == ("POST", "/other/api/v1/query")
    assert second["params"]["query"] == [LONG_QUERY]


def test_a_query_needing_too_many_requests_is_refused_before_sending(fake):
    began = time.monotonic()
    with pytest.raises(InvalidArgument, match=r"needs 2,86\d,\d{3} requests .* max_requests=") as caught:
        Prometheus(fake.url).query_range("up", "-365d", "now", "1ms")
    assert time.monotonic() - began < 1 and fake.requests == []
    assert "max_requests=28" in str(caught.value)  # the number to pass is in the message


def test_chunks_are_submitted_as_others_finish_and_the_first_failure_stops_them(fake, monkeypatch):
    from meshlab.prometheus import _split

    submitted = []

    class CountingPool(_split.ThreadPoolExecutor):
        def submit(self, *args, **kwargs):
            submitted.append(1)
            return super().submit(*args, **kwargs)

    monkeypatch.setattr(_split, "ThreadPoolExecutor", CountingPool)
    fake.script = [json_reply({"status": "error", "errorType": "execution", "error": "boom"}, 422)]
    with pytest.raises(QueryError, match="boom"):
        Prometheus(fake.url, max_workers=3).query_range("x", 0, 99_999, 1, max_points=10, max_requests=10_000,
                                                        progress=False)
    assert len(submitted) <= 3 + 3 and len(fake.requests) <= 6  # not 10,000 futures up front


def test_a_slow_drip_body_ends_at_the_deadline(fake):
    body = json.dumps(OK).encode()  # ~100 bytes at 0.25 s each: 25 s if nothing stops it
    fake.script = [drip_reply(body, 0.25)]
    prom = Prometheus(fake.url, timeout=2, retries=1)
    began = time.monotonic()
    with pytest.raises(PrometheusUnavailable, match=r"within this request's 4\.5 s deadline"):
        prom.query("up")
    assert time.monotonic() - began < 5.5


@pytest.mark.parametrize("retry_after", ["3600", "8"])
def test_retry_after_past_the_deadline_is_not_waited_for(fake, retry_after):
    fake.script = [json_reply({"status": "error", "errorType": "unavailable", "error": "slow down"}, 429,
                              {"Retry-After": retry_after})]
    began = time.monotonic()
    with pytest.raises(PrometheusUnavailable, match=f"rate-limiting requests .* wait {retry_after} s"):
        Prometheus(fake.url, timeout=2, retries=1).query("up")
    assert time.monotonic() - began < 5 and len(fake.requests) == 1


def test_retry_after_within_the_deadline_is_honoured(fake):
    fake.script = [json_reply({"status": "error", "errorType": "unavailable", "error": "busy"}, 429,
                              {"Retry-After": "1"}), json_reply(OK)]
    began = time.monotonic()
    assert Prometheus(fake.url, timeout=2, retries=1, backoff=0).query("up")["value"].tolist() == [1.0]
    assert 0.9 < time.monotonic() - began < 3


def test_a_final_429_says_rate_limited_not_login_page(fake):
    fake.script = [raw_reply(429, b"<html><body>Too Many Requests</body></html>", "text/html")]
    with pytest.raises(ResponseError, match="rate-limiting") as caught:
        Prometheus(fake.url, retries=0).query("up")
    assert "login page" not in str(caught.value)


def test_an_unreadable_retry_after_is_ignored_not_a_connection_error(fake):
    fake.script = [json_reply({"status": "error", "errorType": "unavailable", "error": "busy"}, 503,
                              {"Retry-After": "X"}), json_reply(OK)]
    assert Prometheus(fake.url, retries=1, backoff=0).query("up")["value"].tolist() == [1.0]


def test_a_body_stalling_after_100_bytes_reports_100_bytes(fake):
    body = json.dumps({**OK, "pad": "x" * 400}).encode()
    fake.script = [stall_reply(body, 100, 2)]
    with pytest.raises(PrometheusUnavailable, match=r"stopped sending its response after 100 bytes"):
        Prometheus(fake.url, timeout=0.5, retries=0).query("up")


def test_a_refused_loopback_connection_is_reported_at_once():
    prom = Prometheus(f"http://127.0.0.1:{closed_port()}", timeout=2)  # default retries=3, backoff=0.5
    began = time.monotonic()
    with pytest.raises(PrometheusUnavailable, match="refused"):
        prom.query("up")
    assert time.monotonic() - began < 0.5


def test_timeouts_log_no_promql_at_warning_and_retries_at_debug(fake, caplog):
    fake.script = [slow_reply(1.0)]
    prom = Prometheus(fake.url, timeout=0.2, retries=1, backoff=0)
    with caplog.at_level(logging.DEBUG), pytest.raises(PrometheusUnavailable):
        prom.query('up{team="s3cret-team"}')
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert loud == [], [r.getMessage() for r in loud]
    retries = [r for r in caplog.records if r.name == "meshlab.prometheus" and "retry 1 of 1" in r.getMessage()]
    assert len(retries) == 1 and retries[0].levelno == logging.DEBUG
    assert "s3cret-team" not in retries[0].getMessage()


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"timeout": "abc"}, "timeout"), ({"timeout": True}, "timeout"), ({"timeout": None}, "timeout"),
    ({"timeout": 0}, "timeout"), ({"timeout": float("nan")}, "timeout"), ({"timeout": -1}, "timeout"),
    ({"retries": -1}, "retries"), ({"retries": 1.5}, "retries"), ({"retries": "3"}, "retries"),
    ({"backoff": -1}, "backoff"), ({"backoff": float("inf")}, "backoff"), ({"max_workers": 0}, "max_workers"),
    ({"deadline": 0}, "deadline"), ({"deadline": "soon"}, "deadline"),
])
def test_bad_client_arguments_are_invalid_arguments_naming_them(kwargs, name):
    with pytest.raises(InvalidArgument, match=name):
        Prometheus("http://127.0.0.1:9", **kwargs)


@pytest.mark.parametrize(("timeout", "seconds"), [("5", 5.0), ("1m", 60.0), (2, 2.0), (0.5, 0.5)])
def test_timeout_takes_seconds_or_a_duration(timeout, seconds):
    assert Prometheus("http://127.0.0.1:9", timeout=timeout).timeout == seconds


def test_the_default_deadline_follows_timeout_retries_and_backoff():
    assert Prometheus("http://127.0.0.1:9", timeout=2, retries=1).deadline == 2 * 2 + 0.5
    assert Prometheus("http://127.0.0.1:9", timeout=30, retries=3, backoff=0.5).deadline == 120 + 0.5 + 1 + 2
