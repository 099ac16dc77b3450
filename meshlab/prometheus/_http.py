"""The HTTP transport under :class:`meshlab.prometheus.Prometheus`.

One request at a time, with meshlab's own retries (with backoff, honouring ``Retry-After``),
redirects followed within one origin only, and a deadline a :class:`_Watch` enforces by
cutting the socket of a server that answers too slowly. The ``requests`` adapter mounted on
the server's URL (:class:`DeadlineAdapter`) is the transport seam: tests and unusual
deployments can mount their own on ``client.session``. Errors name the server without its
credentials (:func:`redact_url`) and never the query string.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import ipaddress
import logging
import re
import socket
import threading
import time as _time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError, ReadTimeoutError, SSLError

from ..errors import PrometheusUnavailable, ResponseError

__all__ = ["MAX_REDIRECTS", "RETRY_STATUSES", "DeadlineAdapter", "Transport", "charset", "is_loopback",
           "not_json_message", "redact_url", "retry_after"]

log = logging.getLogger("meshlab.prometheus")

#: How many redirects within one server a request follows.
MAX_REDIRECTS = 5
#: Statuses retried with backoff: rate limiting and server-side failures.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
_INCOMPLETE = re.compile(r"IncompleteRead\((\d+) bytes read, (\d+) more expected")
_ERRNO = re.compile(r"\[Errno -?\d+\][^'\")]*")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_active = threading.local()


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Transport:
    """One request with meshlab's retries, same-origin redirects and a deadline: the part of
    :class:`~meshlab.prometheus.Prometheus` that speaks HTTP (it sets these attributes)."""

    url: str
    session: requests.Session
    timeout: float
    retries: int
    backoff: float
    deadline: float
    _auth: Any
    _verify: bool | str
    _cert: str | tuple[str, str] | None

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
                asked = retry_after(response_headers.get("Retry-After"))
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
        ), retry=not (refused and is_loopback(urlsplit(self.url).hostname)), reason=_reason(exc))


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


def not_json_message(url: str, status: int, content_type: str, body: bytearray,
                     retry_after_header: str | None = None) -> str:
    kind = "an HTML page" if b"<html" in body[:512].lower() or "html" in content_type else "a non-JSON body"
    snippet = bytes(body[:120]).decode("utf-8", "replace").replace("\n", " ").strip()
    if status == 429:
        asked = retry_after(retry_after_header)
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


class DeadlineAdapter(HTTPAdapter):
    """requests' adapter whose connections a :class:`_Watch` can cut at the deadline."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kwargs)
        manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager


def _body_error(client: Transport, exc: BaseException, body: bytearray, headers: Mapping[str, str],
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


def retry_after(value: str | None) -> float | None:
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


def charset(content_type: str) -> str:
    match = re.search(r"charset=([\w-]+)", content_type)
    return match[1] if match else "utf-8"
