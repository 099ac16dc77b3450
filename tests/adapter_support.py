"""What the adapter tests share: keyed comparison, request counting, and the ground truth over a window.

The simulated scrape interval is 15 s; a 1 m window at a 1 m step covers four intervals.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from meshlab.sim.dist import weighted_quantile

TCP_KEYS = ["timestamp", "src_namespace", "src_name", "dst_namespace", "dst_name", "side"]


def by_key(frame: pd.DataFrame, keys: list[str], value: str) -> pd.Series:
    out = frame.astype({k: str for k in keys if k != "timestamp"}).set_index(keys)[value]
    return out.sort_index()


def count_requests(prom, monkeypatch) -> list:
    calls: list = []
    original = prom.session.request
    monkeypatch.setattr(prom.session, "request", lambda *a, **k: calls.append(a[1]) or original(*a, **k))
    return calls


def windowed_truth(frame: pd.DataFrame, keys: list[str], times, intervals: int = 4) -> pd.DataFrame:
    out = []
    for t in times:
        part = frame[(frame["timestamp"] > t - pd.Timedelta(seconds=15 * intervals)) & (frame["timestamp"] <= t)]
        summed = part.groupby(keys, observed=True)[["success_count", "failure_count", "requests"]].sum()
        out.append(summed.reset_index().assign(timestamp=t))
    return pd.concat(out, ignore_index=True)


def windowed_tcp_truth(frame: pd.DataFrame, times, intervals: int = 4) -> pd.DataFrame:
    """Opened connections summed, byte rates averaged over the window; open connections at its end."""
    out = []
    for t in times:
        part = frame[(frame["timestamp"] > t - pd.Timedelta(seconds=15 * intervals)) & (frame["timestamp"] <= t)]
        keys = TCP_KEYS[1:]
        summed = part.groupby(keys, observed=True).agg(
            opened_connections=("opened_connections", "sum"),
            sent_bytes_per_second=("sent_bytes_per_second", "mean"),
            received_bytes_per_second=("received_bytes_per_second", "mean"))
        at_end = part[part["timestamp"] == t].groupby(keys, observed=True)["open_connections"].sum()
        out.append(summed.join(at_end).reset_index().assign(timestamp=t))
    return pd.concat(out, ignore_index=True)


def windowed_proxy_truth(frame: pd.DataFrame, times, intervals: int = 4) -> pd.DataFrame:
    out = []
    for t in times:
        part = frame[(frame["timestamp"] > t - pd.Timedelta(seconds=15 * intervals)) & (frame["timestamp"] <= t)]
        cpu = part.groupby(["namespace", "workload", "pod"], observed=True)["cpu_cores"].agg(["sum", "size"])
        memory = part[part["timestamp"] == t].set_index(["namespace", "workload", "pod"])["memory_bytes"]
        # whole windows only: a pod's first window has no rate yet
        whole = cpu[cpu["size"] == intervals]
        out.append((whole["sum"] / intervals).rename("cpu_cores").to_frame().join(memory).reset_index()
                   .assign(timestamp=t))
    return pd.concat(out, ignore_index=True)


def assert_latency_within_buckets(traffic, frame: pd.DataFrame, mesh: str, buckets) -> None:
    """p50 and p99 of web and api, at every 5 m step, land within a bucket of the exact quantiles (±3%)."""
    bounds = np.asarray(buckets)
    checked = 0
    for workload in ("web", "api"):
        w = traffic.scenario.workload(workload)
        mixture = traffic.latency(w, mesh, "server")
        counts = traffic.inbound_requests(w).sum(axis=1)
        for row in frame[frame["name"] == workload].itertuples():
            k = int(np.searchsorted(traffic.times_ms, row.timestamp.value // 1_000_000))
            window = slice(k - 19, k + 1)
            part = mixture.select(window, traffic.n)
            for q, estimate in ((0.5, row.latency_p50_ms), (0.99, row.latency_p99_ms)):
                exact = weighted_quantile(part, counts[window], q)
                lo, hi = np.searchsorted(bounds, exact * 0.97), np.searchsorted(bounds, exact * 1.03)
                assert lo <= np.searchsorted(bounds, estimate) <= hi, (workload, row.timestamp, q, exact, estimate)
                checked += 1
    assert checked == 2 * 2 * frame["timestamp"].nunique()


def restarted_in_window(traffic, frame: pd.DataFrame, intervals: int = 4) -> np.ndarray:
    """Rows of a tcp frame whose window holds a restart of a pod on the observing side.

    There a restarted proxy's connection counter starts again from zero and reopens its
    pooled connections: when it comes back to the value it had, ``increase()`` cannot see
    the reset, and misses the reopened connections the truth counts.
    """
    restarts: dict[tuple[str, str], list[pd.Timestamp]] = {}
    times = traffic.timestamps()
    for w in traffic.scenario.workloads:
        for pod in traffic.pods[w.key]:
            restarts.setdefault((w.namespace, w.name), []).extend(times[k] for k in pod.restarts)
    out = np.zeros(len(frame), dtype=bool)
    for i, row in enumerate(frame.itertuples()):
        end = "src" if getattr(row, "side", "server") == "client" else "dst"
        key = (str(getattr(row, f"{end}_namespace")), str(getattr(row, f"{end}_name")))
        window = (row.timestamp - pd.Timedelta(seconds=15 * intervals), row.timestamp)
        out[i] = any(window[0] < t <= window[1] for t in restarts.get(key, []))
    return out
