"""A live ``/metrics`` endpoint that a real Prometheus can scrape (``meshlab sim serve``).

Simulated time runs ``speed`` times faster than the wall clock from the moment the
exporter starts, and stops at the end of the run. Each scrape serves the samples of the
latest simulated scrape, rendered by the same code as the backfill files, so a scrape
and the backfilled history agree sample for sample.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ..errors import InvalidArgument
from .output import exposition, mesh_chunks
from .render import Block
from .traffic import Traffic

__all__ = ["SimExporter"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class SimExporter:
    """Serve a simulated run's metrics over HTTP.

    Parameters
    ----------
    traffic : Traffic
        The simulated run.
    meshes : sequence of str
        Which meshes' metrics to serve.
    speed : float
        Simulated seconds per wall-clock second.
    host, port : str, int
        Where to listen; port 0 picks a free port.
    origin_ms : int, optional
        Tie simulated time to the wall clock: the run's first scrape is at this unix time
        (milliseconds), and each request serves the scrape the clock is at (a live sandbox,
        whose run is placed in real time). By default simulated time starts with the exporter.
    """

    def __init__(self, traffic: Traffic, meshes: Sequence[str], *, speed: float = 1.0,
                 host: str = "127.0.0.1", port: int = 0, origin_ms: int | None = None):
        if speed <= 0:
            raise InvalidArgument(f"speed must be positive, got {speed!r}")
        self.traffic = traffic
        self.meshes = tuple(meshes)
        self.speed = float(speed)
        self.origin_ms = origin_ms
        self._chunks: Iterator[tuple[slice, list[Block]]] = mesh_chunks(traffic, self.meshes)
        self._current: tuple[slice, list[Block]] | None = None
        self._lock = threading.Lock()
        self._began = time.monotonic()
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404, "only /metrics is served")
                    return
                body = exporter.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The ``/metrics`` URL."""
        return f"http://{self.address}/metrics"

    @property
    def address(self) -> str:
        """``host:port``, as a Prometheus scrape target."""
        host, port = self._server.server_address[:2]
        return f"{host if isinstance(host, str) else host.decode()}:{port}"

    def index(self) -> int:
        """The simulated scrape served now."""
        if self.origin_ms is not None:
            elapsed = (time.time() - self.origin_ms / 1000) * self.speed
        else:
            elapsed = (time.monotonic() - self._began) * self.speed
        return max(0, min(int(elapsed // self.traffic.interval_s), self.traffic.n - 1))

    def render(self, index: int | None = None) -> str:
        """The exposition text at a simulated scrape (the current one by default)."""
        k = self.index() if index is None else index
        with self._lock:
            while self._current is None or k >= self._current[0].stop:
                self._current = next(self._chunks)
            scrapes, blocks = self._current
            if k < scrapes.start:
                raise InvalidArgument(f"scrape {k} has passed; the exporter only moves forward")
            return exposition(blocks, k - scrapes.start)

    def start(self) -> SimExporter:
        """Serve in a background thread; simulated time starts now."""
        self._began = time.monotonic()
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (an exporter never started just closes its socket)."""
        if self._thread is not None:  # shutdown() waits for serve_forever, forever if it never ran
            self._server.shutdown()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> SimExporter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
