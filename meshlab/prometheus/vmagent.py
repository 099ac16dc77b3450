"""A real ``vmagent`` on loopback: VictoriaMetrics' agent, one per simulated cluster.

It scrapes (``-promscrape.config``), accepts remote write on its own ``/api/v1/write``, adds
the labels it is given (``-remoteWrite.label``, e.g. ``cluster=eu``) to every sample, and
remote-writes everything to one VictoriaMetrics: how a fleet ships its clusters' metrics
to one store. Started, like the servers of :mod:`meshlab.prometheus.local`, from the binary
on PATH, on a free ``127.0.0.1`` port, and stopped by PID (and with this process).

>>> with LocalVictoriaMetrics() as vm, VmAgent(vm.url, labels={"cluster": "eu"}) as agent:  # doctest: +SKIP
...     push_backfill(traffic, ["istio"], agent.client)       # stored in vm with cluster="eu"
...     agent.drain()
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping, Sequence

import requests

from ..errors import InvalidArgument, MeshlabError
from ._process import _LocalServer, find_binary

__all__ = ["VmAgent"]

#: vmagent's own metrics that hold what it has not yet sent on.
_PENDING = re.compile(r"^(vmagent_remotewrite_pending_data_bytes|vm_persistentqueue_bytes_pending)\{?[^ ]*\s+(\S+)$",
                      re.MULTILINE)
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class VmAgent(_LocalServer):
    """A real ``vmagent`` writing to ``remote_write_url``.

    Parameters
    ----------
    remote_write_url : str
        Where to send everything, e.g. a VictoriaMetrics' ``http://127.0.0.1:8428``
        (``/api/v1/write`` is appended when no path is given).
    labels : mapping of str to str
        Labels added to every sample it forwards (``{"cluster": "eu"}``).
    scrape_config : str, optional
        A Prometheus-style ``scrape_configs`` YAML for it to scrape; none by default (it then
        only forwards what is pushed to it).
    extra_args : sequence of str
        More command-line flags for ``vmagent``.
    """

    name = "vmagent"
    ready_path = "/health"

    def __init__(self, remote_write_url: str, *, labels: Mapping[str, str] | None = None,
                 scrape_config: str | None = None, extra_args: Sequence[str] = ()):
        self.binary = find_binary("vmagent", "vmagent-prod", env="MESHLAB_VMAGENT")
        url = remote_write_url.rstrip("/")
        self.remote_write_url = url if url.count("/") > 2 else url + "/api/v1/write"
        self.labels = dict(labels or {})
        for key, value in self.labels.items():
            if not _LABEL.match(key) or "," in value:
                raise InvalidArgument(f"vmagent labels must be name=value with a Prometheus label name and no comma, "
                                      f"got {key}={value!r}")
        self.scrape_config = scrape_config
        self.extra_args = list(extra_args)
        super().__init__()

    def _prepare(self) -> None:
        if self.scrape_config is not None:
            (self.workdir / "scrape.yml").write_text(self.scrape_config)

    def _command(self, port: int) -> list[str]:
        return [
            self.binary,
            f"-httpListenAddr=127.0.0.1:{port}",
            f"-remoteWrite.url={self.remote_write_url}",
            *[f"-remoteWrite.label={k}={v}" for k, v in self.labels.items()],
            f"-remoteWrite.tmpDataPath={self.workdir / 'buffer'}",
            "-remoteWrite.flushInterval=200ms",
            *([f"-promscrape.config={self.workdir / 'scrape.yml'}"] if self.scrape_config is not None else []),
            "-loggerLevel=WARN",
            *self.extra_args,
        ]

    def reload(self, scrape_config: str) -> None:
        """Scrape what ``scrape_config`` says from now on (written, then SIGHUP)."""
        import signal

        if self.scrape_config is None:
            raise MeshlabError("vmagent was started without -promscrape.config; give scrape_config= at start")
        self.scrape_config = scrape_config
        (self.workdir / "scrape.yml").write_text(scrape_config)
        if self.pid is None:
            raise MeshlabError(f"vmagent is not running:\n{self.log_tail()}")
        os.kill(self.pid, signal.SIGHUP)

    def pending_bytes(self) -> float:
        """What vmagent holds that the remote store has not yet acknowledged, from its own metrics."""
        text = requests.get(self.url + "/metrics", timeout=10).text
        return sum(float(value) for _, value in _PENDING.findall(text))

    def drain(self, timeout: float = 120.0) -> None:
        """Wait until everything pushed to (or scraped by) vmagent so far has been sent on."""
        deadline = time.monotonic() + timeout
        while self.pending_bytes() > 0:
            if time.monotonic() > deadline:
                raise MeshlabError(f"vmagent still held {self.pending_bytes():.0f} bytes for {self.remote_write_url} "
                                   f"after {timeout:g} s; its log ends with:\n{self.log_tail()}")
            time.sleep(0.1)

    def targets_up(self) -> bool:
        """Whether every scrape target answered its last scrape (``/api/v1/targets``)."""
        data = requests.get(self.url + "/api/v1/targets", timeout=10).json().get("data", {})
        active = data.get("activeTargets", [])
        return bool(active) and all(t.get("health") == "up" for t in active)
