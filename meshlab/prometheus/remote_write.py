"""Push samples into Prometheus, VictoriaMetrics, Mimir or Thanos with remote write (1.0).

A remote-write request is a protobuf ``WriteRequest`` of ``TimeSeries`` (labels sorted by
name, then samples oldest first), compressed with snappy's block format and POSTed to
``/api/v1/write`` (Prometheus needs ``--web.enable-remote-write-receiver``; VictoriaMetrics
accepts it by default).

The protobuf encoding is written here with numpy rather than through the protobuf library:
the message has four fields that matter, and building one Python object per sample costs
more than the server takes to store it (a day of 30 workloads is 25 M samples). Each sample
is a fixed pattern of tag bytes, an 8-byte double and a varint timestamp, so whole arrays
are encoded at once.

References: the remote-write 1.0 specification (prometheus.io/docs/specs/remote_write_spec)
and ``prompb/types.proto`` and ``prompb/remote.proto`` in prometheus/prometheus.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor

import numpy as np

from ..errors import InvalidArgument, PrometheusError
from .client import Prometheus

__all__ = ["RemoteWriter", "count_stored", "encode_labels", "encode_timeseries", "query_url"]

#: Uncompressed bytes per request; Prometheus' own sender batches a few MB at a time.
MAX_REQUEST_BYTES = 4 << 20

_HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}

# Field tags: (field number << 3) | wire type; 2 is length-delimited, 1 is 64-bit, 0 is varint.
_TIMESERIES = b"\x0a"      # WriteRequest.timeseries = 1
_LABEL = b"\x0a"           # TimeSeries.labels = 1; Label.name = 1
_LABEL_VALUE = b"\x12"     # Label.value = 2
_SAMPLE = 0x12             # TimeSeries.samples = 2
_SAMPLE_VALUE = 0x09       # Sample.value = 1 (double)
_SAMPLE_TIMESTAMP = 0x10   # Sample.timestamp = 2 (int64 varint)


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _varints(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Varint bytes ``[n, 10]`` and lengths of int64s (negative ones take ten bytes, as protobuf's do)."""
    rest = np.asarray(values, dtype=np.int64).view(np.uint64).copy()
    out = np.zeros((len(rest), 10), dtype=np.uint8)
    lengths = np.ones(len(rest), dtype=np.int64)
    for k in range(10):
        low = (rest & np.uint64(0x7F)).astype(np.uint8)
        rest >>= np.uint64(7)
        more = rest != 0
        out[:, k] = low | (more.astype(np.uint8) << 7)
        if not more.any():
            break
        lengths += more
    return out, lengths


def encode_labels(labels: Mapping[str, str]) -> bytes:
    """The ``labels`` field of a ``TimeSeries``, sorted by name as the protocol requires.

    ``labels`` must include ``__name__``. Empty values are left out: to Prometheus an
    empty label and a missing one are the same.
    """
    out = bytearray()
    for name, value in sorted(labels.items()):
        if value == "":
            continue
        n, v = name.encode(), value.encode()
        label = _LABEL + _varint(len(n)) + n + _LABEL_VALUE + _varint(len(v)) + v
        out += _LABEL + _varint(len(label)) + label
    return bytes(out)


def encode_timeseries(labels: Sequence[bytes], values: np.ndarray, times_ms: np.ndarray) -> Iterator[tuple[bytes, int]]:
    """Encode many series over the same scrape times as ``TimeSeries`` messages.

    Parameters
    ----------
    labels : sequence of bytes
        Each series' :func:`encode_labels`.
    values : numpy.ndarray
        ``[series, scrape]`` float64 values; NaN means no sample (as in meshlab's OpenMetrics
        writer), so series without any sample are skipped.
    times_ms : numpy.ndarray
        The scrape times in milliseconds since the epoch, ascending.

    Yields
    ------
    (bytes, int)
        One encoded ``TimeSeries`` (with its ``WriteRequest`` field tag, so messages simply
        concatenate into a request) and its number of samples.
    """
    values = np.asarray(values, dtype="<f8")
    if values.ndim != 2 or values.shape[1] != len(times_ms) or values.shape[0] != len(labels):
        raise InvalidArgument(f"values must be [series, scrape] = [{len(labels)}, {len(times_ms)}], "
                              f"got shape {values.shape}")
    stamp_bytes, stamp_lengths = _varints(times_ms)
    record_lengths = 12 + stamp_lengths  # tag, length, value tag, 8 value bytes, timestamp tag, varint
    width = int(record_lengths.max(initial=12))
    template = np.zeros((len(times_ms), width), dtype=np.uint8)
    template[:, 0] = _SAMPLE
    template[:, 1] = record_lengths - 2
    template[:, 2] = _SAMPLE_VALUE
    template[:, 11] = _SAMPLE_TIMESTAMP
    template[:, 12:] = stamp_bytes[:, : width - 12]
    used = np.arange(width)[None, :] < record_lengths[:, None]
    present = ~np.isnan(values)
    records = np.broadcast_to(template, (*values.shape, width)).copy()
    records[:, :, 3:11] = np.ascontiguousarray(values).view(np.uint8).reshape(*values.shape, 8)
    samples = records[present[:, :, None] & used[None, :, :]].tobytes()  # row-major: series by series
    series_bytes = (present * record_lengths[None, :]).sum(axis=1)
    counts = present.sum(axis=1)
    offset = 0
    for label_bytes, size, count in zip(labels, series_bytes.tolist(), counts.tolist(), strict=True):
        if not count:
            continue
        yield (_TIMESERIES + _varint(len(label_bytes) + size) + label_bytes + samples[offset:offset + size],
               count)
        offset += size


