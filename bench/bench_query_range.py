"""Benchmark: one query_range into a DataFrame, meshlab against its peers, in one run.

Starts one real Prometheus (Debian's, from PATH) backfilled with 4,680 series x 720 steps,
then runs the same range query at three sizes with:

- ``raw``: requests without compression plus ``orjson.loads`` (gc paused) - the floor;
- ``meshlab``: ``meshlab.Prometheus.query_range`` (tidy long frame);
- ``prometheus-pandas``: ``Prometheus.query_range`` (wide frame);
- ``prometheus-api-client``: ``custom_query_range`` + ``MetricRangeDataFrame``.

Every measurement runs in a fresh subprocess: imports, then one small warm-up query (a
notebook pays first-call costs once), then the measured query. Peak memory is the
process's peak RSS during that query above its RSS before it (the peak counter is reset
through /proc/self/clear_refs). Times and peaks are the medians of the repeats.

Usage: ``python bench/bench_query_range.py [--sizes small,medium,large] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

START_S = 1_700_000_000
STEP_S = 15
STEPS = 720
SERIES = 4_680
# size -> (selector, number of series)
SIZES = {
    "small": ('bench_metric{grp="s"}', 14),
    "medium": ('bench_metric{grp=~"s|m"}', 700),
    "large": ("bench_metric", SERIES),
}
CLIENTS = ("raw", "meshlab", "meshlab-gzip", "prometheus-pandas", "prometheus-api-client")


def write_dataset(path: Path) -> None:
    from meshlab.openmetrics import Series, write_openmetrics

    rng = np.random.default_rng(42)
    times = START_S * 1000 + np.arange(STEPS, dtype=np.int64) * STEP_S * 1000

    def series():
        for i in range(SERIES):
            grp = "s" if i < 14 else "m" if i < 700 else "l"
            values = np.round(np.cumsum(rng.exponential(3.0, STEPS)), 3)
            yield Series("bench_metric", {
                "namespace": f"ns-{i % 20}", "pod": f"app-{i // 20}-{i:05d}", "container": "istio-proxy",
                "job": "kubernetes-cadvisor", "grp": grp,
            }, times, values)

    write_openmetrics(path, series())


CHILD = r"""
import gc, json, sys, time
url, client, query, start, end, step, warmup = sys.argv[1:8]
import numpy, pandas, requests, orjson
if client.startswith("meshlab"):
    import meshlab.prometheus.client, meshlab.prometheus.parse, pyarrow.csv
    prom = meshlab.prometheus.client.Prometheus(url, compress=client.endswith("gzip"), timeout=300)
elif client == "prometheus-pandas":
    from prometheus_pandas.query import Prometheus
    prom = Prometheus(url)
elif client == "prometheus-api-client":
    from prometheus_api_client import PrometheusConnect, MetricRangeDataFrame
    import datetime as dt
    prom = PrometheusConnect(url=url, disable_ssl=True)

def run(query):
    if client == "raw":
        r = requests.get(url + "/api/v1/query_range", params=dict(query=query, start=start, end=end, step=step),
                         headers={"Accept-Encoding": "identity"}, stream=True)
        body = b"".join(r.iter_content(1 << 20))
        gc.disable(); doc = orjson.loads(body); gc.enable()
        return sum(len(s["values"]) for s in doc["data"]["result"]), {"body_bytes": len(body)}
    if client.startswith("meshlab"):
        df = prom.query_range(query, float(start), float(end), step)
        return len(df), {"frame_bytes": int(df.memory_usage(deep=True).sum())}
    if client == "prometheus-pandas":
        df = prom.query_range(query, float(start), float(end), step)
        return int(df.notna().sum().sum()), {"frame_bytes": int(df.memory_usage(deep=True).sum())}
    res = prom.custom_query_range(query, start_time=dt.datetime.fromtimestamp(float(start), dt.timezone.utc),
                                  end_time=dt.datetime.fromtimestamp(float(end), dt.timezone.utc), step=step)
    df = MetricRangeDataFrame(res)
    return len(df), {"frame_bytes": int(df.memory_usage(deep=True).sum())}

