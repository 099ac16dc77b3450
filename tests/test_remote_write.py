"""Remote write: the numpy encoder against the protobuf library, and real servers storing what it sends."""

from __future__ import annotations

import math
import re
import struct
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshlab.errors import PrometheusError, PrometheusUnavailable
from meshlab.prometheus.local import LocalPrometheus, LocalVictoriaMetrics, free_port
from meshlab.prometheus.remote_write import RemoteWriter, encode_labels, encode_timeseries
from meshlab.sim import push_backfill
from meshlab.sim.output import PUSH_SLICE_SECONDS, _lines, mesh_chunks

from .conftest import require_binary
from .samples import stored_samples


def _write_request_class():
    """prompb's WriteRequest, declared from the field numbers in prometheus/prompb/{types,remote}.proto."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    field = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name="meshlab_test_prompb.proto", package="prometheus",
                                               syntax="proto3")

    def message(name, *fields):
        made = proto.message_type.add(name=name)
        for field_name, number, kind, repeated_of in fields:
            made.field.add(name=field_name, number=number, type=kind,
                           label=field.LABEL_REPEATED if repeated_of else field.LABEL_OPTIONAL,
                           type_name=f".prometheus.{repeated_of}" if repeated_of else None)

    message("Label", ("name", 1, field.TYPE_STRING, None), ("value", 2, field.TYPE_STRING, None))
    message("Sample", ("value", 1, field.TYPE_DOUBLE, None), ("timestamp", 2, field.TYPE_INT64, None))
    message("TimeSeries", ("labels", 1, field.TYPE_MESSAGE, "Label"), ("samples", 2, field.TYPE_MESSAGE, "Sample"))
    message("WriteRequest", ("timeseries", 1, field.TYPE_MESSAGE, "TimeSeries"))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("prometheus.WriteRequest"))


WriteRequest = _write_request_class()


def _bits(value: float) -> bytes:
    return struct.pack("<d", value)


label_names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,20}", fullmatch=True).filter(lambda n: n != "__name__")
label_values = st.text(st.characters(exclude_categories=("Cs",)), max_size=300)
label_sets = st.dictionaries(label_names, label_values, max_size=4).map(
    lambda labels: {"__name__": "m", **labels})


@st.composite
def series_batches(draw):
    times = sorted(draw(st.sets(st.integers(-(2**62), 2**62), min_size=1, max_size=12)))
    n = draw(st.integers(1, 5))
    labels = [draw(label_sets) for _ in range(n)]
    values = draw(st.lists(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=len(times),
                                    max_size=len(times)), min_size=n, max_size=n))
    return labels, np.array(values, dtype=np.float64).reshape(n, len(times)), np.array(times, dtype=np.int64)


@settings(max_examples=200, deadline=None)
@given(series_batches())
def test_the_protobuf_library_decodes_what_the_encoder_writes(batch):
    labels, values, times = batch
    messages = list(encode_timeseries([encode_labels(x) for x in labels], values, times))
    decoded = WriteRequest.FromString(b"".join(m for m, _ in messages))
    expected = [(labels[i], [(int(t), _bits(v)) for t, v in zip(times, values[i], strict=True) if not math.isnan(v)])
                for i in range(len(labels))]
    expected = [(lab, samples) for lab, samples in expected if samples]  # series without samples are left out
    assert len(decoded.timeseries) == len(expected)
    assert [count for _, count in messages] == [len(samples) for _, samples in expected]
    for series, (lab, samples) in zip(decoded.timeseries, expected, strict=True):
        wanted = sorted((k, v) for k, v in lab.items() if v != "")
        assert [(x.name, x.value) for x in series.labels] == wanted
        assert [(s.timestamp, _bits(s.value)) for s in series.samples] == samples


def test_encode_timeseries_checks_shapes():
    with pytest.raises(ValueError, match=r"values must be \[series, scrape\] = \[1, 3\], got shape \(1, 2\)"):
        list(encode_timeseries([encode_labels({"__name__": "m"})], np.zeros((1, 2)), np.arange(3)))


# -- real servers ------------------------------------------------------------------------------

T0 = 1_780_000_000_000  # ms, 2026-05-28


def _raw_series(client, selector: str, at_ms: int) -> dict[tuple, list[tuple[int, str]]]:
    """Every stored sample of ``selector`` in the hour before ``at_ms``, from the API's own JSON."""
    data = client.get("query", {"query": f"{selector}[1h]", "time": f"{at_ms / 1000:.3f}"})
    return {tuple(sorted(r["metric"].items())): [(round(float(t) * 1000), v) for t, v in r["values"]]
            for r in data["result"]}


