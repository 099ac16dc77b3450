"""Build the bundled datasets (``make datasets``): simulate, backfill a real Prometheus, query it.

Usage: ``python scripts/build_datasets.py [--out datasets] [--hours 6] [--only mesh-shootout|mesh-sweep]``

``mesh-sweep`` is the ``sweep`` scenario (a staircase of request rates) read through each mesh's
adapter into one ``benchmark`` row per step (:mod:`meshlab.sim.sweep`), with the same rows
from the simulation as ground truth.

For each mesh the queries are the mesh's own metrics, aggregated the way its own
tooling aggregates them, evaluated at a 30 s step over a 1 m window. Ground truth comes
straight from the simulation. Everything is written to a temporary directory first and
swapped into place, so an interrupted build leaves the previous dataset intact.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

import meshlab
from meshlab._files import atomic_folder
from meshlab.sim import Scenario, load_scenario
from meshlab.sim.costs import __doc__ as COSTS_DOC
from meshlab.sim.latency_fit import __doc__ as FIT_DOC
from meshlab.sim.sandbox import Sandbox
from meshlab.sim.sweep import WARMUP_S, benchmark_from_adapter, benchmark_truth, sweep_edge

STEP = "30s"
WINDOW = "1m"
PROXIES = 'container=~"linkerd-proxy|istio-proxy|consul-dataplane"'
#: mesh -> the kinds its adapter names workloads by in the stored frames (the shop's ledger is a StatefulSet;
#: Istio's workload labels cover every kind, Consul names services)
MESHES = {"linkerd": ("deployment", "statefulset"), "istio": ("deployment",), "consul": ("service",)}

# name -> (mesh, PromQL, what it is)
QUERIES = {
    "linkerd_responses": ("linkerd", 'sum by (namespace, deployment, statefulset, classification) '
                          f'(rate(response_total{{direction="inbound"}}[{WINDOW}]))',
                          "Inbound responses per second by workload and classification."),
    "linkerd_latency_buckets": ("linkerd", 'sum by (namespace, deployment, statefulset, le) '
                                f'(rate(response_latency_ms_bucket{{direction="inbound"}}[{WINDOW}]))',
                                "Inbound latency histogram buckets (ms) per second, by workload."),
    "linkerd_edges": ("linkerd", 'sum by (namespace, deployment, dst_namespace, dst_deployment, dst_statefulset, '
                      f'classification) (rate(response_total{{direction="outbound"}}[{WINDOW}]))',
                      "Outbound responses per second by caller, callee and classification."),
    "istio_requests": ("istio", 'sum by (destination_workload_namespace, destination_workload, response_code, '
                       f'grpc_response_status) (rate(istio_requests_total{{reporter="destination"}}[{WINDOW}]))',
                       "Requests per second reported by the destination, by workload and status."),
    "istio_latency_buckets": ("istio", 'sum by (destination_workload_namespace, destination_workload, le) '
                              f'(rate(istio_request_duration_milliseconds_bucket{{reporter="destination"}}[{WINDOW}]))',
                              "Destination-reported latency histogram buckets (ms) per second."),
    "istio_edges": ("istio", 'sum by (source_workload_namespace, source_workload, destination_workload_namespace, '
                    'destination_workload, destination_service_name, response_code) '
                    f'(rate(istio_requests_total{{reporter="source"}}[{WINDOW}]))',
                    "Requests per second reported by the source, by edge and status."),
    "consul_requests": ("consul", 'sum by (namespace, consul_source_service, envoy_response_code_class) '
                        '(rate(envoy_http_downstream_rq_xx{envoy_http_conn_manager_prefix="public_listener"}'
                        f'[{WINDOW}]))', "Inbound requests per second at each service's public listener."),
    "consul_latency_buckets": ("consul", 'sum by (namespace, consul_source_service, le) (rate('
                               'envoy_http_downstream_rq_time_bucket{envoy_http_conn_manager_prefix="public_listener"}'
                               f'[{WINDOW}]))', "Public-listener latency histogram buckets (ms) per second."),
    "consul_edges": ("consul", 'sum by (namespace, consul_source_service, consul_destination_service, '
                     'envoy_response_code_class) (rate(envoy_cluster_upstream_rq_xx{envoy_cluster_name!="local_app"}'
                     f'[{WINDOW}]))', "Upstream requests per second by caller, callee and code class."),
    "proxy_cpu": ("all", f"sum by (namespace, pod, container) (rate(container_cpu_usage_seconds_total{{{PROXIES}}}"
                  f"[{WINDOW}]))", "Proxy CPU cores (cAdvisor), all meshes."),
    "proxy_memory": ("all", f"container_memory_working_set_bytes{{{PROXIES}}}",
                     "Proxy working-set bytes (cAdvisor), all meshes."),
}


def build(out: Path, hours: float) -> None:
    name = "mesh-shootout"
    began = time.perf_counter()
    own_end = load_scenario("shop").start + pd.Timedelta(hours=hours)  # the dataset keeps the scenario's date
    box = Sandbox("shop", ("linkerd", "istio", "consul"), hours, cache=False, end=own_end)
    with atomic_folder(out / name) as tmp:  # the old dataset stays until the new one is whole
        _build_into(tmp, out, name, box, hours, began)
    size = sum(p.stat().st_size for p in (out / name).iterdir())
    print(f"built {out / name} ({size / 1e6:.1f} MB) in {time.perf_counter() - began:.0f} s")


def _build_into(tmp: Path, out: Path, name: str, box: Sandbox, hours: float, began: float) -> None:
    manifest: dict = {
        "name": name,
        "description": "The shop scenario under Linkerd, Istio, Consul Connect and no mesh (synthetic).",
        "meshlab_version": meshlab.__version__,
        "scenario": "scenario.yaml",
        "hours": hours,
        "step": STEP,
        "window": WINDOW,
        "queries": {},
        "frames": {},
        "truth": {},
    }
    with box:
        prom = box.prometheus
        start, end = box.traffic.timestamps()[0], box.traffic.timestamps()[-1]
        for query_name, (mesh, promql, doc) in QUERIES.items():
            frame = prom.query_range(promql, start + pd.Timedelta(WINDOW), end, STEP)
            file = f"query-{query_name}.parquet"
            frame.to_parquet(tmp / file, index=False)
            manifest["queries"][query_name] = {"mesh": mesh, "promql": promql, "step": STEP, "file": file,
                                               "doc": doc, "rows": len(frame)}
        span = {"start": start + pd.Timedelta(WINDOW), "end": end, "step": STEP, "window": WINDOW}
        adapters = {mesh: meshlab.mesh(mesh, prom) for mesh in MESHES}
        made = {
            "traffic": [a.traffic(kind, **span) for m, a in adapters.items() for kind in MESHES[m]],
            "edges": [a.edges(kind, **span) for m, a in adapters.items() for kind in MESHES[m]],
            "tcp": [a.tcp(kind, **span) for m, a in adapters.items() for kind in MESHES[m]],
            "proxies": [a.proxies(**span) for a in adapters.values()],
        }
        for kind, parts in made.items():
            frame = meshlab.schema.concat(parts, kind)
            file = f"{kind}.parquet"
            frame.to_parquet(tmp / file, index=False)
            manifest["frames"][kind] = {"file": file, "rows": len(frame),
                                        "kinds": {m: MESHES[m] for m in MESHES} if kind != "proxies" else None}
    frames = {kind: box.truth(kind) for kind in ("traffic", "edges", "tcp", "proxies", "status_counts")}
    for kind, frame in frames.items():
        file = f"truth-{kind}.parquet"
        frame.to_parquet(tmp / file, index=False)
        manifest["truth"][kind] = file
    (tmp / "scenario.yaml").write_text(yaml.safe_dump(box.scenario.to_dict(), sort_keys=False))
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    (tmp / "README.md").write_text(card(manifest, box, frames))


def card(manifest: dict, box: Sandbox, frames: dict[str, pd.DataFrame]) -> str:
    scenario = box.scenario
    lines = [
        f"# {manifest['name']}",
        "",
        "**This dataset is synthetic.** It was produced by meshlab's traffic simulator, not measured on a "
        "cluster. The metric names, labels and histogram buckets are each mesh's own; the traffic, the "
        "latencies and the proxy costs come from the model described below.",
        "",
        f"The `{scenario.name}` scenario ({scenario.description.strip()}) ran for {manifest['hours']:g} hours "
        f"from {scenario.start.isoformat()} with a {scenario.interval_s:g} s scrape interval and seed "
        f"{scenario.seed}, rendered for Linkerd, Istio and Consul Connect with identical offered load and "
        "incidents. \"none\" is the application's own view: the same requests with no proxy.",
        "",
        "Incidents: " + "; ".join(
            f"{i.kind} on {i.workload} at {i.start_s / 3600:g} h" for i in scenario.incidents) + ".",
        "",
        "Rebuild it with `make datasets` (which runs `python scripts/build_datasets.py`).",
        "",
        "## Files",
        "",
        "| file | what | rows |",
        "|---|---|---|",
    ]
    for meta in manifest["queries"].values():
        lines.append(f"| `{meta['file']}` | {meta['doc']} PromQL: `{meta['promql']}` | {meta['rows']} |")
    kinds = "; ".join(f"{mesh} by {' and '.join(kinds)}" for mesh, kinds in MESHES.items())
    for kind, meta in manifest["frames"].items():
        lines.append(f"| `{meta['file']}` | The mesh adapters' `{kind}` frame ({kinds}), "
                     f"window {manifest['window']}: {meshlab.schema.FRAMES[kind].doc} | {meta['rows']} |")
    for kind, file in manifest["truth"].items():
        lines.append(f"| `{file}` | Ground truth, `{kind}` frame: {meshlab.schema.FRAMES[kind].doc} | "
                     f"{len(frames[kind])} |")
    lines += ["", "Query frames are `timestamp`, `value`, then one categorical column per label of the result. "
              f"They and the adapter frames were evaluated at a {manifest['step']} step.", "",
              "## Column dictionary (adapter frames and ground truth)", ""]
    for kind in manifest["truth"]:
        lines += [f"**{kind}**", "", "| column | dtype | meaning |", "|---|---|---|"]
        lines += [f"| `{c.name}` | {c.dtype} | {c.doc} |" for c in meshlab.schema.FRAMES[kind].columns]
        lines.append("")
    lines += ["## The cost model and its sources", "", "```", (COSTS_DOC or "").strip(), "```", ""]
    return "\n".join(lines)


def build_sweep(out: Path) -> None:
    """``mesh-sweep``: the sweep scenario's steps as ``benchmark`` frames, through the adapters and from the truth."""
    name = "mesh-sweep"
    began = time.perf_counter()
    scenario = load_scenario("sweep")
    box = Sandbox(scenario, tuple(MESHES), cache=False, end=scenario.start + pd.Timedelta(seconds=scenario.duration_s))
    with atomic_folder(out / name) as tmp, box:
        frame = meshlab.schema.concat([benchmark_from_adapter(meshlab.mesh(mesh, box.prometheus), box.scenario, mesh,
                                                              kinds[0], source=name)
                                       for mesh, kinds in MESHES.items()], "benchmark")
        truth = meshlab.schema.concat([benchmark_truth(box.traffic, mesh, source=f"{name} (ground truth)")
                                       for mesh in ("none", *MESHES)], "benchmark")
        frame.to_parquet(tmp / "benchmark.parquet", index=False)
        truth.to_parquet(tmp / "truth-benchmark.parquet", index=False)
        manifest = {
            "name": name,
            "description": "A load sweep (a staircase of request rates) under Linkerd, Istio and Consul Connect, "
                           "as benchmark frames (synthetic).",
            "meshlab_version": meshlab.__version__, "scenario": "scenario.yaml",
            "hours": scenario.duration_s / 3600, "warmup_s": WARMUP_S, "queries": {},
            "frames": {"benchmark": {"file": "benchmark.parquet", "rows": len(frame)}},
            "truth": {"benchmark": "truth-benchmark.parquet"},
        }
        (tmp / "scenario.yaml").write_text(yaml.safe_dump(box.scenario.to_dict(), sort_keys=False))
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        (tmp / "README.md").write_text(sweep_card(manifest, box.scenario, frame, truth))
    size = sum(p.stat().st_size for p in (out / name).iterdir())
    print(f"built {out / name} ({size / 1e3:.0f} kB) in {time.perf_counter() - began:.0f} s")


