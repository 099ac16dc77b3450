"""Benchmark: a simulated fleet read through VictoriaMetrics (one store) and through Prometheus (one per cluster).

``--workloads`` workloads (a generated layered application, Istio) in each of ``--clusters``
clusters, ``--days`` of history at a 1-minute scrape interval. The fleet is loaded by remote
write into one VictoriaMetrics (every series labelled ``cluster``) and into one Prometheus
per cluster; then the ``traffic``, ``edges`` and ``proxies`` frames are read over the whole
history at 1-minute steps: from VictoriaMetrics with ``by_cluster=True`` (one query per
signal for the fleet), from the Prometheus servers with :func:`meshlab.concat_sources`.
A long span is read in time pieces of about ``piece_rows`` rows each
(:mod:`meshlab.meshes.pieces`), one query per signal per piece.

Each cluster is simulated and pushed by a worker process (two at a time), and each frame is
read by a fresh process that only imports meshlab and reads: its peak RSS (``VmHWM``) is
meshlab's, not the simulator's. Reported per store: samples loaded and load time; per frame:
query time, rows, requests issued, bytes per row of the frame, meshlab's peak RSS; each
server's peak RSS.

Usage: ``python bench/bench_fleet.py --workloads 250 [--clusters 4] [--days 1] [--stores victoria-metrics,prometheus]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

FRAMES = ("traffic", "edges", "proxies")


def status_kib(pid: int | str, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def load_cluster(name: str, workloads: int, days: float, end: str, url: str, label: bool) -> tuple[int, float]:
    """Simulate one cluster and push it to ``url``; the samples sent and the seconds it took (in a worker)."""
    import meshlab as ml
    from meshlab.sim import simulate
    from meshlab.sim.fleet import CLUSTER_LABEL, cluster_scenario
    from meshlab.sim.generate import layered_scenario
    from meshlab.sim.output import push_backfill
    from meshlab.sim.sandbox import end_run_at

    began = time.perf_counter()
    base = layered_scenario(workloads, hours=24 * days, interval=60.0)
    traffic = end_run_at(simulate(cluster_scenario(base, name)), ml.timeutil.to_timestamp(end))
    samples = push_backfill(traffic, ["istio"], ml.Prometheus(url, timeout=600),
                            labels={CLUSTER_LABEL: name} if label else None)
    return samples, time.perf_counter() - began


def read_one(args: argparse.Namespace) -> None:
    """Read one frame (in its own process) and print what it cost as JSON."""
    import meshlab as ml

    class Counting(ml.Prometheus):
        sent = 0

        def _exchange(self, method, url, data, headers):  # type: ignore[no-untyped-def]
            Counting.sent += 1
            return super()._exchange(method, url, data, headers)

    sources = json.loads(args.read)
    read = {"start": args.start, "end": args.end, "step": "1m", "window": "5m"}
    before = status_kib("self", "VmRSS")
    t = time.perf_counter()
    if "all" in sources:
        client = Counting(sources["all"], params={"nocache": "1"}, timeout=600)
        result = getattr(ml.Istio(client), args.frame)(by_cluster=True, **read)
    else:
        clients = {name: Counting(url, timeout=600) for name, url in sources.items()}
        result = ml.concat_sources(clients, args.frame, mesh="istio", **read)
    seconds = time.perf_counter() - t
    peak = status_kib("self", "VmHWM")
    print(json.dumps({
        "seconds": round(seconds, 1), "cpu_s": round(time.process_time(), 1), "rows": len(result),
        "requests": Counting.sent,
        "bytes_per_row": round(float(result.memory_usage(deep=True).sum()) / max(len(result), 1), 1),
        "frame_mib": round(float(result.memory_usage(deep=True).sum()) / 2**20, 1),
        "meshlab_peak_mib": round(peak / 1024, 1), "rss_before_read_mib": round(before / 1024, 1)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", type=int, default=250)
    parser.add_argument("--clusters", type=int, default=4)
    parser.add_argument("--days", type=float, default=1.0)
    parser.add_argument("--stores", default="victoria-metrics,prometheus")
    parser.add_argument("--frames", default=",".join(FRAMES))
    parser.add_argument("--json", default=None, help="Also write the results to this file.")
    parser.add_argument("--read", help=argparse.SUPPRESS)  # internal: read one frame from these sources
    parser.add_argument("--frame", help=argparse.SUPPRESS)
    parser.add_argument("--start", help=argparse.SUPPRESS)
    parser.add_argument("--end", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.read:
        return read_one(args)

    import meshlab as ml
    from meshlab.prometheus.local import LocalPrometheus, LocalVictoriaMetrics

    began = time.perf_counter()
    names = [f"c{i}" for i in range(args.clusters)]
    end = ml.timeutil.utc_now().floor("1min")
    start = end - ml.timeutil.to_timedelta(f"{round(args.days * 86400)}s") + ml.timeutil.to_timedelta("5m")
    results: dict[str, Any] = {"workloads": args.workloads, "clusters": args.clusters, "days": args.days,
                               "stores": {}}
    for store in args.stores.split(","):
        servers: list[Any] = []
        try:
            t = time.perf_counter()
            if store == "victoria-metrics":
                vm = LocalVictoriaMetrics()
                servers.append(vm.start())
                targets = {name: vm.url for name in names}
            else:
                targets = {}
                for name in names:
                    prom = LocalPrometheus(remote_write=True)
                    servers.append(prom.start())
                    targets[name] = prom.url
            with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:
                loads = list(pool.map(load_cluster, names, [args.workloads] * len(names), [args.days] * len(names),
                                      [str(end)] * len(names), [targets[n] for n in names],
                                      [store == "victoria-metrics"] * len(names)))
            if store == "victoria-metrics":
                vm.force_flush()
                sources = {"all": vm.url}
            else:
                sources = targets
            loaded = time.perf_counter() - t
            samples = sum(n for n, _ in loads)
            print(f"{store}: simulated and loaded {samples:,} samples in {loaded:.1f} s", flush=True)
            row: dict[str, Any] = {"samples": samples, "load_s": round(loaded, 1), "frames": {}}
            for frame in args.frames.split(","):
                out = subprocess.run([sys.executable, __file__, "--read", json.dumps(sources), "--frame", frame,
                                      "--start", str(start), "--end", str(end)],
                                     capture_output=True, text=True, env={**os.environ}, check=False)
                if out.returncode:
                    raise SystemExit(f"{store}: reading {frame} failed:\n{out.stderr[-3000:]}")
                row["frames"][frame] = json.loads(out.stdout.strip().splitlines()[-1])
                print(f"{store}: {frame}: {row['frames'][frame]}", flush=True)
            row["server_peak_mib"] = [round(status_kib(s.pid, "VmHWM") / 1024, 1) for s in servers]
            print(f"{store}: server peak RSS (MiB): {row['server_peak_mib']}", flush=True)
            results["stores"][store] = row
        finally:
            for server in servers:
                server.stop()
    results["total_s"] = round(time.perf_counter() - began, 1)
    print(json.dumps(results, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