class _NotSent(Exception):
    """A request left unsent because an earlier one failed."""


class RemoteWriter:
    """Send ``TimeSeries`` messages to a remote-write endpoint in batched, compressed requests.

    Messages are buffered into requests of about ``max_request_bytes`` and sent by
    ``concurrency`` threads. Prometheus (with its default 2-hour blocks) refuses samples
    more than an hour older than the newest it holds, so callers that write history in
    time order call :meth:`barrier` between time slices: later requests wait until the
    earlier ones are stored, while the caller goes on encoding. :meth:`flush` waits for
    everything.

    Parameters
    ----------
    target : Prometheus or str
        A :class:`~meshlab.prometheus.Prometheus` client, whose ``/api/v1/write`` is used
        with its session, auth, headers, TLS settings and retries; or the remote-write URL
        itself, as Prometheus' ``remote_write`` config takes it:
        ``http://host:9090/api/v1/write`` (Prometheus, VictoriaMetrics), ``.../api/v1/push``
        (Mimir, Cortex), ``.../api/v1/receive`` (Thanos Receive). Credentials in the URL
        are used and never shown.
    max_request_bytes : int
        Uncompressed bytes per request.
    concurrency : int
        Requests in flight at once.

    Attributes
    ----------
    samples : int
        Samples the server acknowledged. A server may acknowledge and still drop samples
        (VictoriaMetrics drops those older than its retention period).

    Notes
    -----
    When the server refuses a request, :meth:`barrier` or :meth:`flush` raises its
    message once; requests of later slices are never sent, and the writer refuses more
    work. Requests of the same slice already in flight may still be stored (and counted).
    """

    def __init__(self, target: Prometheus | str, *, max_request_bytes: int = MAX_REQUEST_BYTES,
                 concurrency: int = 2):
        import cramjam  # only writers need snappy

        if max_request_bytes < 1 or concurrency < 1:
            raise InvalidArgument("max_request_bytes and concurrency must be positive")
        self._compress = cramjam.snappy.compress_raw
        self._owns_client = not isinstance(target, Prometheus)
        if isinstance(target, Prometheus):
            self.client, self._path = target, "/api/v1/write"
        else:
            self.client, self._path = Prometheus(target), ""
        self.url = self.client.url + self._path
        self.max_request_bytes = int(max_request_bytes)
        self.samples = 0
        self._buffer: list[bytes] = []
        self._buffered_bytes = 0
        self._buffered_samples = 0
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="meshlab-remote-write")
        self._pending: list[Future[None]] = []
        self._fence: list[Future[None]] = []      # what requests written now must wait for
        self._previous_fence: list[Future[None]] = []
        self._failure: BaseException | None = None
        self._lock = threading.Lock()

    def write(self, timeseries: Iterable[tuple[bytes, int]]) -> None:
        """Queue encoded ``TimeSeries`` (as :func:`encode_timeseries` yields them)."""
        self._check_usable()
        for message, count in timeseries:
            self._buffer.append(message)
            self._buffered_bytes += len(message)
            self._buffered_samples += count
            if self._buffered_bytes >= self.max_request_bytes:
                self._send_buffer()

    def barrier(self) -> None:
        """Make requests written from now on wait until those written so far are stored.

        Returns at once, unless two barriers' worth of requests are still unsent: then it
        waits for the older one, so encoding never runs far ahead of the server.
        """
        self._check_usable()
        self._send_buffer()
        self._wait(self._previous_fence)
        self._previous_fence, self._fence = self._fence, list(self._pending)

    def flush(self) -> None:
        """Send what is buffered and wait until the server has acknowledged every request.

        Raises
        ------
        PrometheusError
            The server's own message for the first request it refused, with how many
            samples it had acknowledged by then.
        """
        self._check_usable()
        self._send_buffer()
        self._wait(self._pending)
        self._pending, self._fence, self._previous_fence = [], [], []

    def close(self) -> None:
        """Flush (unless a request already failed), then stop the sending threads."""
        try:
            if self._failure is None:
                self.flush()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
            if self._owns_client:
                self.client.close()

    def __enter__(self) -> RemoteWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None and self._failure is None:
            self._failure = PrometheusError("the writer was abandoned by an exception")
        self.close()

    def _check_usable(self) -> None:
        if self._failure is not None:
            raise PrometheusError(f"this remote writer stopped after an earlier failure: {self._failure}")

    def _wait(self, futures: list[Future[None]]) -> None:
        """Wait for ``futures``; on a failure cancel everything unsent and raise the first real error."""
        failure: BaseException | None = None
        for future in futures:
            try:
                future.result()
            except BaseException as exc:  # a server's refusal, a broken connection, a skipped request
                if failure is None or isinstance(failure, (_NotSent, CancelledError)):
                    failure = exc
        if failure is None:
            return
        for future in self._pending:
            future.cancel()
        self._pending, self._fence, self._previous_fence = [], [], []
        if isinstance(failure, (_NotSent, CancelledError)):
            failure = PrometheusError(f"requests to {self.url} were not sent after an earlier failure")
        self._failure = failure
        raise failure

    def _send_buffer(self) -> None:
        if not self._buffer:
            return
        body = b"".join(self._buffer)
        count = self._buffered_samples
        self._buffer, self._buffered_bytes, self._buffered_samples = [], 0, 0
        # forget requests already stored; keep the failed ones to report
        self._pending = [f for f in self._pending if not f.done() or f.cancelled() or f.exception() is not None]
        self._pending.append(self._pool.submit(self._post, body, count, self._fence))

    def _post(self, body: bytes, count: int, after: list[Future[None]]) -> None:
        for earlier in after:
            try:
                earlier.result()
            except BaseException:
                raise _NotSent() from None  # the earlier request's own error is reported, once
        status, text = self.client.post_bytes(self._path, bytes(self._compress(body)), _HEADERS)
        if status == 404:
            raise PrometheusError(
                f"{self.url} does not accept remote write (HTTP 404): start Prometheus with "
                "--web.enable-remote-write-receiver and write to /api/v1/write (VictoriaMetrics takes "
                "/api/v1/write too, Mimir /api/v1/push, Thanos Receive /api/v1/receive)")
        if status >= 300:
            with self._lock:
                accepted = self.samples
            hint = ""
            if "out of bounds" in text or "too old" in text or "out of order" in text:
                hint = ("; Prometheus takes samples at most an hour older than the newest it holds, so history "
                        "must go oldest first into a server that holds nothing newer (a fresh one). Into a "
                        "server that is scraping, only the last hour before its present fits (`meshlab sim push "
                        "--end now --hours 1`); for more, let it take older samples with `storage: {tsdb: "
                        "{out_of_order_time_window: 30d}}` in prometheus.yml (Prometheus 2.39 or later)")
            raise PrometheusError(
                f"{self.url} refused a remote-write request of {count:,} samples (HTTP {status}): "
                f"{text.strip()[:300]}; it had acknowledged {accepted:,} samples before{hint}")
        with self._lock:
            self.samples += count


