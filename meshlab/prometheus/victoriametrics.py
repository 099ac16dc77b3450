"""A real single-node VictoriaMetrics on loopback, for tests, notebooks and fleets (see :mod:`.local`)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import requests

from ..errors import MeshlabError
from ..openmetrics import seconds_to_millis_lines
from ._process import _existing_files, _LocalServer, find_binary
from .client import Prometheus

__all__ = ["LocalVictoriaMetrics"]


class LocalVictoriaMetrics(_LocalServer):
    """A real single-node VictoriaMetrics, loaded through ``/api/v1/import/prometheus``.

    It stands in for the scale-out Prometheus-compatible engines (VictoriaMetrics
    cluster, Thanos, Mimir). OpenMetrics files are streamed to the import endpoint with
    their timestamps rewritten to milliseconds, then flushed so they are searchable.

    Parameters
    ----------
    openmetrics : path-like or sequence of path-like, optional
        Files to import once the server is up.
    extra_args : sequence of str
        More command-line flags for ``victoria-metrics``.

    Notes
    -----
    Two behaviours differ from Prometheus and are not hidden: range queries are aligned to
    multiples of ``step`` unless ``nocache=1`` is sent (``client`` sends it), and ``rate``
    does not extrapolate to the window edges, so its values differ by a few percent.
    """

    name = "victoria-metrics"
    ready_path = "/health"

    def __init__(self, openmetrics: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
                 *, extra_args: Sequence[str] = (), workdir: str | os.PathLike[str] | None = None,
                 keep: bool = False):
        self.binary = find_binary("victoria-metrics", "victoria-metrics-prod", env="MESHLAB_VICTORIA_METRICS")
        files = _existing_files(openmetrics)
        super().__init__(workdir=workdir, keep=keep)
        self.openmetrics = files
        self.extra_args = list(extra_args)

    @property
    def client(self) -> Prometheus:
        if self._client is None:
            self._client = Prometheus(self.url, params={"nocache": "1"})
        return self._client

    def _command(self, port: int) -> list[str]:
        return [
            self.binary,
            f"-httpListenAddr=127.0.0.1:{port}",
            f"-storageDataPath={self.workdir / 'data'}",
            "-retentionPeriod=100y",
            "-search.latencyOffset=0s",
            "-loggerLevel=WARN",
            *self.extra_args,
        ]

    def _after_start(self) -> None:
        for path in self.openmetrics:
            self.import_openmetrics(path)

    def import_openmetrics(self, path: str | os.PathLike[str]) -> None:
        """Stream one OpenMetrics file into the server and flush it to search."""
        with open(path, "rb") as handle:
            response = requests.post(self.url + "/api/v1/import/prometheus",
                                     data=_batched(seconds_to_millis_lines(handle)), timeout=600)
        if response.status_code >= 300:
            raise MeshlabError(
                f"VictoriaMetrics refused {str(path)!r}: HTTP {response.status_code} {response.text[:300]}"
            )
        self.force_flush()

    def force_flush(self) -> None:
        """Make everything written so far searchable (imports and remote writes are buffered)."""
        requests.get(self.url + "/internal/force_flush", timeout=60).raise_for_status()


def _batched(lines: Iterator[bytes], size: int = 1 << 20) -> Iterator[bytes]:
    batch: list[bytes] = []
    held = 0
    for line in lines:
        batch.append(line)
        held += len(line)
        if held >= size:
            yield b"".join(batch)
            batch, held = [], 0
    if batch:
        yield b"".join(batch)
