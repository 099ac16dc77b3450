"""``meshlab sim serve|backfill|push`` and ``meshlab sandbox``."""

from __future__ import annotations

import errno
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import click

from ..errors import InvalidArgument, MeshlabError
from .common import debug_option, output_option
from .core import MESHES, PORT, Command, Group, positive


@contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    """SIGTERM stops the command as Ctrl-C does, so its servers are stopped and cleaned up."""
    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    import threading

    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may handle signals (main() run in a thread by a test or a notebook)
        return
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _wait_forever() -> None:
    while True:
        time.sleep(3600)


def _check_listen(host: str, port: int) -> None:
    """Fail fast on a host or port the exporter cannot listen on, before simulating."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as http.server does
            probe.bind(address)
    except OSError as error:
        reason = error.strerror or str(error)
        hint = "; pick another --port" if error.errno == errno.EADDRINUSE else \
            "; --host must be a local address such as 127.0.0.1"
        raise InvalidArgument(f"cannot listen on {host}:{port}: {reason}{hint}") from None


def _run_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--hours", type=positive(float, "hours"), default=None,
                     help="Length of the run (default: the scenario's).")(f)
    f = click.option("--meshes", type=MESHES, default="linkerd,istio,consul", show_default=True,
                     help="Comma-separated mesh names.")(f)
    f = click.option("--scenario", default="shop", show_default=True, help="Built-in name or YAML/TOML file.")(f)
    return f


def _end_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--end", default=None,
                        help="End the run at this time: 'now' or an ISO time (default: the scenario's own date). "
                             "Prometheus takes samples at most an hour older than the newest it holds.")(f)


@click.group(cls=Group, help="The traffic simulator: serve, backfill or push a scenario's metrics.",
             short_help="The traffic simulator.")
def sim() -> None:
    pass


@sim.command("serve", cls=Command, help="Serve a scenario's metrics on /metrics for a real Prometheus to scrape.")
@_run_options
@click.option("--speed", type=positive(float, "simulated seconds per second"), default=1.0, show_default=True,
              help="Simulated seconds per second.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=PORT, default=9464, show_default=True)
@output_option
@debug_option
def sim_serve(scenario: str, meshes: str, hours: float | None, speed: float, host: str, port: int, fmt: str) -> int:
    from ..sim import SimExporter, load_scenario, simulate

    _check_listen(host, port)
    traffic = simulate(load_scenario(scenario), hours=hours)
    with _stop_on_sigterm(), SimExporter(traffic, meshes.split(","), speed=speed, host=host, port=port) as exporter:
        if fmt in ("json", "csv"):
            _record(fmt, url=exporter.url, scenario=scenario, meshes=meshes, speed=speed)
            sys.stdout.flush()
        else:
            print(f"serving {scenario} ({meshes}) at {exporter.url}; Ctrl-C to stop", flush=True)
        try:
            _wait_forever()
        except KeyboardInterrupt:
            return 0
    return 0  # pragma: no cover


@sim.command("backfill", cls=Command, help="Write a scenario's metrics as OpenMetrics (and TSDB blocks).")
@_run_options
@click.option("--out", default="out/openmetrics", show_default=True, help="Directory for the files.")
@click.option("--tsdb", default=None, help="Also backfill them into this TSDB directory with promtool.")
@_end_option
@output_option
@debug_option
def sim_backfill(scenario: str, meshes: str, hours: float | None, out: str, tsdb: str | None,
                 end: str | None, fmt: str) -> int:
    from ..sim import load_scenario, simulate, write_backfill

    began = time.perf_counter()
    traffic = _placed_run(simulate(load_scenario(scenario), hours=hours), end)
    files, samples = write_backfill(traffic, meshes.split(","), out)
    said = _say if fmt in ("table", "wide") else _quiet
    said(f"wrote {samples:,} samples in {len(files)} OpenMetrics files to {out} "
         f"in {time.perf_counter() - began:.1f} s")
    if tsdb:
        from ..prometheus.local import backfill

        backfill(files, tsdb)
        said(f"backfilled them into {tsdb} in {time.perf_counter() - began:.1f} s in all")
    times = traffic.timestamps()
    _record(fmt, out=out, files=len(files), samples=samples, start=times[0], end=times[-1], tsdb=tsdb,
            seconds=round(time.perf_counter() - began, 3))
    return 0


def _say(text: str) -> None:
    print(text)


def _quiet(text: str) -> None:
    pass


def _record(fmt: str, **fields: Any) -> None:
    """With -o json or csv, what a command did as one row of raw values."""
    if fmt in ("json", "csv"):
        import pandas as pd

        from .output import emit

        emit(pd.DataFrame({key: [value] for key, value in fields.items()}), fmt)


def _placed_run(traffic: Any, end: str | None) -> Any:
    """The run as simulated, or moved to end at ``end`` (``now`` or a time)."""
    if end is None:
        return traffic
    from ..sim.sandbox import end_run_at

    return end_run_at(traffic, end)


def _metric_names(traffic: Any, meshes: Sequence[str]) -> set[str]:
    from ..sim.meshes import mesh_families

    names = set()
    for mesh in meshes:
        for family in mesh_families(traffic, mesh):
            suffixes = ("_bucket", "_count", "_sum") if family.type == "histogram" else ("",)
            names |= {family.name + suffix for suffix in suffixes}
    return names


_PUSH_URL_HELP = ("the remote-write URL: http://host:9090/api/v1/write for Prometheus (started with "
                  "--web.enable-remote-write-receiver) or VictoriaMetrics, .../api/v1/push for Mimir")


@sim.command("push", cls=Command, needs=("url",),
             help=f"Send a scenario's whole history to a server by remote write. URL is {_PUSH_URL_HELP}.")
@click.argument("url", required=False)
@_run_options
@click.option("--no-verify", "verify", is_flag=True, flag_value=False, default=True,
              help="Do not count what the server stored afterwards (one query).")
@_end_option
@output_option
@debug_option
def sim_push(url: str, scenario: str, meshes: str, hours: float | None, verify: bool, end: str | None,
             fmt: str) -> int:
    from ..prometheus.client import Prometheus, redact_url
    from ..prometheus.remote_write import count_stored, query_url
    from ..sim import load_scenario, push_backfill, simulate

    began = time.perf_counter()
    names_of_meshes = meshes.split(",")
    traffic = _placed_run(simulate(load_scenario(scenario), hours=hours), end)
    samples = push_backfill(traffic, names_of_meshes, url)
    times = traffic.timestamps()
    span = f"{times[0]:%Y-%m-%d %H:%M} to {times[-1]:%Y-%m-%d %H:%M} UTC"
    where = redact_url(url)
    base = query_url(url) if verify else None
    if verify and base is None:
        print(f"meshlab: not checking what {where} stored: it has no query API at a known place", file=sys.stderr)
    if base is not None:
        # A server may acknowledge samples and drop them (VictoriaMetrics, past its retention): count them.
        start_ms, end_ms = int(traffic.times_ms[0]), int(traffic.times_ms[-1])
        names = _metric_names(traffic, names_of_meshes)
        try:
            with Prometheus(base, timeout=60) as client:
                deadline = time.monotonic() + 10  # writes become searchable within a second or two
                while (stored := count_stored(client, names, start_ms, end_ms)) < samples \
                        and time.monotonic() < deadline:
                    time.sleep(0.5)
        except MeshlabError as exc:
            print(f"meshlab: could not count what {where} stored ({exc}); --no-verify skips the check",
                  file=sys.stderr)
            base, stored = None, samples
        if stored < samples:
            raise MeshlabError(
                f"{where} acknowledged {samples:,} samples ({span}) but holds only {stored:,} of them: "
                "VictoriaMetrics drops samples older than its -retentionPeriod (a month by default) without an "
                "error; push a recent run (--end now) or start it with a longer -retentionPeriod")
    (_say if fmt in ("table", "wide") else _quiet)(
        f"pushed {samples:,} samples ({span}) to {where} in {time.perf_counter() - began:.1f} s"
        + ("; all of them are stored" if base is not None else ""))
    _record(fmt, url=where, samples=samples, start=times[0], end=times[-1], verified=base is not None,
            seconds=round(time.perf_counter() - began, 3))
    return 0


_SANDBOX_HELP = """Start a local Prometheus holding a simulated scenario, print its URL, and serve until
interrupted (Ctrl-C or SIGTERM stop it and remove its data).

