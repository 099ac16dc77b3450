"""Long range queries: chunks fetched concurrently, and chunks the server refuses as too large split.

:meth:`Prometheus.query_range <meshlab.prometheus.Prometheus.query_range>` plans chunks of at most
``max_points`` points aligned on ``start + k * step``; :func:`fetch_all` fetches them
``max_workers`` at a time, and :class:`Splitter` halves any the server refuses for its size, so
the merged result is the one an unlimited server returns.
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING

from ..errors import QueryError
from ..timeutil import format_unix_ms
from .parse import Parsed

if TYPE_CHECKING:
    from .client import Prometheus

__all__ = ["Splitter", "fetch_all"]

log = logging.getLogger("meshlab.prometheus")

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


class Splitter:
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


def fetch_all(client: Prometheus, splitter: Splitter, windows: Iterator[tuple[int, int]], count: int,
               progress: bool | None) -> list[list[Parsed]]:
    """Every chunk's answers, in order: ``max_workers`` chunks in flight, the first failure stopping the rest."""
    if count == 1:
        return [splitter.fetch(*next(windows))]
    from tqdm.auto import tqdm

    results: list[list[Parsed] | None] = [None] * count
    numbered = enumerate(windows)
    pending: dict[Future[list[Parsed]], int] = {}
    workers = min(client.max_workers, count)
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
