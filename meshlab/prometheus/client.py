"""``meshlab.Prometheus``: query any Prometheus-compatible HTTP API into tidy frames.

This module is the query API: arguments checked, requests built, answers parsed
(:mod:`.parse`) and warnings raised. Below it, :mod:`._http` is the HTTP transport (a
``requests.Session`` with meshlab's adapter mounted on the server's URL, retries, redirects,
the deadline): that adapter is the transport seam, so tests and unusual deployments can mount
their own on ``client.session`` without touching the rest. :mod:`._split` fetches the chunks
of long range queries and splits those the server refuses as too large. Longer than 400 lines:
the query API is one class whose methods share argument checks, and half its lines are docstrings.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
import time as _time
import warnings
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit, urlunsplit

import pandas as pd
import requests
from urllib3.util.retry import Retry

from .. import schema
from ..errors import InvalidArgument, PrometheusWarning, ResponseError
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
from ._http import MAX_REDIRECTS as MAX_REDIRECTS  # re-exported: these lived here first
from ._http import RETRY_STATUSES as RETRY_STATUSES
from ._http import (
    DeadlineAdapter,
    Transport,
    charset,
    is_loopback,
    not_json_message,
    redact_url,
)
from ._split import Splitter, fetch_all
from .parse import Parsed, decode_api, frame_from_block, merge_blocks, parse_response

__all__ = ["MAX_POINTS_PER_SERIES", "MAX_REQUESTS", "Prometheus"]

log = logging.getLogger("meshlab.prometheus")

#: Prometheus refuses range queries of more than 11,000 points per series.
MAX_POINTS_PER_SERIES = 11_000
#: query_range refuses (up front) a query that would need more requests than this.
MAX_REQUESTS = 1000
#: Above this many bytes of form data, queries are sent with POST instead of GET.
POST_ABOVE_BYTES = 4096

_JSON_START = re.compile(rb"\s*\{")


class Prometheus(Transport):
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
    >>> prom = Prometheus("http://user:secret@127.0.0.1:9090")  # connects on the first query
    >>> prom
    Prometheus('http://127.0.0.1:9090', auth=***)
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
        self.compress = not is_loopback(parts.hostname) if compress is None else bool(compress)
        self.params = dict(params or {})
        self.session = session
        self._auth = auth
        self._headers = dict(headers or {})
        self._verify = verify
        self._cert = cert
        # Retries, redirects and the deadline are meshlab's own (see _exchange): urllib3 retrying
        # too would multiply the waits and log each retry's URL, PromQL included, at WARNING.
        retry = Retry(total=0, redirect=False, raise_on_status=False)
        adapter = DeadlineAdapter(max_retries=retry, pool_connections=1, pool_maxsize=max(self.max_workers, 10))
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
        splitter = Splitter(self, promql, start_ms, step_ms, step_text, max_points, max_requests, needed)
        windows = iter([(first, min(max_points, points - first)) for first in range(0, points, max_points)])
        pieces = fetch_all(self, splitter, windows, needed, progress)
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
        return status, answer.decode(charset(response_headers.get("Content-Type", "")), "replace")

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
            raise ResponseError(not_json_message(self.url, status, response_headers.get("Content-Type", ""),
                                                 body, response_headers.get("Retry-After")))
        return body, status

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
