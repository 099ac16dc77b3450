"""The ``meshlab`` command line: ``demo``, ``query``, ``sim serve``, ``sim backfill`` and ``sim push``."""

from __future__ import annotations

import argparse
import errno
import math
import os
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, NoReturn

from . import __version__
from .errors import InvalidArgument, MeshlabError

__all__ = ["build_parser", "main"]

# options whose value may start with "-" (a relative time such as -1h), which argparse takes for an option
_TIME_OPTIONS = ("--time", "--start", "--end")


def _demo(args: argparse.Namespace) -> int:
    """Summarise the bundled mesh-shootout dataset per mesh, write it as CSV and build the full report."""
    from .report import run_demo

    return run_demo(args.out, args.report)


def _check_out(out: str) -> None:
    """Refuse an output path that cannot be written before doing the work."""
    path = Path(out)
    if path.is_dir():
        raise InvalidArgument(f"-o {out}: that is a directory; give a file name such as {path / 'out.csv'}")
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise InvalidArgument(f"-o {out}: {parent} is a file, not a directory")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise InvalidArgument(f"-o {out}: cannot create files in {parent} (permission denied)")
            return


def _query(args: argparse.Namespace) -> int:
    from .prometheus.client import Prometheus
    from .report import write_csv, write_csv_to

    if args.out:
        _check_out(args.out)
    prom = Prometheus(args.url, timeout=args.timeout)
    if args.start is None:
        frame = prom.query(args.promql, time=args.time)
    else:
        frame = prom.query_range(args.promql, args.start, args.end, args.step)
    if args.out:
        print(f"wrote {len(frame)} rows to {write_csv(frame, args.out, safe=not args.unsafe_csv)}")
    else:
        write_csv_to(frame, sys.stdout, safe=not args.unsafe_csv)
    if not len(frame):  # exit 0: an empty answer is an answer, and scripts can test for rows
        when = f"at {args.time}" if args.start is None and args.time else \
            "now" if args.start is None else f"from {args.start} to {args.end}"
        print(f"meshlab: note: the query matched no series {when}; check the metric and label names "
              "(list metrics with: meshlab query URL 'count by (__name__) ({__name__=~\".+\"})') "
              "and the time range (--start -1h for a range)", file=sys.stderr)
    return 0


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