The run ends now, so `meshlab stat --prometheus URL --mesh linkerd` shows it at once. Runs are
cached: the same scenario starts in about a second the next time. With --live the run goes on
in real time (Prometheus scrapes the simulator), so `--at now` moves. With --clusters
eu=shop,us=shop it serves a fleet: one VictoriaMetrics fed by a vmagent per cluster (every
series labelled cluster=NAME; one URL printed), or with --store prometheus one Prometheus per
cluster (one `NAME=URL` line each).
"""


def _clusters(ctx: click.Context, param: click.Parameter, value: str | None) -> dict[str, str] | None:
    if value is None:
        return None
    pairs = [part.split("=", 1) for part in value.split(",")]
    if not all(len(pair) == 2 and pair[0] and pair[1] for pair in pairs):
        raise click.BadParameter(f"give NAME=SCENARIO pairs separated by commas, such as eu=shop,us=shop; "
                                 f"got {value!r}")
    return {name: scenario for name, scenario in pairs}


@click.command(cls=Command, help=_SANDBOX_HELP, short_help="Serve a simulated scenario from a local Prometheus.")
@_run_options
@click.option("--load", type=click.Choice(["remote-write", "promtool"]), default="remote-write", show_default=True,
              help="How the run gets into Prometheus.")
@click.option("--no-cache", "cache", is_flag=True, flag_value=False, default=True,
              help="Neither reuse nor keep the run's cached TSDB blocks.")
@click.option("--live", is_flag=True, default=False, help="Go on in real time after the history: `--at now` moves.")
@click.option("--live-hours", type=positive(float, "live hours"), default=6.0, show_default=True,
              help="With --live: how long the live traffic lasts.")
@click.option("--clusters", callback=_clusters, default=None,
              help="A fleet: NAME=SCENARIO pairs, e.g. eu=shop,us=shop (instead of --scenario).")
@click.option("--store", type=click.Choice(["victoria-metrics", "prometheus"]), default="victoria-metrics",
              show_default=True, help="With --clusters: one VictoriaMetrics for all, or one Prometheus each.")
@output_option
@debug_option
def sandbox(scenario: str, meshes: str, hours: float | None, load: str, cache: bool, live: bool, live_hours: float,
            clusters: dict[str, str] | None, store: str, fmt: str) -> int:
    with _stop_on_sigterm():
        try:
            if clusters is not None:
                return _serve_fleet(clusters, meshes, hours, store=store, live=live, live_hours=live_hours,
                                    cache=cache, load=load, fmt=fmt)
            from ..sim.sandbox import Sandbox

            box = Sandbox(scenario, meshes.split(","), hours, cache=cache, load=load, live=live, live_hours=live_hours)
            with box:
                assert box.server is not None
                url = box.server.url
                times = box.traffic.timestamps()
                if fmt in ("json", "csv"):
                    import pandas as pd

                    from .output import emit

                    emit(pd.DataFrame({"url": [url], "scenario": [box.scenario.name], "meshes": [meshes],
                                       "start": [times[0]], "end": [times[-1]], "pid": [box.server.pid],
                                       "live": [live]}), fmt)
                    sys.stdout.flush()
                else:
                    print(url, flush=True)
                # The run ends as the sandbox starts: past a window, "now" holds no traffic (unless live).
                at = "now" if live else f"{times[-1]:%Y-%m-%dT%H:%M:%SZ}"
                print(f"meshlab: sandbox: {box.scenario.name} ({meshes}) from {times[0]:%Y-%m-%d %H:%M} to "
                      f"{times[-1]:%H:%M} UTC{', then live' if live else ''} served at {url} (pid {box.server.pid}); "
                      f"read it with: meshlab stat --prometheus {url} --at {at}; Ctrl-C to stop",
                      file=sys.stderr, flush=True)
                _wait_forever()
        except KeyboardInterrupt:
            print("meshlab: sandbox stopped", file=sys.stderr)
            return 0
    return 0  # pragma: no cover


def _serve_fleet(clusters: dict[str, str], meshes: str, hours: float | None, *, store: str, live: bool,
                 live_hours: float, cache: bool, load: str, fmt: str) -> int:
    from ..sim.fleet import Fleet

    fleet = Fleet(clusters, meshes.split(","), hours, store=store, live=live, live_hours=live_hours, cache=cache,
                  load=load)
    with fleet:
        urls = {name: client.url for name, client in fleet.sources.items()}
        if fmt in ("json", "csv"):
            import pandas as pd

            from .output import emit

            emit(pd.DataFrame({"cluster": list(urls), "url": list(urls.values()), "store": store, "live": live}), fmt)
        elif store == "victoria-metrics":
            print(next(iter(urls.values())))
        else:
            for name, url in urls.items():
                print(f"{name}={url}")
        sys.stdout.flush()
        how = ("read it with by_cluster=True, e.g. meshlab.Istio(URL).traffic(at='now', by_cluster=True)"
               if store == "victoria-metrics" else "read them with meshlab.concat_sources")
        print(f"meshlab: sandbox: fleet of {', '.join(clusters)} ({meshes}){' live' if live else ''} in {store}; "
              f"{how}; Ctrl-C to stop", file=sys.stderr, flush=True)
        _wait_forever()
    return 0  # pragma: no cover