def status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))

run(warmup)  # first-call costs (lazy imports, thread pools) are not what a notebook pays each time
gc.collect()
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak-RSS counter (VmHWM) to the current RSS
base = status("VmRSS")
t0 = time.perf_counter()
points, out = run(query)
elapsed = time.perf_counter() - t0
out.update(seconds=elapsed, points=points, peak_bytes=max(status("VmHWM") - base, 0))
print(json.dumps(out))
"""


def measure(url: str, client: str, query: str, repeat: int) -> dict:
    end = START_S + (STEPS - 1) * STEP_S
    runs = []
    for _ in range(repeat):
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, url, client, query, str(START_S), str(end), str(STEP_S), SIZES["small"][0]],
            capture_output=True, text=True, timeout=900,
        )
        if proc.returncode != 0:
            raise SystemExit(f"{client} failed:\n{proc.stderr[-2000:]}")
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    result = dict(runs[0])
    for key in ("seconds", "peak_bytes"):
        if key in result:
            result[key] = statistics.median(r[key] for r in runs)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="small,medium,large")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--clients", default=",".join(CLIENTS))
    args = parser.parse_args()
    sizes = [s for s in args.sizes.split(",") if s]
    clients = [c for c in args.clients.split(",") if c]

    from meshlab.prometheus.local import LocalPrometheus

    with tempfile.TemporaryDirectory(prefix="meshlab-bench-") as tmp:
        data = Path(tmp) / "bench.om"
        t0 = time.perf_counter()
        write_dataset(data)
        t1 = time.perf_counter()
        with LocalPrometheus(openmetrics=data) as server:
            t2 = time.perf_counter()
            print(f"dataset: {SERIES} series x {STEPS} steps; wrote OpenMetrics in {t1 - t0:.1f} s, "
                  f"backfilled and started Prometheus in {t2 - t1:.1f} s")
            for size in sizes:
                query, n_series = SIZES[size]
                results = {c: measure(server.url, c, query, args.repeat) for c in clients}
                report(size, n_series, results)


def report(size: str, n_series: int, results: dict[str, dict]) -> None:
    raw = results.get("raw")
    mine = results.get("meshlab")
    points = (mine or raw or {}).get("points", 0)
    header = f"\n== {size}: {n_series} series, {points:,} points"
    if raw:
        header += f", body {raw['body_bytes'] / 1e6:.1f} MB uncompressed"
    print(header)
    print(f"{'client':24} {'seconds':>8} {'vs meshlab':>10} {'peak MB':>8} {'peak/body':>9} {'frame B/pt':>10}")
    for client, r in results.items():
        ratio = f"{r['seconds'] / mine['seconds']:.2f}x" if mine else "-"
        per_point = f"{r['frame_bytes'] / r['points']:.1f}" if "frame_bytes" in r and r["points"] else "-"
        peak_ratio = f"{r['peak_bytes'] / raw['body_bytes']:.2f}" if raw else "-"
        peak_mb = r["peak_bytes"] / 1e6
        print(f"{client:24} {r['seconds']:8.3f} {ratio:>10} {peak_mb:8.1f} {peak_ratio:>9} {per_point:>10}")
    if not (mine and raw):
        return
    targets = []
    if "prometheus-pandas" in results:
        targets.append(f"{results['prometheus-pandas']['seconds'] / mine['seconds']:.1f}x faster than "
                       "prometheus-pandas (target >= 5x)")
    targets += [f"{mine['seconds'] / raw['seconds']:.2f}x the raw fetch+parse (target <= 1.5x)",
                f"frame {mine['frame_bytes'] / mine['points']:.1f} B/point (target <= 32)",
                f"peak memory {mine['peak_bytes'] / raw['body_bytes']:.2f}x the body (target <= 5x)"]
    print("meshlab: " + "; ".join(targets))


if __name__ == "__main__":
    main()