def test_prometheus_stores_exactly_what_remote_write_sends():
    require_binary("prometheus")
    long_value = "x" * 20_000  # a length that needs a three-byte varint
    labels = [{"__name__": "rw_values", "case": "special"},
              {"__name__": "rw_values", "case": 'quote " back \\ newline \n unicode µs ✓'},
              {"__name__": "rw_values", "case": long_value, "empty": ""}]
    times = T0 + np.arange(6, dtype=np.int64) * 15_000
    values = np.array([[0.0, -0.0, 5e-324, 1.7976931348623157e308, np.inf, -np.inf],
                       [1.5, np.nan, -2.25, np.nan, 1e-300, 123456789.123456789],
                       [np.nan] * 5 + [42.0]])
    with LocalPrometheus(remote_write=True) as server, RemoteWriter(server.client) as writer:
        writer.write(encode_timeseries([encode_labels(x) for x in labels], values, times))
        writer.flush()
        assert writer.samples == int((~np.isnan(values)).sum())
        stored = _raw_series(server.client, "rw_values", int(times[-1]))
    assert len(stored) == 3
    for lab, row in zip(labels, values, strict=True):
        key = tuple(sorted((k, v) for k, v in lab.items() if k != "__name__" and v))
        key = tuple(sorted([*key, ("__name__", "rw_values")]))
        got = stored[key]
        assert [t for t, _ in got] == [int(t) for t, v in zip(times, row, strict=True) if not np.isnan(v)]
        assert [_bits(float(v)) for _, v in got] == [_bits(v) for v in row if not np.isnan(v)]


def _write_one_sample(target) -> None:
    with RemoteWriter(target) as writer:
        writer.write(encode_timeseries([encode_labels({"__name__": "m"})], np.ones((1, 1)), np.array([T0])))


def test_a_server_without_the_receiver_says_which_flag_to_set():
    require_binary("prometheus")
    with LocalPrometheus() as server:
        with pytest.raises(PrometheusError, match=r"HTTP 404\): start Prometheus with --web\.enable-remote-write"):
            _write_one_sample(server.client)
        with pytest.raises(PrometheusError, match=r"/api/v1/wrong does not accept remote write"):
            _write_one_sample(server.url + "/api/v1/wrong")


def test_a_refused_request_reports_the_servers_reason_and_what_was_kept():
    require_binary("prometheus")
    labels = [encode_labels({"__name__": "rw_order"})]
    with LocalPrometheus(remote_write=True) as server:
        writer = RemoteWriter(server.client)
        writer.write(encode_timeseries(labels, np.ones((1, 3)), T0 + np.arange(3) * 15_000))
        writer.flush()
        writer.write(encode_timeseries(labels, np.ones((1, 1)), np.array([T0 - 3 * 3600_000])))  # 3 h too old
        with pytest.raises(PrometheusError, match=r"refused a remote-write request of 1 samples \(HTTP 400\): "
                                                  r".*out of bounds.*it had acknowledged 3 samples before; "
                                                  r"Prometheus takes samples at most an hour older"):
            writer.flush()
        with pytest.raises(PrometheusError, match=r"stopped after an earlier failure: .*out of bounds"):
            writer.write(encode_timeseries(labels, np.ones((1, 1)), np.array([T0 + 60_000])))
        writer.close()  # the failure was reported once; closing does not raise it again
        assert stored_samples(server.client, (T0 + 30_000) / 1000, "1h") == 3


def test_an_unreachable_server_is_reported_without_its_credentials():
    url = f"http://meshlab:s3cret-token@127.0.0.1:{free_port()}"
    with pytest.raises(PrometheusUnavailable, match="could not connect") as raised:
        _write_one_sample(url)
    assert "s3cret" not in str(raised.value) and "s3cret" not in repr(raised.value)


def _rendered_samples(traffic, meshes) -> int:
    """Samples the simulator renders for a run (not NaN), counted from its blocks."""
    return sum(int((~np.isnan(_lines(block)[1])).sum()) for _, blocks in mesh_chunks(traffic, meshes)
               for block in blocks)


@pytest.fixture(scope="module")
def three_hours():
    """Three hours of the incidents scenario: long enough to break Prometheus' one-hour window if slicing fails."""
    from meshlab.sim import load_scenario, simulate

    from .test_sim import INCIDENTS

    return simulate(load_scenario(INCIDENTS), hours=3)


def test_a_long_run_in_many_small_concurrent_requests_is_stored_whole(three_hours):
    require_binary("prometheus")
    expected = _rendered_samples(three_hours, ["linkerd", "istio"])
    with LocalPrometheus(remote_write=True) as server:
        pushed = push_backfill(three_hours, ["linkerd", "istio"], server.client, concurrency=3,
                               max_request_bytes=256 << 10)
        assert pushed == expected
        assert stored_samples(server.client, three_hours.times_ms[-1] / 1000, "4h") == expected


