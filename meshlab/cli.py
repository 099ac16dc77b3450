"""The ``meshlab`` command line: ``demo``, ``query``, ``sim serve``, ``sim backfill`` and ``sim push``."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

from .errors import MeshlabError

__all__ = ["build_parser", "main"]


def _demo(args: argparse.Namespace) -> int:
    """Summarise the bundled mesh-shootout dataset per mesh and write it as CSV."""
    import pandas as pd

    from . import datasets
    from .report import write_csv

    data = datasets.load("mesh-shootout")
    # Each mesh's adapter view of its workloads' inbound traffic, read from the same Prometheus.
    traffic = data.frames["traffic"]
    per = traffic.groupby(["mesh", "name"], observed=True)
    summary = pd.DataFrame({
        "rps": per["rps"].mean(),
        "success_rate": per["success_count"].sum() / per["requests"].sum(),
        "latency_p99_ms": per["latency_p99_ms"].median(),
    }).reset_index().rename(columns={"name": "workload"})
    proxies = data.frames["proxies"]
    cost = proxies.groupby("mesh", observed=True).agg(cpu_cores=("cpu_cores", "mean"),
                                                      memory_mib=("memory_bytes", "mean"))
    cost["memory_mib"] /= 2**20
    # All proxies' CPU, idle cost included, per 1k requests per second the workloads received. Istio's
    # performance page quotes the marginal cost per sidecar instead (0.35 vCPU per 1k rps through it).
    total_cpu = proxies.groupby(["mesh", "timestamp"], observed=True)["cpu_cores"].sum()
    total_rps = traffic.groupby(["mesh", "timestamp"], observed=True)["rps"].sum()
    cost["cores_per_1k_rps"] = (total_cpu / (total_rps / 1000)).groupby(level="mesh", observed=True).median()
    out = write_csv(summary, args.out)
    print(f"mesh-shootout ({data.manifest['hours']:g} h of the synthetic 'shop' app under three meshes)\n")
    print("requests per second, by workload:")
    print(summary.pivot(index="workload", columns="mesh", values="rps").round(1).to_string())
    print("\nsuccess rate by mesh (each mesh classifies failures its own way):")
    print(summary.pivot(index="workload", columns="mesh", values="success_rate").round(4).to_string())
    print("\np99 latency (ms, median over the run) as each workload's own proxy sees it:")
    print(summary.pivot(index="workload", columns="mesh", values="latency_p99_ms").round(1).to_string())
    print("\nproxy cost (mean per pod; all proxies' cores, idle included, per 1k rps received):")
    print(cost.round({"cpu_cores": 4, "memory_mib": 1, "cores_per_1k_rps": 3}).to_string())
    print(f"\nWrote {out}")
    return 0


def _query(args: argparse.Namespace) -> int:
    from .prometheus.client import Prometheus
    from .report import write_csv

    prom = Prometheus(args.url, timeout=args.timeout)
    if args.start is None:
        frame = prom.query(args.promql, time=args.time)
    else:
        frame = prom.query_range(args.promql, args.start, args.end, args.step)
    if args.out:
        print(f"wrote {len(frame)} rows to {write_csv(frame, args.out)}")
    else:
        frame.to_csv(sys.stdout, index=False)
    return 0


def _sim_serve(args: argparse.Namespace) -> int:
    from .sim import SimExporter, load_scenario, simulate

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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, exposed for documentation and tests."""
    parser = argparse.ArgumentParser(prog="meshlab", description="Service-mesh golden signals as tidy data.")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="summarise the bundled mesh-shootout dataset and write a CSV")
    demo.add_argument("--out", default="out/mesh-shootout-summary.csv", help="CSV to write (default: %(default)s)")
    demo.set_defaults(run=_demo)

    query = commands.add_parser("query", help="run a PromQL query and write a tidy CSV")
    query.add_argument("url", help="Prometheus base URL, e.g. http://127.0.0.1:9090")
    query.add_argument("promql", help="the PromQL expression")
    query.add_argument("--time", default=None, help="instant query time (default: the server's now)")
    query.add_argument("--start", default=None, help="range start, e.g. -1h or an ISO time")
    query.add_argument("--end", default="now", help="range end (default: %(default)s)")
    query.add_argument("--step", default="1m", help="range step (default: %(default)s)")
    query.add_argument("--timeout", type=float, default=30.0, help="seconds (default: %(default)s)")
    query.add_argument("-o", "--out", default=None, help="CSV file to write (default: stdout)")
    query.set_defaults(run=_query)

    sim = commands.add_parser("sim", help="the traffic simulator").add_subparsers(dest="sim_command", required=True)
    serve = sim.add_parser("serve", help="serve a scenario's metrics on /metrics for a real Prometheus to scrape")
    backfill = sim.add_parser("backfill", help="write a scenario's metrics as OpenMetrics (and TSDB blocks)")
    push = sim.add_parser("push", help="send a scenario's whole history to a server by remote write")
    for sub in (serve, backfill, push):
        sub.add_argument("--scenario", default="shop", help="built-in name or YAML/TOML file (default: %(default)s)")
        sub.add_argument("--meshes", default="linkerd,istio,consul", help="comma-separated (default: %(default)s)")
        sub.add_argument("--hours", type=float, default=None, help="length of the run (default: the scenario's)")
    serve.add_argument("--speed", type=float, default=1.0, help="simulated seconds per second (default: 1)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=9464)
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except MeshlabError as exc:
        print(f"meshlab: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