#: Remote-write paths and where the same server answers PromQL, relative to the URL's base.
_QUERY_PATHS = {"/api/v1/write": "", "/api/v1/push": "/prometheus"}


def query_url(write_url: str) -> str | None:
    """Where the server behind a remote-write URL answers queries, or None when it is not known.

    ``http://h:9090/api/v1/write`` (Prometheus, VictoriaMetrics) gives ``http://h:9090``;
    ``http://h:9009/api/v1/push`` (Mimir, Cortex) gives ``http://h:9009/prometheus``. Thanos
    Receive has no query API of its own (a Querier in front of it does).
    """
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(write_url)
    for suffix, replacement in _QUERY_PATHS.items():
        if parts.path.rstrip("/").endswith(suffix):
            path = parts.path.rstrip("/")[: -len(suffix)] + replacement
            return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))
    return None


def count_stored(client: Prometheus, names: Iterable[str], start_ms: int, end_ms: int) -> int:
    """How many samples of the metrics ``names`` the server holds from ``start_ms`` to ``end_ms`` (inclusive).

    One query, ``sum(count_over_time({__name__=~"a|b"}[...]))`` at ``end_ms``, which
    VictoriaMetrics answers; Prometheus refuses it when two metrics share their other
    labels (``count_over_time`` drops the name), and then gets one query per metric.
    ``latency_offset=0s`` and ``nocache=1`` make VictoriaMetrics count its newest samples
    too; Prometheus ignores them.
    """
    import re

    from ..errors import QueryError

    names = sorted(set(names))
    window = f"{end_ms - start_ms + 1}ms"  # (end - window, end] holds start

    def count(selector: str) -> int:
        params = {"query": f"sum(count_over_time({selector}[{window}]))", "time": f"{end_ms / 1000:.3f}",
                  "latency_offset": "0s", "nocache": "1"}
        result = client.get("query", params).get("result") or []
        return int(float(result[0]["value"][1])) if result else 0

    try:
        return count('{__name__=~"' + "|".join(re.escape(n) for n in names) + '"}')
    except QueryError as exc:
        if "same labelset" not in str(exc):
            raise
    return sum(count(name) for name in names)