def _sim_serve(args: argparse.Namespace) -> int:
    from .sim import SimExporter, load_scenario, simulate

    _check_listen(args.host, args.port)
    traffic = simulate(load_scenario(args.scenario), hours=args.hours)
    with SimExporter(traffic, args.meshes.split(","), speed=args.speed, host=args.host, port=args.port) as exporter:
        print(f"serving {args.scenario} ({args.meshes}) at {exporter.url}; Ctrl-C to stop", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0


def _sim_backfill(args: argparse.Namespace) -> int:
    from .sim import load_scenario, simulate, write_backfill

    began = time.perf_counter()
    traffic = _placed_run(simulate(load_scenario(args.scenario), hours=args.hours), args.end)
    files, samples = write_backfill(traffic, args.meshes.split(","), args.out)
    print(f"wrote {samples:,} samples in {len(files)} OpenMetrics files to {args.out} "
          f"in {time.perf_counter() - began:.1f} s")
    if args.tsdb:
        from .prometheus.local import backfill

        backfill(files, args.tsdb)
        print(f"backfilled them into {args.tsdb} in {time.perf_counter() - began:.1f} s in all")
    return 0


def _placed_run(traffic: Any, end: str | None) -> Any:
    """The run as simulated, or moved to end at ``end`` (``now`` or a time)."""
    if end is None:
        return traffic
    from .sim.sandbox import end_run_at

    return end_run_at(traffic, end)


def _metric_names(traffic: Any, meshes: Sequence[str]) -> set[str]:
    from .sim.meshes import mesh_families

    names = set()
    for mesh in meshes:
        for family in mesh_families(traffic, mesh):
            suffixes = ("_bucket", "_count", "_sum") if family.type == "histogram" else ("",)
            names |= {family.name + suffix for suffix in suffixes}
    return names


def _sim_push(args: argparse.Namespace) -> int:
    from .prometheus.client import Prometheus, redact_url
    from .prometheus.remote_write import count_stored, query_url
    from .sim import load_scenario, push_backfill, simulate

    began = time.perf_counter()
    meshes = args.meshes.split(",")
    traffic = _placed_run(simulate(load_scenario(args.scenario), hours=args.hours), args.end)
    samples = push_backfill(traffic, meshes, args.url)
    times = traffic.timestamps()
    span = f"{times[0]:%Y-%m-%d %H:%M} to {times[-1]:%Y-%m-%d %H:%M} UTC"
    where = redact_url(args.url)
    base = query_url(args.url) if args.verify else None
    if args.verify and base is None:
        print(f"meshlab: not checking what {where} stored: it has no query API at a known place",
              file=sys.stderr)
    if base is not None:
        # A server may acknowledge samples and drop them (VictoriaMetrics, past its retention): count them.
        start_ms, end_ms = int(traffic.times_ms[0]), int(traffic.times_ms[-1])
        names = _metric_names(traffic, meshes)
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
    print(f"pushed {samples:,} samples ({span}) to {where} in {time.perf_counter() - began:.1f} s"
          + ("; all of them are stored" if base is not None else ""))
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors on one line: ``meshlab: error: ...``."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("meshlab").strip()
        where = f"{command}: " if command else ""
        self.exit(2, f"meshlab: error: {where}{message} (see: {self.prog} --help)\n")


def _positive(kind: type[float] | type[int], what: str) -> argparse._ActionType:
    def convert(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of {what}") from None
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"must be a positive number of {what}, not {text}")
        return value
    return convert


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535 (0: any free port), not {port}")
    return port


def _meshes(text: str) -> str:
    """'linkerd, istio' -> 'linkerd,istio': spaces around the commas are allowed."""
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of meshes such as linkerd,istio")
    return ",".join(names)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, exposed for documentation and tests."""
    parser = _Parser(prog="meshlab", description="Service-mesh golden signals as tidy data.")
    parser.add_argument("--version", action="version", version=f"meshlab {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="summarise the bundled mesh-shootout dataset, write a CSV and a report")
    demo.add_argument("--out", default="out/mesh-shootout-summary.csv", help="CSV to write (default: %(default)s)")
    demo.add_argument("--report", default="meshlab-report", help="report folder to write (default: %(default)s)")
    demo.set_defaults(run=_demo)

    query = commands.add_parser(
        "query", help="run a PromQL query and write a tidy CSV",
        description="Run a PromQL query and write a tidy CSV (timestamps ISO 8601 in UTC, text cells a spreadsheet "
                    "would evaluate prefixed with a quote). A query that matches nothing writes the header, says "
                    "so on stderr and exits 0.")
    query.add_argument("url", help="Prometheus base URL, e.g. http://127.0.0.1:9090")
    query.add_argument("promql", help="the PromQL expression")
    query.add_argument("--time", default=None, help="instant query time, e.g. -5m (default: the server's now)")
    query.add_argument("--start", default=None, help="range start, e.g. -1h or an ISO time")
    query.add_argument("--end", default="now", help="range end (default: %(default)s)")
    query.add_argument("--step", default="1m", help="range step (default: %(default)s)")
    query.add_argument("--timeout", type=_positive(float, "seconds"), default=30.0,
                       help="seconds (default: %(default)s)")
    query.add_argument("-o", "--out", default=None, help="CSV file to write (default: stdout)")
    query.add_argument("--unsafe-csv", action="store_true",
                       help="write text cells exactly as they are, even those starting with = + - @")
    query.set_defaults(run=_query)

    sim = commands.add_parser("sim", help="the traffic simulator").add_subparsers(dest="sim_command", required=True)
    serve = sim.add_parser("serve", help="serve a scenario's metrics on /metrics for a real Prometheus to scrape")
    backfill = sim.add_parser("backfill", help="write a scenario's metrics as OpenMetrics (and TSDB blocks)")
    push = sim.add_parser("push", help="send a scenario's whole history to a server by remote write")
    for sub in (serve, backfill, push):
        sub.add_argument("--scenario", default="shop", help="built-in name or YAML/TOML file (default: %(default)s)")
        sub.add_argument("--meshes", type=_meshes, default="linkerd,istio,consul",
                         help="comma-separated (default: %(default)s)")
        sub.add_argument("--hours", type=_positive(float, "hours"), default=None,
                         help="length of the run (default: the scenario's)")
    serve.add_argument("--speed", type=_positive(float, "simulated seconds per second"), default=1.0,
                       help="simulated seconds per second (default: 1)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_port, default=9464)
    serve.set_defaults(run=_sim_serve)
    backfill.add_argument("--out", default="out/openmetrics", help="directory for the files (default: %(default)s)")
    backfill.add_argument("--tsdb", default=None, help="also backfill them into this TSDB directory with promtool")
    backfill.set_defaults(run=_sim_backfill)
    push.add_argument("url", help="the remote-write URL: http://host:9090/api/v1/write for Prometheus (started with "
                                  "--web.enable-remote-write-receiver) or VictoriaMetrics, .../api/v1/push for Mimir")
    push.add_argument("--no-verify", dest="verify", action="store_false",
                      help="do not count what the server stored afterwards (one query)")
    for sub in (backfill, push):
        sub.add_argument("--end", default=None,
                         help="end the run at this time: 'now' or an ISO time (default: the scenario's own date). "
                              "Prometheus takes samples at most an hour older than the newest it holds")
    push.set_defaults(run=_sim_push)
    return parser


def _long_options(parser: argparse.ArgumentParser) -> set[str]:
    """Every ``--option`` of a parser and its subcommands."""
    found: set[str] = set()
    for action in parser._actions:
        found.update(o for o in action.option_strings if o.startswith("--"))
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _long_options(sub)
    return found


def _join_time_values(argv: Sequence[str], parser: argparse.ArgumentParser | None = None) -> list[str]:
    """``--start -1h`` -> ``--start=-1h``: argparse reads a value starting with '-' as an option."""
    options = _long_options(parser or build_parser())
    out: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            out.extend(args[i:])
            break
        # argparse accepts unique prefixes (--star): join those too
        matches = {arg} if arg in options else {o for o in options if o.startswith(arg)} if arg.startswith("--") \
            else set()
        takes_time = len(matches) == 1 and matches <= set(_TIME_OPTIONS)
        if takes_time and i + 1 < len(args) and args[i + 1].startswith("-") and args[i + 1] != "--":
            out.append(f"{arg}={args[i + 1]}")
            i += 2
            continue
        out.append(arg)
        i += 1
    return out


def _one_line(message: str) -> str:
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


def _describe(error: OSError) -> str:
    """An OSError as one line: what failed, on which file."""
    reason = error.strerror or str(error) or type(error).__name__
    names = [name for name in (error.filename, error.filename2) if name is not None]
    if names:
        return f"{' -> '.join(map(str, names))}: {reason}"
    return reason if error.strerror is None else f"{reason} ({type(error).__name__})"


def main(argv: Sequence[str] | None = None, *, stderr: IO[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    Errors are one line on stderr, ``meshlab: error: ...``, with exit status 2; no traceback
    for bad input, an unreachable server or a file that cannot be read or written.
    """
    err = stderr or sys.stderr
    parser = build_parser()
    args = parser.parse_args(_join_time_values(sys.argv[1:] if argv is None else argv, parser))
    try:
        return int(args.run(args))
    except MeshlabError as exc:
        message = _one_line(str(exc))
    except OSError as exc:
        message = _describe(exc)
    except KeyboardInterrupt:
        return 130
    print(f"meshlab: error: {message}", file=err)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