def sweep_card(manifest: dict, scenario: Scenario, frame: pd.DataFrame, truth: pd.DataFrame) -> str:
    edge = sweep_edge(scenario)
    rate = edge.rate
    assert rate is not None and rate.step_s is not None
    lines = [
        f"# {manifest['name']}",
        "",
        "**This dataset is synthetic.** It was produced by meshlab's traffic simulator, not measured on a "
        "cluster: a load sweep read back through each mesh's adapter from a real Prometheus.",
        "",
        f"The `{scenario.name}` scenario ({' '.join(scenario.description.split())}) ran from "
        f"{scenario.start.isoformat()} with a {scenario.interval_s:g} s scrape interval and seed {scenario.seed}, "
        "rendered for Linkerd, Istio and Consul Connect with identical offered load. Proxies add latency by "
        f"load and connections as fitted to Istio's benchmark (`proxy_latency: {scenario.proxy_latency}`, below); "
        f"the service queues as its load nears its capacity ({scenario.workload(edge.target).capacity_rps:g} rps "
        "per pod), which gives the sweep its knee.",
        "",
        f"Each step of {rate.step_s / 60:g} minutes is one benchmark row (one \"run\"), measured at the step's "
        f"end over the step minus a {manifest['warmup_s']:g} s warm-up: `actual_qps` and `error_ratio` from the "
        "adapter's `traffic` (the service's own proxy), the latency percentiles from the adapter's histogram "
        "quantiles (`latency_resolution_ms` is the widest bucket they fell in), proxy CPU (mean over the window) "
        "and memory (at its end) from the adapter's `proxies` (cAdvisor). The load generator is not meshed "
        "(`sidecars` is `server`), so the latency includes one proxy.",
        "",
        "Ground truth has the same rows from the simulation, for `none` (the application alone) too: exact "
        "request counts and the exact quantiles of each window's latency distribution.",
        "",
        "Rebuild it with `make datasets` (which runs `python scripts/build_datasets.py`).",
        "",
        "## Files",
        "",
        "| file | what | rows |",
        "|---|---|---|",
        f"| `benchmark.parquet` | The `benchmark` frame through the adapters (linkerd, istio, consul): "
        f"{meshlab.schema.FRAMES['benchmark'].doc} | {len(frame)} |",
        f"| `truth-benchmark.parquet` | Ground truth, `benchmark` frame (none, linkerd, istio, consul) "
        f"| {len(truth)} |",
        "",
        "## Column dictionary", "", "| column | dtype | meaning |", "|---|---|---|",
        *[f"| `{c.name}` | {c.dtype} | {c.doc} |" for c in meshlab.schema.FRAMES["benchmark"].columns],
        "",
        "## The cost model and its sources", "", "```", (COSTS_DOC or "").strip(), "```", "",
        "## The latency fit", "", "```", (FIT_DOC or "").strip(), "```", "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "datasets"))
    parser.add_argument("--hours", type=float, default=6.0, help="hours of mesh-shootout")
    parser.add_argument("--only", choices=("mesh-shootout", "mesh-sweep"), help="build one dataset")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.only in (None, "mesh-shootout"):
        build(out, args.hours)
    if args.only in (None, "mesh-sweep"):
        build_sweep(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
