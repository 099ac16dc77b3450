"""The adapter contract, written once and run for every registered mesh.

Parametrised over ``ml.meshes.available()`` (as xarray's backend test mixins are over its
backends): a mesh that registers an adapter, and a simulator renderer under the same name,
gets these tests for free. The checks are mesh-agnostic: frames keep the schema, and summed
over workloads (so whatever each mesh names them by) the counts, proxy memory and the first-
step rule agree with the simulator's ground truth. Each mesh's own PromQL and naming are
checked in its own file (``test_meshes.py``, ``test_meshes_kuma_hubble.py``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import meshlab as ml
from meshlab import schema
from meshlab.errors import InvalidArgument
from meshlab.prometheus.local import LocalPrometheus
from meshlab.sim import meshes as sim_meshes
from meshlab.sim import truth
from meshlab.sim.output import write_backfill
from meshlab.sim.scenario import load_scenario
from meshlab.sim.traffic import simulate

from .adapter_support import windowed_truth
from .conftest import require_binary

INCIDENTS = Path(__file__).parent / "scenarios" / "incidents.yaml"
EVERY_MESH = ml.meshes.available()


def simulated(mesh: str) -> bool:
    try:
        sim_meshes.check_mesh(mesh)
    except InvalidArgument:
        return False
    return True


@pytest.fixture(scope="module")
def contract_run(tmp_path_factory: pytest.TempPathFactory):
    """The incidents hour for every registered mesh the simulator renders, in one Prometheus."""
    require_binary("prometheus")
    require_binary("promtool")
    traffic = simulate(load_scenario(INCIDENTS))
    meshes = [mesh for mesh in EVERY_MESH if simulated(mesh)]
    files, _ = write_backfill(traffic, meshes, tmp_path_factory.mktemp("contract"))
    with LocalPrometheus(openmetrics=files) as server:
        times = traffic.timestamps()
        yield traffic, server.client, times[4], times[-1]


@pytest.fixture(params=EVERY_MESH)
def adapter(request, contract_run):
    mesh = request.param
    if not simulated(mesh):
        pytest.skip(f"the simulator has no renderer for {mesh!r} (meshlab.sim.meshes entry points)")
    traffic, prom, start, end = contract_run
    return ml.mesh(mesh, prom), traffic, start, end


def meshed(traffic, frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of a truth frame for workloads with a proxy of their own (meshed, in the cluster)."""
    keep = [(ns, name) in {(w.namespace, w.name) for w in traffic.scenario.workloads if w.meshed and not w.external}
            for ns, name in zip(frame["namespace"].astype(str), frame["name"].astype(str), strict=True)]
    return frame[np.asarray(keep, dtype=bool)]


# -- no server ---------------------------------------------------------------------------------

@pytest.mark.parametrize("mesh", EVERY_MESH)
def test_the_adapter_declares_what_the_contract_needs(mesh):
    cls = ml.meshes.get_mesh(mesh)
    assert cls.name == mesh and cls.default_kind in cls.kinds and set(cls.kinds) <= set(ml.meshes.KINDS)
    for kind in cls.kinds:
        assert cls.promql("success_count", kind).startswith("sum by (")
    with pytest.raises(InvalidArgument, match=f"{mesh} cannot name workloads by kind 'cluster'; supported kinds: "
                                              f"{', '.join(cls.kinds)}"):
        cls.promql("success_count", "cluster")


# -- against the simulator's truth ---------------------------------------------------------------

def test_every_frame_keeps_the_schema(adapter):
    mesh, _, start, end = adapter
    frames = {"traffic": mesh.traffic(start=start, end=end), "proxies": mesh.proxies(start=start, end=end)}
    if mesh.edge_signals:
        frames["edges"] = mesh.edges(start=start, end=end)
    if mesh.tcp_signals:
        frames["tcp"] = mesh.tcp(start=start, end=end)
    for kind, frame in frames.items():
        schema.validate(frame, kind)
        assert len(frame) > 0 and set(frame["mesh"].astype(str)) == {mesh.name}, kind
        if "kind" in frame:
            assert set(frame["kind"].astype(str)) == {mesh.default_kind}, kind


def test_workload_counts_summed_over_workloads_equal_the_truth(adapter):
    mesh, traffic, start, end = adapter
    frame = mesh.traffic(start=start, end=end, step="1m")
    expected = windowed_truth(meshed(traffic, truth.traffic_truth(traffic, mesh.name)), ["namespace", "name"],
                              frame["timestamp"].unique())
    for column in ("success_count", "failure_count", "requests"):
        mine = frame.groupby("timestamp")[column].sum()
        theirs = expected.groupby("timestamp")[column].sum().reindex(mine.index, fill_value=0)
        np.testing.assert_array_equal(mine.to_numpy(), theirs.to_numpy(), err_msg=column)
    assert frame["requests"].sum() > 100_000
    with np.errstate(invalid="ignore", divide="ignore"):
        np.testing.assert_allclose(frame["rps"], frame["requests"] / 60.0, rtol=1e-12)


def test_the_first_step_has_no_rows_in_any_frame(adapter):
    # the window at the first scrape holds one sample: no rate, so no row (never NaN rates)
    mesh, traffic, _, _ = adapter
    first = traffic.timestamps()[0]
    assert mesh.traffic(at=first).empty and mesh.proxies(at=first).empty


def test_proxy_memory_summed_over_pods_equals_the_truth(adapter):
    mesh, traffic, start, end = adapter
    if not mesh.proxy_containers:
        pytest.skip(f"{mesh.name} has no proxy container")
    frame = mesh.proxies(start=start, end=end, step="1m")
    cpu = frame.dropna(subset=["cpu_cores"])
    expected = truth.proxies_truth(traffic, mesh.name)
    expected = expected[expected["timestamp"].isin(cpu["timestamp"].unique())]
    mine = cpu.groupby("timestamp")["memory_bytes"].sum()
    theirs = expected.groupby("timestamp")["memory_bytes"].sum().reindex(mine.index)
    assert len(mine) > 10
    np.testing.assert_array_equal(mine.to_numpy(), theirs.to_numpy())
