"""Benchmark: a simulated fleet read through VictoriaMetrics (one store) and through Prometheus (one per cluster).

``--workloads`` workloads (a generated layered application, Istio) in each of ``--clusters``
clusters, ``--days`` of history at a 1-minute scrape interval. The fleet is loaded by remote
write into one VictoriaMetrics (every series labelled ``cluster``) and into one Prometheus
per cluster; then the ``traffic``, ``edges`` and ``proxies`` frames are read over the whole
history at 1-minute steps: from VictoriaMetrics with ``by_cluster=True`` (one query per
signal for the fleet), from the Prometheus servers with :func:`meshlab.concat_sources`.
A day at 1-minute steps is read in time pieces of about ``piece_rows`` rows each
(:mod:`meshlab.meshes.pieces`), one query per signal per piece.

Reported per store: samples loaded and load time; per frame: query time, rows, requests
issued, bytes per row of the frame; meshlab's peak RSS while reading (the peak is reset
through ``/proc/self/clear_refs`` before each read) and each server's peak RSS (``VmHWM``).

Usage: ``python bench/bench_fleet.py --workloads 250 [--clusters 4] [--days 1] [--stores victoria-metrics,prometheus]``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

FRAMES = ("traffic", "edges", "proxies")


def status_kib(pid: int | str, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := current RSS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", type=int, default=250)
    parser.add_argument("--clusters", type=int, default=4)
    parser.add_argument("--days", type=float, default=1.0)
    parser.add_argument("--stores", default="victoria-metrics,prometheus")
    parser.add_argument("--json", default=None, help="Also write the results to this file.")
    args = parser.parse_args()

    import meshlab as ml
    from meshlab.prometheus.local import LocalPrometheus, LocalVictoriaMetrics
    from meshlab.sim import simulate
    from meshlab.sim.fleet import CLUSTER_LABEL, cluster_scenario
    from meshlab.sim.generate import layered_scenario
    from meshlab.sim.output import push_backfill
    from meshlab.sim.sandbox import end_run_at

    class Counting(ml.Prometheus):
        sent = 0

        def _exchange(self, method, url, data, headers):  # type: ignore[no-untyped-def]
            Counting.sent += 1
            return super()._exchange(method, url, data, headers)

    began = time.perf_counter()
    base = layered_scenario(args.workloads, hours=24 * args.days, interval=60.0)
    names = [f"c{i}" for i in range(args.clusters)]
    end = ml.timeutil.utc_now().floor("1min")
    fleet = {name: end_run_at(simulate(cluster_scenario(base, name)), end) for name in names}
    start = fleet[names[0]].timestamps()[0]
    simulated = time.perf_counter() - began
    print(f"simulated {args.clusters} x {args.workloads} workloads x {args.days:g} d in {simulated:.1f} s", flush=True)
    results: dict[str, Any] = {"workloads": args.workloads, "clusters": args.clusters, "days": args.days,
                               "simulate_s": round(simulated, 1), "stores": {}}
    read = {"start": start + ml.timeutil.to_timedelta("5m"), "end": end, "step": "1m", "window": "5m"}

    for store in args.stores.split(","):
        servers: list[Any] = []
        try:
            t = time.perf_counter()
            samples = 0
            if store == "victoria-metrics":
                vm = LocalVictoriaMetrics()
                servers.append(vm.start())
                for name, traffic in fleet.items():
                    samples += push_backfill(traffic, ["istio"], vm.client, labels={CLUSTER_LABEL: name})
                vm.force_flush()
                sources = {"all": vm.url}
            else:
                sources = {}
                for name, traffic in fleet.items():
                    prom = LocalPrometheus(remote_write=True)
                    servers.append(prom.start())
                    samples += push_backfill(traffic, ["istio"], prom.client)
                    sources[name] = prom.url
            loaded = time.perf_counter() - t
            print(f"{store}: loaded {samples:,} samples in {loaded:.1f} s", flush=True)
            row: dict[str, Any] = {"samples": samples, "load_s": round(loaded, 1), "frames": {}}
            for frame in FRAMES:
                Counting.sent = 0
                reset_peak()
                before = status_kib("self", "VmRSS")
                t = time.perf_counter()
                if store == "victoria-metrics":
                    client = Counting(sources["all"], params={"nocache": "1"}, timeout=600)
                    result = getattr(ml.Istio(client), frame)(by_cluster=True, **read)
                else:
                    clients = {name: Counting(url, timeout=600) for name, url in sources.items()}
                    result = ml.concat_sources(clients, frame, mesh="istio", **read)
                seconds = time.perf_counter() - t
                peak = status_kib("self", "VmHWM")
                row["frames"][frame] = {
                    "seconds": round(seconds, 1), "rows": len(result), "requests": Counting.sent,
                    "bytes_per_row": round(float(result.memory_usage(deep=True).sum()) / max(len(result), 1), 1),
                    "meshlab_peak_mib": round(peak / 1024, 1), "meshlab_peak_above_start_mib":
                        round((peak - before) / 1024, 1)}
                print(f"{store}: {frame}: {row['frames'][frame]}", flush=True)
                del result
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