class _Receiver:
    """A local remote-write receiver that decodes each request and records when it came and went.

    It speaks the protocol (snappy, protobuf) and answers like Prometheus: 204, or 400 with
    a message for the request that holds ``refuse_at`` (a timestamp).
    """

    def __init__(self, refuse_at: int | None = None, unavailable_first: int = 0):
        import http.server
        import random
        import threading
        import time

        import cramjam

        self.log: list[dict] = []
        self.unavailable_left = unavailable_first
        lock = threading.Lock()
        clock = iter(range(10**9))
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with lock:
                    arrived = next(clock)
                    receiver.unavailable_left -= 1
                    if receiver.unavailable_left >= 0:
                        self.send_response(503)  # as a restarting server or a load balancer would
                        self.end_headers()
                        return
                request = WriteRequest.FromString(bytes(cramjam.snappy.decompress_raw(body)))
                stamps = [s.timestamp for ts in request.timeseries for s in ts.samples]
                time.sleep(random.uniform(0, 0.02))  # let requests overtake each other if the client allows it
                refused = refuse_at is not None and min(stamps) <= refuse_at <= max(stamps)
                with lock:
                    receiver.log.append({"arrived": arrived, "done": next(clock), "first": min(stamps),
                                         "last": max(stamps), "samples": len(stamps), "refused": refused})
                self.send_response(400 if refused else 204)
                self.end_headers()
                if refused:
                    self.wfile.write(b"out of bounds")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v1/write"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _slice_of(stamp_ms: int, traffic) -> int:
    return int((stamp_ms - traffic.times_ms[0]) // (PUSH_SLICE_SECONDS * 1000))


def test_no_request_of_a_later_slice_starts_before_the_earlier_slices_are_stored(three_hours):
    """A local HTTP receiver speaking the real protocol (Prometheus cannot be slowed down on demand)."""
    receiver = _Receiver()
    try:
        pushed = push_backfill(three_hours, ["linkerd"], receiver.url, concurrency=4, max_request_bytes=64 << 10)
    finally:
        receiver.close()
    log = receiver.log
    assert sum(r["samples"] for r in log) == pushed == _rendered_samples(three_hours, ["linkerd"])
    slices = [_slice_of(r["first"], three_hours) for r in log]
    assert slices == [_slice_of(r["last"], three_hours) for r in log]  # a request never spans two slices
    every_slice = list(range(_slice_of(three_hours.times_ms[-1], three_hours) + 1))
    assert sorted(set(slices)) == every_slice and len(log) > 2 * len(every_slice)  # several requests per slice
    for request, k in zip(log, slices, strict=True):
        earlier = [r for r, j in zip(log, slices, strict=True) if j < k]
        assert all(r["done"] < request["arrived"] for r in earlier)


def test_after_a_refusal_no_later_slice_is_sent(three_hours):
    refuse_at = int(three_hours.times_ms[0]) + 2 * PUSH_SLICE_SECONDS * 1000 + 15_000  # early in slice 2
    receiver = _Receiver(refuse_at=refuse_at)
    try:
        with pytest.raises(PrometheusError, match=r"HTTP 400\): out of bounds; it had acknowledged") as raised:
            push_backfill(three_hours, ["linkerd"], receiver.url, concurrency=4, max_request_bytes=64 << 10)
    finally:
        receiver.close()
    assert "not sent" not in str(raised.value)
    assert [r for r in receiver.log if r["refused"]]
    assert max(_slice_of(r["first"], three_hours) for r in receiver.log) == 2


def test_a_remote_write_url_gets_the_clients_retries():
    receiver = _Receiver(unavailable_first=2)
    try:
        _write_one_sample(receiver.url)
    finally:
        receiver.close()
    assert receiver.unavailable_left == -1 and [r["samples"] for r in receiver.log] == [1]


@pytest.mark.parametrize("url", ["http://meshlab:s3c/ret@127.0.0.1:9/api/v1/write",
                                 "http://meshlab:s3c#ret@127.0.0.1:9/api/v1/write",
                                 "http://meshlab:123/ret@127.0.0.1:9/api/v1/write"])
def test_a_password_with_unencoded_delimiters_is_refused_unseen(url):
    with pytest.raises(ValueError, match=r"percent-encode") as raised:
        RemoteWriter(url)
    assert "s3c" not in str(raised.value) and "ret" not in str(raised.value) and "123" not in str(raised.value)


def test_push_backfill_stores_the_same_samples_as_promtool(sim_run, sim_files):
    traffic, promtool_client, written = sim_run
    at_ms = int(traffic.times_ms[-1])
    with LocalPrometheus(remote_write=True) as server:
        pushed = push_backfill(traffic, ("linkerd", "istio", "consul"), server.client)
        assert pushed == written
        assert stored_samples(server.client, at_ms / 1000, "2h") == written
        names = promtool_client.get("label/__name__/values")
        assert server.client.get("label/__name__/values") == names
        for name in names:
            assert _raw_series(server.client, name, at_ms) == _raw_series(promtool_client, name, at_ms), name


def test_push_backfill_into_victoria_metrics(sim_run):
    require_binary("victoria-metrics", "victoria-metrics-prod")
    traffic, promtool_client, written = sim_run
    at = traffic.times_ms[-1] / 1000
    with LocalVictoriaMetrics() as server:
        assert push_backfill(traffic, ("linkerd", "istio", "consul"), server.url + "/api/v1/write") == written
        server.force_flush()
        assert server.client.query('sum(count_over_time({__name__=~".+"}[2h]))', time=at)["value"].item() == written
        for promql in ('sum by (deployment) (response_total{direction="inbound"})',
                       'sum by (destination_workload) (istio_requests_total{reporter="destination"})'):
            got = server.client.query(promql, time=at).drop(columns="timestamp")
            want = promtool_client.query(promql, time=at).drop(columns="timestamp")
            assert got.sort_values(got.columns[-1]).to_numpy().tolist() == \
                want.sort_values(want.columns[-1]).to_numpy().tolist()


def test_meshlab_sim_push_loads_a_server_and_hides_credentials(capsys):
    require_binary("prometheus")
    from meshlab.cli import main
    from meshlab.sim import load_scenario, simulate

    from .test_sim import INCIDENTS

    end = simulate(load_scenario(INCIDENTS), hours=0.25).times_ms[-1] / 1000

    with LocalPrometheus(remote_write=True) as server:
        url = server.url.replace("http://", "http://meshlab:s3cret@") + "/api/v1/write"
        assert main(["sim", "push", url, "--scenario", str(INCIDENTS), "--meshes", "linkerd", "--hours", "0.25"]) == 0
        out = capsys.readouterr().out
        pushed = int(out.split()[1].replace(",", ""))
        assert pushed > 0 and stored_samples(server.client, end, "1h") == pushed
    assert "s3cret" not in out and "***@127.0.0.1" in out


def _push(url, *extra):
    from meshlab.cli import main

    from .test_sim import INCIDENTS

    return main(["sim", "push", url, "--scenario", str(INCIDENTS), "--meshes", "linkerd", "--hours", "0.25", *extra])


def test_sim_push_reports_samples_victoria_metrics_acknowledged_and_dropped(capsys):
    require_binary("victoria-metrics", "victoria-metrics-prod")
    with LocalVictoriaMetrics(extra_args=["-retentionPeriod=1d"]) as server:
        assert _push(server.url + "/api/v1/write") == 2  # the scenario's own date, 2024: past the retention
        err = capsys.readouterr().err
        assert re.search(r"acknowledged [\d,]+ samples .* but holds only 0 of them: VictoriaMetrics drops samples "
                         r"older than its -retentionPeriod", err), err
        assert "pushed" not in err
        assert _push(server.url + "/api/v1/write", "--end", "now") == 0  # a recent run is kept whole
        out = capsys.readouterr().out
        pushed = int(out.split()[1].replace(",", ""))
        server.force_flush()
        now = time.time()
        held = server.client.query('sum(count_over_time({__name__=~".+"}[1h]))', time=now)["value"].item()
        assert pushed > 0 and held == pushed and "all of them are stored" in out


def test_sim_push_end_now_fits_a_server_with_newer_data_and_the_error_says_how(capsys, tmp_path):
    require_binary("prometheus")
    with LocalPrometheus(remote_write=True) as server:
        url = server.url + "/api/v1/write"
        assert _push(url, "--end", "now") == 0  # the server now holds data up to the present
        pushed = int(capsys.readouterr().out.split()[1].replace(",", ""))
        assert stored_samples(server.client, time.time(), "1h") == pushed
        assert _push(url) == 2  # the scenario's own date: far behind the newest sample
        err = capsys.readouterr().err
        assert "out of bounds" in err and "--end now" in err and "out_of_order_time_window" in err
    config = "storage:\n  tsdb:\n    out_of_order_time_window: 5000d\nscrape_configs: []\n"
    with LocalPrometheus(remote_write=True, config=config) as server:  # the error's advice works
        url = server.url + "/api/v1/write"
        assert _push(url, "--end", "now") == 0 and _push(url) == 0
        assert "all of them are stored" in capsys.readouterr().out
