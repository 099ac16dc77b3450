"""``meshlab.Prometheus``: query any Prometheus-compatible HTTP API into tidy frames.

The HTTP layer is a ``requests.Session`` with a retrying ``HTTPAdapter`` mounted on
the server's URL. That adapter is the transport seam: tests and unusual deployments
can mount their own adapter on ``client.session`` without touching the rest.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import time as _time
import warnings
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import pandas as pd
import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ReadTimeoutError, SSLError
from urllib3.util.retry import Retry

from .. import schema
from ..errors import InvalidArgument, PrometheusUnavailable, PrometheusWarning, ResponseError
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

__all__ = ["MAX_POINTS_PER_SERIES", "Prometheus"]

log = logging.getLogger("meshlab.prometheus")

#: Prometheus refuses range queries of more than 11,000 points per series.
MAX_POINTS_PER_SERIES = 11_000
#: Above this many bytes of form data, queries are sent with POST instead of GET.
POST_ABOVE_BYTES = 4096
#: Statuses retried with backoff: rate limiting and server-side failures.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
_INCOMPLETE = re.compile(r"IncompleteRead\((\d+) bytes read, (\d+) more expected")
_JSON_START = re.compile(rb"\s*\{")
_ERRNO = re.compile(r"\[Errno -?\d+\][^'\")]*")


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
        behind a path prefix. Credentials in the URL (``https://user:pass@host``) are moved
        to ``auth`` (unless ``headers`` carries an ``Authorization``, which then wins) and never
        shown. An existing prometheus-pandas client is reused: its session (which gets
        meshlab's retrying adapter for this URL, and is left open by :meth:`close`) and URL.
    headers : mapping, optional
        Extra headers sent with every request, e.g. ``{"Authorization": "Bearer ..."}``.
    auth : tuple or requests.auth.AuthBase, optional
        ``(user, password)`` for basic auth, or any requests auth object.
    verify : bool or str
        TLS verification: True, False, or a CA bundle path.
    cert : str or tuple, optional
        A client certificate, as requests takes it.
    timeout : float
        Socket timeout in seconds, also sent to the server as the query's evaluation timeout.
    retries : int
        How many times to retry connection errors, 429 and 5xx responses, with exponential
        backoff (honouring ``Retry-After``).
    backoff : float
        The backoff factor in seconds: waits grow as ``backoff * 2 ** n``.
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
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
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
                auth = (parts.username, parts.password or "")
            parts = parts._replace(netloc=parts.netloc.rpartition("@")[2])
        if timeout <= 0:
            raise InvalidArgument(f"timeout must be positive, got {timeout!r}")
        if max_workers < 1:
            raise InvalidArgument(f"max_workers must be at least 1, got {max_workers!r}")
        self.url = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
        self.timeout = float(timeout)
        self.max_workers = int(max_workers)
        self.compress = not _is_loopback(parts.hostname) if compress is None else bool(compress)
        self.params = dict(params or {})
        self.session = session
        self._auth = auth
        self._headers = dict(headers or {})
        self._verify = verify
        self._cert = cert
        retry = Retry(
            total=retries,
            connect=retries,
            read=retries,
            status=retries,
            backoff_factor=backoff,
            status_forcelist=RETRY_STATUSES,
            allowed_methods={"GET", "POST"},
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        adapter = HTTPAdapter(max_retries=retry, pool_connections=1, pool_maxsize=max(self.max_workers, 10))
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
            the result is exactly what one unlimited query would return.
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
        if max_points < 2:
            raise InvalidArgument(f"max_points must be at least 2, got {max_points!r}")
        points = (end_ms - start_ms) // step_ms + 1
        step_text = format_unix_ms(step_ms)
        if points <= max_points:
            windows = [(start_ms, end_ms)]
        else:
            windows = [
                (start_ms + first * step_ms, start_ms + (min(first + max_points, points) - 1) * step_ms)
                for first in range(0, points, max_points)
            ]
        requests_params = [
            {"query": promql, "start": format_unix_ms(lo), "end": format_unix_ms(hi), "step": step_text}
            for lo, hi in windows
        ]
        results = self._fetch_all("query_range", requests_params, promql, progress)
        notes: dict[str, None] = {}
        infos: dict[str, None] = {}
        for parsed in results:
            notes.update(dict.fromkeys(parsed.warnings))
            infos.update(dict.fromkeys(parsed.infos))
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

        The client's session, auth, headers, TLS settings and retries apply; connection
        failures raise :class:`~meshlab.errors.PrometheusUnavailable`.
        """
        failure: PrometheusUnavailable | None = None
        try:
            response = self.session.post(
                f"{self.url}/{path.lstrip('/')}" if path else self.url, data=body, headers={**self._headers, **headers},
                auth=self._auth, verify=self._verify, cert=self._cert, timeout=self.timeout,
            )
        except requests.exceptions.RequestException as exc:
            failure = self._unavailable(exc)
        if failure is not None:  # raised outside the handler: the request and its headers are not kept
            raise failure
        with response:
            return response.status_code, response.text

    def _fetch_all(self, endpoint: str, param_sets: list[dict[str, str]], promql: str,
                   progress: bool | None) -> list[Parsed]:
        if len(param_sets) == 1:
            return [self._fetch(endpoint, param_sets[0], promql)]
        from tqdm.auto import tqdm

        results: list[Parsed | None] = [None] * len(param_sets)
        bar = tqdm(total=len(param_sets), unit="chunk", desc="query_range", leave=False,
                   disable=progress is False, delay=0 if progress else 2.0)
        with bar, ThreadPoolExecutor(max_workers=min(self.max_workers, len(param_sets))) as pool:
            futures = {pool.submit(self._fetch, endpoint, p, promql): i for i, p in enumerate(param_sets)}
            try:
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    bar.update(1)
            except BaseException:
                for future in futures:
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
        method = "POST" if len(encoded) > POST_ABOVE_BYTES else "GET"
        headers = dict(self._headers)
        if not self.compress:
            headers["Accept-Encoding"] = "identity"
        began = _time.perf_counter()
        try:
            response = self.session.request(
                method, url,
                params=encoded if method == "GET" else None,
                data=encoded if method == "POST" else None,
                headers={**headers, **({"Content-Type": "application/x-www-form-urlencoded"}
                                       if method == "POST" else {})},
                auth=self._auth, verify=self._verify, cert=self._cert,
                timeout=self.timeout, stream=True,
            )
        except requests.exceptions.RequestException as exc:
            failure: PrometheusUnavailable | None = self._unavailable(exc)
        else:
            failure = None
        if failure is not None:  # raised outside the handler: the request and its headers are not kept
            raise failure
        with response:
            body = bytearray()
            try:
                for chunk in response.iter_content(chunk_size=1 << 20):
                    body += chunk
            except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError) as exc:
                got = _INCOMPLETE.search(str(exc))
                detail = f"after {got[1]} bytes, {got[2]} more expected" if got else f"after {len(body)} bytes"
                raise ResponseError(
                    f"the response from {self.url} was cut off {detail}; the connection broke or a proxy "
                    "limit was hit: retry, or ask for less data"
                ) from None
            except requests.exceptions.Timeout:
                raise PrometheusUnavailable(
                    f"{self.url} stopped sending its response for {self.timeout:g} s; raise timeout="
                ) from None
            status = response.status_code
            content_type = response.headers.get("Content-Type", "")
        log.debug("%s %s -> %d, %d bytes in %.3f s", method, endpoint, status, len(body),
                  _time.perf_counter() - began)
        if not _JSON_START.match(body):  # a match at the start, not a copy of a large body
            raise ResponseError(_not_json_message(self.url, status, content_type, body))
        return body, status

    def _unavailable(self, exc: requests.exceptions.RequestException) -> PrometheusUnavailable:
        # requests reports retries exhausted on a read timeout as a ConnectionError wrapping
        # MaxRetryError(ReadTimeoutError), so look at the root cause, not the outer type.
        cause = getattr(exc.args[0], "reason", None) if exc.args else None
        if isinstance(exc, requests.exceptions.SSLError) or isinstance(cause, SSLError):
            return PrometheusUnavailable(
                f"TLS handshake with {self.url} failed ({_reason(exc)}); check verify= and cert="
            )
        timed_out = isinstance(cause, (ReadTimeoutError, ConnectTimeoutError)) and not isinstance(
            cause, NewConnectionError)  # NewConnectionError subclasses ConnectTimeoutError
        if isinstance(exc, requests.exceptions.Timeout) or timed_out:
            return PrometheusUnavailable(
                f"{self.url} did not answer within {self.timeout:g} s (after retries); "
                "raise timeout= or narrow the query"
            )
        return PrometheusUnavailable(
            f"could not connect to {self.url} ({_reason(exc)}); is the server running and the URL right?"
        )

    @staticmethod
    def _warn(notes: list[str], infos: list[str]) -> None:
        for note in notes:
            warnings.warn(f"Prometheus: {note}", PrometheusWarning, stacklevel=3)
        for info in infos:
            warnings.warn(f"Prometheus (info): {info}", PrometheusWarning, stacklevel=3)


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


def _not_json_message(url: str, status: int, content_type: str, body: bytearray) -> str:
    kind = "an HTML page" if b"<html" in body[:512].lower() or "html" in content_type else "a non-JSON body"
    snippet = bytes(body[:120]).decode("utf-8", "replace").replace("\n", " ").strip()
    hint = (
        "is the URL the Prometheus API root (not a login page, proxy or the /graph UI)?"
        if status < 500 else "the server or a proxy in front of it failed; try again later"
    )
    return f"{url} answered HTTP {status} with {kind} instead of Prometheus JSON; {hint} (body starts: {snippet!r})"
