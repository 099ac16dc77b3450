"""``meshlab.Prometheus``: query any Prometheus-compatible HTTP API into tidy frames.

The HTTP layer is a ``requests.Session`` with a retrying ``HTTPAdapter`` mounted on
the server's URL. That adapter is the transport seam: tests and unusual deployments
can mount their own adapter on ``client.session`` without touching the rest.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import ipaddress
import itertools
import logging
import math
import re
import socket
import threading
import time as _time
import warnings
from collections.abc import Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any
from urllib.parse import unquote, urlencode, urljoin, urlsplit, urlunsplit

import pandas as pd
import requests
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError, ReadTimeoutError, SSLError
from urllib3.util.retry import Retry

from .. import schema
from ..errors import InvalidArgument, PrometheusUnavailable, PrometheusWarning, QueryError, ResponseError
from ..timeutil import (
    Duration,
    TimeLike,
    format_duration,
    format_unix_ms,
    to_millis,
    to_timedelta,
    to_timestamp,
    utc_now,
)
from .parse import Parsed, decode_api, frame_from_block, merge_blocks, parse_response

__all__ = ["MAX_POINTS_PER_SERIES", "MAX_REQUESTS", "Prometheus"]

log = logging.getLogger("meshlab.prometheus")

#: Prometheus refuses range queries of more than 11,000 points per series.
MAX_POINTS_PER_SERIES = 11_000
#: query_range refuses (up front) a query that would need more requests than this.
MAX_REQUESTS = 1000
#: How many redirects within one server a request follows.
MAX_REDIRECTS = 5
#: Above this many bytes of form data, queries are sent with POST instead of GET.
POST_ABOVE_BYTES = 4096
#: Statuses retried with backoff: rate limiting and server-side failures.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
_INCOMPLETE = re.compile(r"IncompleteRead\((\d+) bytes read, (\d+) more expected")
_JSON_START = re.compile(rb"\s*\{")
_ERRNO = re.compile(r"\[Errno -?\d+\][^'\")]*")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: How servers say a query is too large for them, where a shorter range may pass: Prometheus'
#: --query.max-samples, VictoriaMetrics' -search.maxSamplesPerQuery, -search.maxSamplesPerSeries,
#: -search.maxPointsPerTimeseries and -search.maxMemoryPerQuery, Prometheus' (and Thanos', Cortex',
#: Mimir's) points-per-series and sample/chunk limits.
_TOO_LARGE = re.compile(
    r"would load too many samples|cannot select more than -search\.maxSamplesPerQuery"
    r"|cannot process more than \d+ samples per series|cannot exceed -search\.maxPointsPerTimeseries"
    r"|-search\.maxMemoryPerQuery|exceeded maximum resolution of [\d,]+ points per timeseries"
    r"|exceeded the maximum number of (?:samples|chunks)|the query hit the max number of chunks"
    r"|exceeded (?:the )?sample limit",
    re.IGNORECASE,
)
_active = threading.local()


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Prometheus:
    """A client for the Prometheus HTTP API (also VictoriaMetrics, Thanos, Mimir, Cortex).

    Parameters
    ----------
    url : str or prometheus_pandas.query.Prometheus
        The server's base URL, e.g. ``"http://127.0.0.1:9090"``, or ``".../prometheus"``
        behind a path prefix. Credentials in the URL (``https://user:pass@host``, percent-encoded
        where needed: ``p%40ss`` is sent as ``p@ss``) are moved to ``auth`` (unless ``headers``
        carries an ``Authorization``, which then wins) and never shown. An existing
        prometheus-pandas client is reused: its session (which gets meshlab's adapter for this
        URL, and is left open by :meth:`close`) and URL.
    headers : mapping, optional
        Extra headers sent with every request, e.g. ``{"Authorization": "Bearer ..."}``.
    auth : tuple or requests.auth.AuthBase, optional
        ``(user, password)`` for basic auth, or any requests auth object.
    verify : bool or str
        TLS verification: True, False, or a CA bundle path.
    cert : str or tuple, optional
        A client certificate, as requests takes it.
    timeout : float or duration
        Socket timeout in seconds (or a duration such as ``"30s"``), also sent to the server as
        the query's evaluation timeout.
    retries : int
        How many times to retry connection errors, timeouts, 429 and 5xx responses, with
        exponential backoff (honouring ``Retry-After`` within the deadline). A refused
        connection to a loopback address is not retried: nothing listens there.
    backoff : float
        The backoff factor in seconds: the n-th retry waits ``backoff * 2 ** n`` (n from 0).
    deadline : float or duration, optional
        The most one request may take in all, retries, waits and a slowly sent body included;
        past it the request fails with :class:`~meshlab.errors.PrometheusUnavailable`. By
        default ``timeout * (retries + 1)`` plus the backoff waits (4.5 s for ``timeout=2,
        retries=1``). Each chunk of a long ``query_range`` is one request.
    compress : bool, optional
        Ask for gzip. By default it is off for loopback servers, where compressing costs the
        server more time than it saves, and on for everything else.
    max_workers : int
        How many chunks of a long range query are fetched at once.
    params : mapping, optional
        Extra query parameters sent with every query, e.g. ``{"nocache": "1"}`` for
        VictoriaMetrics or ``{"dedup": "true"}`` for Thanos.

    Examples
    --------
    >>> prom = Prometheus("http://127.0.0.1:9090")                    # doctest: +SKIP
    >>> prom.query_range('rate(response_total[1m])', "-1h", "now", "30s")  # doctest: +SKIP
    """

    def __init__(
        self,
        url: str | Any,
        *,
        headers: Mapping[str, str] | None = None,
        auth: Any = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        timeout: float | str = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        deadline: float | str | None = None,
        compress: bool | None = None,
        max_workers: int = 4,
        params: Mapping[str, str] | None = None,
    ):
        if not isinstance(url, str):
            if not (hasattr(url, "api_url") and hasattr(url, "http")):
                raise InvalidArgument(
                    "url must be a URL string or a prometheus_pandas.query.Prometheus client, "
                    f"got {type(url).__name__}"
                )
            session: requests.Session = url.http
            url = str(url.api_url)
            self._owns_session = False
        else:
            session = requests.Session()
            self._owns_session = True
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidArgument(f"url must look like http://host:9090, got {redact_url(url)!r}")
        try:
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            raise InvalidArgument(f"url has no valid port: {redact_url(url)!r}; if a password is in it, "
                                  "percent-encode its '/', '?', '#' and '@' (urllib.parse.quote)") from None
        if "@" in parts.path + parts.query + parts.fragment:
            raise InvalidArgument(f"url has an '@' after the host: {redact_url(url)!r}; if a password is in it, "
                                  "percent-encode its '/', '?', '#' and '@' (urllib.parse.quote)")
        if parts.username is not None:
            if auth is None and not any(k.lower() == "authorization" for k in headers or {}):
                # The URL carries them percent-encoded; the server must get the real ones.
                auth = (unquote(parts.username), unquote(parts.password or ""))
            parts = parts._replace(netloc=parts.netloc.rpartition("@")[2])
        self.timeout = _seconds(timeout, "timeout")
        self.retries = _count(retries, "retries", 0)
        self.backoff = _seconds(backoff, "backoff", zero_ok=True)
        self.max_workers = _count(max_workers, "max_workers", 1)
        self.deadline = (
            self.timeout * (self.retries + 1) + sum(self.backoff * 2**n for n in range(self.retries))
            if deadline is None else _seconds(deadline, "deadline")
        )
        self.url = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
        self.compress = not _is_loopback(parts.hostname) if compress is None else bool(compress)
        self.params = dict(params or {})
        self.session = session
        self._auth = auth
        self._headers = dict(headers or {})
        self._verify = verify
        self._cert = cert
        # Retries, redirects and the deadline are meshlab's own (see _exchange): urllib3 retrying
        # too would multiply the waits and log each retry's URL, PromQL included, at WARNING.
        retry = Retry(total=0, redirect=False, raise_on_status=False)
        adapter = _DeadlineAdapter(max_retries=retry, pool_connections=1, pool_maxsize=max(self.max_workers, 10))
        self.session.mount(self.url + "/", adapter)
        self.session.mount(self.url, adapter)  # the URL itself, e.g. a remote-write endpoint

    def __repr__(self) -> str:
        extras = []
        if self._auth is not None:
            extras.append("auth=***")
        if self._headers:
            extras.append("headers={" + ", ".join(f"{k!r}: '***'" for k in self._headers) + "}")
        return f"Prometheus({self.url!r}{''.join(', ' + e for e in extras)})"

    def __enter__(self) -> Prometheus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP session and its pooled connections (not a borrowed session)."""
        if self._owns_session:
            self.session.close()

    # -- queries -------------------------------------------------------------------------

    def query(self, promql: str, time: TimeLike | None = None) -> pd.DataFrame:
        """Evaluate an instant query.

        Parameters
        ----------
        promql : str
            The expression.
        time : time-like, optional
            The evaluation time (see :mod:`meshlab.timeutil`); the server's "now" by default.

        Returns
        -------
        pandas.DataFrame
            A ``query`` frame (``timestamp``, ``value``, then one categorical column per
            label). A scalar result is one row with no label columns; a string result is a
            ``string`` frame. An empty result is an empty frame with the right columns.
        """
        params = {"query": _check_promql(promql)}
        if time is not None:
            params["time"] = format_unix_ms(to_millis(to_timestamp(time, name="time")))
        parsed = self._fetch("query", params, promql)
        self._warn(parsed.warnings, parsed.infos)
        if parsed.text is not None:
            ts_ms, text = parsed.text
            frame = pd.DataFrame({
                "timestamp": pd.DatetimeIndex([pd.Timestamp(ts_ms, unit="ms", tz="UTC")]).as_unit("ns"),
                "value": pd.array([text], dtype="string"),
            })
            return schema.validate(frame, "string")
        return frame_from_block(parsed.block)

    def query_range(
        self,
        promql: str,
        start: TimeLike,
        end: TimeLike,
        step: Duration,
        *,
        max_points: int = MAX_POINTS_PER_SERIES,
        max_requests: int = MAX_REQUESTS,
        progress: bool | None = None,
    ) -> pd.DataFrame:
        """Evaluate a range query, splitting long ranges into chunks the server accepts.

        Parameters
        ----------
        promql : str
            The expression.
        start, end : time-like
            The range (see :mod:`meshlab.timeutil`); relative forms share one "now".
        step : duration
            The resolution, e.g. ``"30s"``.
        max_points : int
            The most points per series one request may ask for. Longer ranges are split
            into chunks aligned on ``start + k * step``, fetched concurrently and merged, so
            the result is exactly what one unlimited query would return. A chunk the server
            refuses for its size (too many samples, points or memory) is split in halves and
            retried, and later chunks start at the size that passed; a
            :class:`~meshlab.errors.PrometheusWarning` says what was split.
        max_requests : int
            The most requests (chunks) the query may need; a query needing more is refused
            before anything is sent (one second steps over a year would need 2,867). Chunks are
            sent ``max_workers`` at a time and the first failure stops the rest. Requests added
            by splitting count too: past the limit, the server's refusal is a ``QueryError``.
        progress : bool, optional
            Show a progress bar over chunks: None shows one only if fetching takes over two
            seconds; True always; False never.

        Returns
        -------
        pandas.DataFrame
            A ``query`` frame, one row per point, series after series.
        """
        _check_promql(promql)
        now = utc_now()
        start_ms = to_millis(to_timestamp(start, now=now, name="start"))
        end_ms = to_millis(to_timestamp(end, now=now, name="end"))
        step_ms = to_millis(to_timedelta(step, name="step"))
        if step_ms <= 0:
            raise InvalidArgument(f"step must be at least 1ms, got {step!r}")
        if end_ms < start_ms:
            raise InvalidArgument(
                f"end ({format_unix_ms(end_ms)}) is before start ({format_unix_ms(start_ms)}); swap them"
            )
        max_points = _count(max_points, "max_points", 2)
        max_requests = _count(max_requests, "max_requests", 1)
        points = (end_ms - start_ms) // step_ms + 1
        needed = -(-points // max_points)
        if needed > max_requests:
            raise InvalidArgument(
                f"this query_range needs {needed:,} requests ({points:,} points per series at step "
                f"{format_duration(pd.Timedelta(milliseconds=step_ms))}, at most {max_points:,} per request), "
                f"more than max_requests={max_requests:,}; use a coarser step= or a shorter range, or pass "
                f"max_requests={needed} if you mean it"
            )
        step_text = format_unix_ms(step_ms)
        splitter = _Splitter(self, promql, start_ms, step_ms, step_text, max_points, max_requests, needed)
        windows = iter([(first, min(max_points, points - first)) for first in range(0, points, max_points)])
        pieces = self._fetch_all(splitter, windows, needed, progress)
        results = [parsed for piece in pieces for parsed in piece]
        notes: dict[str, None] = {}
        infos: dict[str, None] = {}
        for parsed in results:
            notes.update(dict.fromkeys(parsed.warnings))
            infos.update(dict.fromkeys(parsed.infos))
        if splitter.refused:
            notes[splitter.summary()] = None
        self._warn(list(notes), list(infos))
        return frame_from_block(merge_blocks([p.block for p in results]))

    def get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        """Call any API endpoint and return its decoded ``data``, e.g. ``get("labels")``.

        Parameters
        ----------
        path : str
            The path under ``/api/v1/``, such as ``"labels"``, ``"series"`` or
            ``"status/buildinfo"``.
        params : mapping, optional
            Query parameters.
        """
        body, status = self._send(path, dict(params or {}), "")
        return decode_api(body, query=f"/api/v1/{path}", status=status).get("data")

    # -- transport -----------------------------------------------------------------------

    def post_bytes(self, path: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, str]:
        """POST a raw body (e.g. a remote-write request) to ``path`` under the URL (``""``: the URL itself).

        Returns the status and the response text.

        The client's session, auth, headers, TLS settings, retries and deadline apply;
        connection failures raise :class:`~meshlab.errors.PrometheusUnavailable`.
        """
        url = f"{self.url}/{path.lstrip('/')}" if path else self.url
        status, response_headers, answer = self._exchange("POST", url, body, {**self._headers, **headers})
        return status, answer.decode(_charset(response_headers.get("Content-Type", "")), "replace")

    def _fetch_all(self, splitter: _Splitter, windows: Iterator[tuple[int, int]], count: int,
                   progress: bool | None) -> list[list[Parsed]]:
        if count == 1:
            return [splitter.fetch(*next(windows))]
        from tqdm.auto import tqdm

        results: list[list[Parsed] | None] = [None] * count
        numbered = enumerate(windows)
        pending: dict[Future[list[Parsed]], int] = {}
        workers = min(self.max_workers, count)
        bar = tqdm(total=count, unit="chunk", desc="query_range", leave=False,
                   disable=progress is False, delay=0 if progress else 2.0)
        with bar, ThreadPoolExecutor(max_workers=workers) as pool:

            def submit_next() -> None:
                # Chunks are submitted as others finish: never more than `workers` in flight.
                item = next(numbered, None)
                if item is not None:
                    pending[pool.submit(splitter.fetch, *item[1])] = item[0]

            for _ in range(workers):
                submit_next()
            try:
                while pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        results[pending.pop(future)] = future.result()  # the first failure stops the rest
                        bar.update(1)
                        submit_next()
            except BaseException:
                splitter.stop = True
                for future in pending:
                    future.cancel()
                raise
        return [r for r in results if r is not None]

    def _fetch(self, endpoint: str, params: dict[str, str], promql: str) -> Parsed:
        params = {**self.params, "timeout": format_duration(self.timeout), **params}
        body, status = self._send(endpoint, params, promql)
        return parse_response(body, query=promql, status=status)

    def _send(self, endpoint: str, params: dict[str, str], promql: str) -> tuple[bytearray, int]:
        url = f"{self.url}/api/v1/{endpoint.lstrip('/')}"
        encoded = urlencode(params)
        headers = dict(self._headers)
        if not self.compress:
            headers["Accept-Encoding"] = "identity"
        began = _time.perf_counter()
        if len(encoded) > POST_ABOVE_BYTES:
            method, data = "POST", encoded.encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            method, data, url = "GET", None, f"{url}?{encoded}" if encoded else url
        status, response_headers, body = self._exchange(method, url, data, headers)
        log.debug("%s %s -> %d, %d bytes in %.3f s", method, endpoint, status, len(body),
                  _time.perf_counter() - began)
        if not _JSON_START.match(body):  # a match at the start, not a copy of a large body
            raise ResponseError(_not_json_message(self.url, status, response_headers.get("Content-Type", ""),
                                                  body, response_headers.get("Retry-After")))
        return body, status

    def _exchange(self, method: str, url: str, data: bytes | None,
                  headers: Mapping[str, str]) -> tuple[int, Mapping[str, str], bytearray]:
        """One request with meshlab's retries, same-origin redirects and the deadline.

        Returns the final status, headers and body. Connection failures, timeouts and a
        passed deadline raise PrometheusUnavailable; a redirect to another origin, or one
        that would turn a POST into a GET, raises ResponseError.
        """
        deadline = _time.monotonic() + self.deadline
        attempt = redirects = 0
        path = urlsplit(url).path
        while True:
            outcome = self._once(method, url, data, headers, deadline)
            if isinstance(outcome, _Failure):
                if not outcome.retry or attempt >= self.retries:
                    raise outcome.error
                wait_s, reason = self.backoff * 2**attempt, outcome.reason
            else:
                status, response_headers, body = outcome
                location = response_headers.get("Location")
                if status in _REDIRECTS and location:
                    redirects += 1
                    url = self._redirect(method, url, status, location, redirects)
                    continue
                if status not in RETRY_STATUSES or attempt >= self.retries:
                    return status, response_headers, body
                asked = _retry_after(response_headers.get("Retry-After"))
                wait_s = self.backoff * 2**attempt if asked is None else asked
                reason = f"HTTP {status}"
                if asked is not None and wait_s > deadline - _time.monotonic():
                    if status == 429:
                        raise PrometheusUnavailable(
                            f"{self.url} is rate-limiting requests (HTTP 429) and asks to wait {asked:g} s, "
                            f"past this request's {self.deadline:g} s deadline; try again later, lower "
                            "max_workers, or raise deadline="
                        )
                    return status, response_headers, body
            attempt += 1
            if wait_s >= deadline - _time.monotonic():
                if isinstance(outcome, _Failure):
                    raise outcome.error
                return status, response_headers, body
            log.debug("%s %s: %s; retry %d of %d in %.2f s", method, path, reason, attempt, self.retries, wait_s)
            _time.sleep(wait_s)

    def _once(self, method: str, url: str, data: bytes | None, headers: Mapping[str, str],
              deadline: float) -> tuple[int, Mapping[str, str], bytearray] | _Failure:
        remaining = deadline - _time.monotonic()
        if remaining <= 0:
            return _Failure(self._late(0), retry=False, reason="deadline")
        limit = min(self.timeout, remaining)
        # A little grace, so a silent server still reports its socket timeout, not the deadline.
        with _Watch(remaining + 0.1) as watch:
            failure: _Failure | None = None
            try:
                response = self.session.request(
                    method, url, data=data, headers=headers, auth=self._auth, verify=self._verify,
                    cert=self._cert, timeout=(limit, limit), stream=True, allow_redirects=False,
                )
            except requests.exceptions.RequestException as exc:
                failure = self._unavailable(exc, watch)
            if failure is not None:  # returned outside the handler: the request and its headers are not kept
                return failure
            with response:
                body = bytearray()
                error: PrometheusUnavailable | ResponseError | None = None
                try:
                    while chunk := response.raw.read1(1 << 20, decode_content=True):
                        body += chunk
                except (HTTPError, OSError) as exc:
                    error = _body_error(self, exc, body, response.headers, watch)
                if error is None and watch.expired:
                    error = self._late(len(body))
                if error is not None:
                    return _Failure(error, retry=False, reason="body")
                return response.status_code, response.headers, body

    def _redirect(self, method: str, url: str, status: int, location: str, redirects: int) -> str:
        target = urljoin(url, location)
        here, there = _origin(url), _origin(target)
        if here != there:
            raise ResponseError(
                f"{here} redirected the request (HTTP {status}) to another server, {there}; meshlab "
                "does not follow redirects to other origins, which would receive your credentials and "
                "headers: if you trust it, use that server's URL"
            )
        if method == "POST" and status in (301, 302, 303):
            raise ResponseError(
                f"{here} answered a POST query with HTTP {status} to {urlsplit(target).path!r}, which would "
                "turn it into a GET without its query; point url= at where the server redirects"
            )
        if redirects > MAX_REDIRECTS:
            raise ResponseError(f"{here} redirected more than {MAX_REDIRECTS} times; check the URL")
        return target

    def _late(self, got: int) -> PrometheusUnavailable:
        return PrometheusUnavailable(
            f"{self.url} did not finish answering within this request's {self.deadline:g} s deadline "
            f"(got {got:,} bytes of the response); the server or the network is too slow: narrow the "
            "query, or raise timeout= or deadline="
        )

    def _unavailable(self, exc: requests.exceptions.RequestException, watch: _Watch) -> _Failure:
        # requests reports a read timeout as a ConnectionError wrapping MaxRetryError(ReadTimeoutError),
        # so look at the root cause, not the outer type.
        cause = getattr(exc.args[0], "reason", None) if exc.args else None
        if watch.expired:
            return _Failure(self._late(0), retry=False, reason="deadline")
        if isinstance(exc, requests.exceptions.SSLError) or isinstance(cause, SSLError):
            return _Failure(PrometheusUnavailable(
                f"TLS handshake with {self.url} failed ({_reason(exc)}); check verify= and cert="
            ), retry=False, reason="TLS")
        timed_out = isinstance(cause, (ReadTimeoutError, ConnectTimeoutError)) and not isinstance(
            cause, NewConnectionError)  # NewConnectionError subclasses ConnectTimeoutError
        if isinstance(exc, requests.exceptions.Timeout) or timed_out:
            return _Failure(PrometheusUnavailable(
                f"{self.url} did not answer within {self.timeout:g} s (after retries); "
                "raise timeout= or narrow the query"
            ), retry=True, reason="timeout")
        refused = isinstance(cause, NewConnectionError) and isinstance(cause.__cause__, ConnectionRefusedError)
        return _Failure(PrometheusUnavailable(
            f"could not connect to {self.url} ({_reason(exc)}); is the server running and the URL right?"
        ), retry=not (refused and _is_loopback(urlsplit(self.url).hostname)), reason=_reason(exc))

    @staticmethod
    def _warn(notes: list[str], infos: list[str]) -> None:
        for note in notes:
            warnings.warn(f"Prometheus: {note}", PrometheusWarning, stacklevel=3)
        for info in infos:
            warnings.warn(f"Prometheus (info): {info}", PrometheusWarning, stacklevel=3)


class _Splitter:
    """Fetches the chunks of one range query; a chunk the server refuses as too large is split and retried.

    A refusal lowers the points per request for every chunk still to come, so each size the
    server refuses is sent once, not once per chunk. Pieces stay aligned on ``start + k * step``,
    so the merged result is the one an unlimited server returns.
    """

    def __init__(self, client: Prometheus, promql: str, start_ms: int, step_ms: int, step_text: str,
                 max_points: int, max_requests: int, planned: int):
        self.client, self.promql = client, promql
        self.start_ms, self.step_ms, self.step_text = start_ms, step_ms, step_text
        self.limit = max_points  # the most points per request the server has not refused
        self.max_requests = max_requests
        self.budget = max_requests - planned  # requests splitting may add
        self.sent = 0
        self.refused = 0
        self.reason = ""
        self.stop = False
        self._lock = threading.Lock()

    def fetch(self, first: int, count: int) -> list[Parsed]:
        """The parsed answers for points ``first .. first + count - 1``, in time order."""
        out: list[Parsed] = []
        todo = [(first, count)]
        while todo and not self.stop:
            first, count = todo.pop()
            if count > self.limit:  # a size already refused elsewhere: split before sending
                todo.extend(reversed(self._pieces(first, count, extra=-1)))
                continue
            lo, hi = self.start_ms + first * self.step_ms, self.start_ms + (first + count - 1) * self.step_ms
            params = {"query": self.promql, "start": format_unix_ms(lo), "end": format_unix_ms(hi),
                      "step": self.step_text}
            with self._lock:
                self.sent += 1
            try:
                out.append(self.client._fetch("query_range", params, self.promql))
            except QueryError as exc:
                if not _TOO_LARGE.search(exc.message):
                    raise
                if count == 1:
                    raise QueryError(exc.error_type, f"{exc.message} (even for one step: meshlab split the range "
                                     "down to single steps; narrow the query to fewer series or a shorter "
                                     "[window], or raise the server's limit)", exc.query, exc.status) from None
                with self._lock:
                    self.refused += 1
                    self.reason = exc.message
                    self.limit = min(self.limit, (count + 1) // 2)
                log.debug("query_range: the server refused %d points per series as too large; splitting", count)
                todo.extend(reversed(self._pieces(first, count, extra=0, refused=exc)))
        return out

    def _pieces(self, first: int, count: int, *, extra: int, refused: QueryError | None = None
                ) -> list[tuple[int, int]]:
        parts = -(-count // self.limit)
        with self._lock:
            if parts + extra > self.budget:
                detail = f"{refused.message}; " if refused is not None else ""
                raise QueryError(
                    refused.error_type if refused is not None else "execution",
                    f"{detail}the server refuses more than about {self.limit:,} points per series in one request, "
                    f"so this query_range needs more than max_requests={self.max_requests:,} requests; use a "
                    "coarser step= or a shorter range, pass a larger max_requests= if you mean it, or raise the "
                    "server's limit", self.promql, refused.status if refused is not None else None)
            self.budget -= parts + extra
        edges = [first + count * i // parts for i in range(parts + 1)]
        return [(a, b - a) for a, b in itertools.pairwise(edges)]

    def summary(self) -> str:
        """The warning telling what was split and why."""
        reason = self.reason
        found = _TOO_LARGE.search(reason)
        if len(reason) > 240 and found:  # the limit's own words, not the query VictoriaMetrics repeats first
            lo, hi = max(0, found.start() - 60), min(len(reason), found.end() + 60)
            reason = ("..." if lo else "") + reason[lo:hi] + ("..." if hi < len(reason) else "")
        return (f"the server refused {self.refused} request(s) of this query_range as too large ({reason}); "
                f"meshlab split the range into requests of at most {self.limit:,} points per series "
                f"({self.sent} requests in all, the refused ones included) and merged them into the result "
                "one query would give")


def _check_promql(promql: str) -> str:
    if not isinstance(promql, str) or not promql.strip():
        raise InvalidArgument(f"promql must be a non-empty string, got {promql!r}")
    return promql


def _reason(exc: BaseException) -> str:
    # Keep the OS-level cause, never the URL with its query string.
    match = _ERRNO.search(str(exc))
    return match.group(0).strip() if match else type(exc).__name__


def redact_url(url: str) -> str:
    """The URL with any ``user:password@`` replaced by ``***@``, for messages.

    A password with an unencoded ``/``, ``?`` or ``#`` hides its ``@`` from the URL parser,
    so any ``@`` after the scheme redacts everything up to the last one.
    """
    parts = urlsplit(url)
    if parts.username is not None:
        return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        return f"{scheme}://***@{rest.rpartition('@')[2]}"
    return url


def _not_json_message(url: str, status: int, content_type: str, body: bytearray,
                      retry_after: str | None = None) -> str:
    kind = "an HTML page" if b"<html" in body[:512].lower() or "html" in content_type else "a non-JSON body"
    snippet = bytes(body[:120]).decode("utf-8", "replace").replace("\n", " ").strip()
    if status == 429:
        asked = _retry_after(retry_after)
        hint = ("the server is rate-limiting requests" + (f" (it asks to wait {asked:g} s)" if asked is not None
                                                          else "") + "; try again later or lower max_workers")
    elif 300 <= status < 400:
        hint = "the server redirected without a Location; is the URL the Prometheus API root?"
    elif status < 500:
        hint = "is the URL the Prometheus API root (not a login page, proxy or the /graph UI)?"
    else:
        hint = "the server or a proxy in front of it failed; try again later"
    return f"{url} answered HTTP {status} with {kind} instead of Prometheus JSON; {hint} (body starts: {snippet!r})"


class _Failure:
    """A failed attempt: the error to raise, and whether another attempt may help."""

    __slots__ = ("error", "reason", "retry")

    def __init__(self, error: PrometheusUnavailable | ResponseError, *, retry: bool, reason: str):
        self.error, self.retry, self.reason = error, retry, reason


class _Watch:
    """One attempt's deadline: a timer that shuts the attempt's socket down when it passes.

    A socket timeout bounds each read, not the whole answer: a server sending a byte a second
    never trips it. Shutting the socket down from the timer ends any blocked read at once.
    """

    def __init__(self, seconds: float):
        self.conn: Any = None
        self.expired = False
        self._lock = threading.Lock()
        self._done = False
        self._timer = threading.Timer(seconds, self._cut)
        self._timer.daemon = True

    def __enter__(self) -> _Watch:
        _active.watch = self
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        with self._lock:
            self._done = True
        _active.watch = None

    def _cut(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
            sock = getattr(self.conn, "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class _WatchedHTTPPool(HTTPConnectionPool):
    def _make_request(self, conn: Any, *args: Any, **kwargs: Any) -> Any:
        watch = getattr(_active, "watch", None)
        if watch is not None:
            watch.conn = conn
        return super()._make_request(conn, *args, **kwargs)


class _WatchedHTTPSPool(HTTPSConnectionPool):
    _make_request = _WatchedHTTPPool._make_request


_WATCHED_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class _DeadlineAdapter(HTTPAdapter):
    """requests' adapter whose connections a :class:`_Watch` can cut at the deadline."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kwargs)
        manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager


def _body_error(client: Prometheus, exc: BaseException, body: bytearray, headers: Mapping[str, str],
                watch: _Watch) -> PrometheusUnavailable | ResponseError:
    if watch.expired:
        return client._late(len(body))
    if isinstance(exc, (ReadTimeoutError, TimeoutError)):
        return PrometheusUnavailable(
            f"{client.url} stopped sending its response after {len(body):,} bytes for {client.timeout:g} s; "
            "raise timeout= or narrow the query"
        )
    detail = f"after {len(body):,} bytes"
    length = headers.get("Content-Length", "")
    if length.isdigit() and headers.get("Content-Encoding", "identity") == "identity":
        detail += f", {int(length) - len(body):,} more expected"
    else:
        got = _INCOMPLETE.search(str(exc))
        if got:
            detail += f", {got[2]} more expected"
    return ResponseError(
        f"the response from {client.url} was cut off {detail}; the connection broke or a proxy "
        "limit was hit: retry, or ask for less data"
    )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    port = port or _DEFAULT_PORTS.get(parts.scheme)
    host = parts.hostname or ""
    return f"{parts.scheme}://{'[' + host + ']' if ':' in host else host}:{port}"


def _retry_after(value: str | None) -> float | None:
    """Seconds asked by a Retry-After header (seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        log.debug("ignoring an unreadable Retry-After header %r", text[:40])
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return max(0.0, (when - dt.datetime.now(dt.timezone.utc)).total_seconds())


def _charset(content_type: str) -> str:
    match = re.search(r"charset=([\w-]+)", content_type)
    return match[1] if match else "utf-8"


def _seconds(value: Any, name: str, *, zero_ok: bool = False) -> float:
    if isinstance(value, bool):
        raise InvalidArgument(f"{name} must be a number of seconds, not {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, (str, dt.timedelta)):
        seconds = to_timedelta(value, name=name).total_seconds()
    else:
        raise InvalidArgument(f"{name} must be a number of seconds or a duration such as '30s', "
                              f"not {type(value).__name__}")
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not zero_ok):
        raise InvalidArgument(f"{name} must be a {'non-negative' if zero_ok else 'positive'} finite number "
                              f"of seconds, got {value!r}")
    return seconds


def _count(value: Any, name: str, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise InvalidArgument(f"{name} must be a whole number of at least {least}, got {value!r}")
    return int(value)
