"""Benchmark: generate simulated mesh metrics and load them into Prometheus, both ways.

Simulates a generated layered application (``--workloads``, default 30) for ``--hours``
(default 24) at a 15 s scrape interval and loads it for each mesh in ``--meshes`` into a
real Prometheus, measured side by side in one run:

* **promtool**: write OpenMetrics (one file per 2-hour block), then
  ``promtool tsdb create-blocks-from openmetrics``, one process per CPU;
* **remote write**: start ``prometheus --web.enable-remote-write-receiver`` and push the run
  (:func:`meshlab.sim.push_backfill`), then snapshot its TSDB into blocks (what the sandbox
  caches).

Both are checked to hold every sample. Prints the time of each stage and the ratio.

Usage: ``python bench/bench_sim.py [--workloads 30] [--hours 24] [--meshes linkerd]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from meshlab.prometheus.local import LocalPrometheus, backfill
from meshlab.sim import layered_scenario, push_backfill, simulate, write_backfill

try:  # the tests' sample count, when run from a checkout (make bench)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.samples import stored_samples
finally:
    sys.path.pop(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", type=int, default=30)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--meshes", default="linkerd")
    args = parser.parse_args()
    meshes = args.meshes.split(",")
    scenario = layered_scenario(args.workloads, hours=args.hours)
    with tempfile.TemporaryDirectory(prefix="meshlab-bench-sim-") as tmp:
        t0 = time.perf_counter()
        traffic = simulate(scenario)
        simulated = time.perf_counter() - t0
        at = traffic.times_ms[-1] / 1000
        lookback = f"{int(args.hours * 3600) + 60}s"

        t0 = time.perf_counter()
        files, samples = write_backfill(traffic, meshes, Path(tmp) / "om")
        t1 = time.perf_counter()
        size = sum(f.stat().st_size for f in files)
        blocks = Path(tmp) / "promtool-blocks"
        blocks.mkdir()
        backfill(files, blocks)
        t2 = time.perf_counter()
        for f in files:
            f.unlink()
        with LocalPrometheus(blocks=blocks) as server:
            assert stored_samples(server.client, at, lookback) == samples, "promtool lost samples"

        t3 = time.perf_counter()
        with LocalPrometheus(remote_write=True) as server:
            t4 = time.perf_counter()
            pushed = push_backfill(traffic, meshes, server.client)
            t5 = time.perf_counter()
            server.snapshot(Path(tmp) / "pushed-blocks")
            t6 = time.perf_counter()
            stored = stored_samples(server.client, at, lookback)
            assert pushed == samples and stored == samples, "remote write lost samples"

    pods = sum(len(p) for p in traffic.pods.values())
    promtool_total = simulated + (t2 - t0)
    push_total = simulated + (t6 - t3)
    print(f"{args.workloads} workloads ({pods} pods, {len(scenario.edges)} edges), {args.hours:g} h at 15 s, "
          f"meshes: {args.meshes}; {samples / 1e6:.1f} M samples; {os.cpu_count()} CPUs")
    print(f"simulate                    {simulated:7.1f} s")
    print("promtool")
    print(f"  render + write OpenMetrics {t1 - t0:7.1f} s   {size / 1e9:.2f} GB ({size / samples:.0f} B/sample)")
    print(f"  promtool create-blocks     {t2 - t1:7.1f} s   {samples / (t2 - t1) / 1e6:.2f} M samples/s "
          f"({len(files)} files, {min(len(files), os.cpu_count() or 1)} at a time)")
    print(f"  total                      {promtool_total:7.1f} s")
    print("remote write")
    print(f"  start prometheus           {t4 - t3:7.1f} s")
    print(f"  render + encode + push     {t5 - t4:7.1f} s   {samples / (t5 - t4) / 1e6:.2f} M samples/s")
    print(f"  snapshot to blocks         {t6 - t5:7.1f} s")
    print(f"  total                      {push_total:7.1f} s")
    print(f"remote write is {promtool_total / push_total:.1f}x faster than promtool")


if __name__ == "__main__":
    main()
