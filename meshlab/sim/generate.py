"""Generated scenarios: layered applications of any size, for benchmarks and scale tests."""

from __future__ import annotations

import numpy as np

from .scenario import Edge, Latency, Rate, Scenario, TcpTraffic, Workload

__all__ = ["layered_scenario"]


def layered_scenario(workloads: int = 30, *, seed: int = 1, namespaces: int = 3, hours: float = 24.0,
                     max_replicas: int = 1, interval: float = 15.0) -> Scenario:
    """A layered microservice application with ``workloads`` workloads.

    An unmeshed load generator calls the first layer; each workload calls one to three
    workloads of the next layers (HTTP, gRPC, and a TCP datastore at the bottom). Rates,
    latencies and error ratios are drawn from the seed. No incidents.
    """
    rng = np.random.default_rng(seed)
    names = [f"svc-{i:02d}" for i in range(workloads - 1)]
    made = [Workload("loadgen", "ns-0", meshed=False)]
    for i, name in enumerate(names):
        made.append(Workload(name, f"ns-{i % namespaces}", replicas=int(rng.integers(1, max_replicas + 1)),
                             latency=Latency(median_ms=float(rng.uniform(2, 30)), sigma=float(rng.uniform(0.3, 0.6)),
                                             tail_probability=float(rng.choice([0.0, 0.01, 0.02])))))
    layers = np.array_split(np.arange(1, workloads), 4)
    edges = [Edge("ns-0/loadgen", made[int(j)].key, rate=Rate(float(rng.uniform(20, 60)), shape="diurnal"))
             for j in layers[0]]
    for depth, layer in enumerate(layers[:-1]):
        later = np.concatenate(layers[depth + 1:])
        for i in layer:
            for j in rng.choice(later, size=min(int(rng.integers(1, 4)), len(later)), replace=False):
                last = depth + 1 == len(layers) - 1 and rng.random() < 0.3
                protocol = "tcp" if last else str(rng.choice(["http", "grpc"]))
                errors = {} if protocol == "tcp" else (
                    {"UNAVAILABLE": 0.002} if protocol == "grpc" else {"503": float(rng.uniform(0, 0.01))})
                if protocol == "tcp":
                    edges.append(Edge(made[int(i)].key, made[int(j)].key, protocol="tcp", rate=Rate(0.2),
                                      tcp=TcpTraffic(connection_seconds=120)))
                else:
                    edges.append(Edge(made[int(i)].key, made[int(j)].key, protocol=protocol,  # type: ignore[arg-type]
                                      per_request=float(rng.uniform(0.2, 1.5)), errors=errors))
    return Scenario(f"layered-{workloads}", tuple(made), tuple(edges), seed=seed, interval_s=interval,
                    duration_s=hours * 3600, description=f"A generated layered application of {workloads} workloads.")
