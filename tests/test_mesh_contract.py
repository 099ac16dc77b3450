"""The adapter contract, written once and run for every registered mesh.

Parametrised over ``ml.meshes.available()`` (as xarray's backend test mixins are over its
backends): a mesh that registers an adapter, and a simulator renderer under the same name,
gets these tests for free. The checks are mesh-agnostic: frames keep the schema; summed
over workloads (so whatever each mesh names them by) the counts, and per pod the proxies' cost,
agree with the simulator's ground truth; the first-step rule, escaping, the namespace kind and
the number of queries hold for every mesh. All run on one Prometheus holding every mesh
(``mesh_run`` in conftest.py), shared with each mesh's own file (``test_mesh_<name>.py``),
which checks that mesh's own PromQL and naming.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import meshlab as ml
from meshlab import schema
from meshlab.errors import InvalidArgument
from meshlab.sim import truth

from .adapter_support import by_key, count_requests, windowed_proxy_truth, windowed_truth
from .conftest import simulated_meshes
from .samples import stored_samples

EVERY_MESH = ml.meshes.available()


@pytest.fixture(params=EVERY_MESH)
def adapter(request, mesh_run):
    mesh = request.param
    if mesh not in simulated_meshes():
        pytest.skip(f"the simulator has no renderer for {mesh!r} (meshlab.sim.meshes entry points)")
    traffic, prom, start, end, _ = mesh_run
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


def test_proxy_cost_per_pod_equals_the_truth(adapter):
    mesh, traffic, start, end = adapter
    if not mesh.proxy_containers:
        pytest.skip(f"{mesh.name} has no proxy container")
    frame = mesh.proxies(start=start, end=end, step="1m")
    schema.validate(frame, "proxies")
    keys = ["timestamp", "namespace", "workload", "pod"]
    simulated = truth.proxies_truth(traffic, mesh.name)
    expected = windowed_proxy_truth(simulated, frame["timestamp"].unique())
    # the workload comes from the mesh's own series, and agrees with the simulated owner
    assert set(frame["workload"].astype(str)) == set(simulated["workload"].astype(str))
    assert set(frame["container"].astype(str)) == {mesh.proxy_containers[0]}
    mine = by_key(frame, keys, "cpu_cores").dropna()
    theirs = by_key(expected, keys, "cpu_cores")
    assert mine.index.equals(theirs.index) and len(mine) > 50
    np.testing.assert_allclose(mine.to_numpy(), theirs.to_numpy(), rtol=1e-9)
    np.testing.assert_array_equal(by_key(frame, keys, "memory_bytes").loc[theirs.index].to_numpy(),
                                  by_key(expected, keys, "memory_bytes").to_numpy())
    # a pod that scaled in later appears from its first scrape on
    firsts = frame.groupby("pod", observed=True)["timestamp"].min()
    assert firsts.nunique() == expected.groupby("pod", observed=True)["timestamp"].min().nunique()


def test_user_values_are_escaped_not_pasted(adapter):
    mesh, _, _, end = adapter
    bad = 'front"} or up{x="'
    assert mesh.traffic(namespace=bad, at=end).empty
    if mesh.edge_signals:
        assert mesh.edges(namespace=bad, at=end).empty
    assert '="front\\"} or up{x=\\""' in mesh.promql("success_count", namespace=bad)


def test_kind_namespace_sums_the_default_kind_and_pods_are_named(adapter):
    mesh, _, start, end = adapter
    by_namespace = mesh.traffic("namespace", start=start, end=end, step="1m")
    by_default = mesh.traffic(start=start, end=end, step="1m")
    assert set(by_namespace["name"]) == {"front", "back"}
    total = by_default.groupby(["timestamp", "namespace"], observed=True)["requests"].sum()
    np.testing.assert_array_equal(by_key(by_namespace, ["timestamp", "namespace"], "requests"), total.sort_index())
    if "pod" in mesh.kinds:
        pods = mesh.traffic("pod", at=end)
        assert len(pods) and pods["name"].str.startswith(("web-", "api-", "idle-")).all()


def test_traffic_queries_do_not_grow_with_the_number_of_workloads(adapter, monkeypatch):
    mesh, _, start, end = adapter
    calls = count_requests(mesh.prom, monkeypatch)
    frame = mesh.traffic(start=start, end=end, step="1m")
    # success, failure, three quantiles, and the buckets their bounds come from
    assert frame["name"].nunique() == 3 and len(calls) == 2 + 3 + 1


# -- the server holding every mesh --------------------------------------------------------------

def test_the_backfill_holds_every_sample(mesh_run):
    traffic, prom, _, _, samples = mesh_run
    assert stored_samples(prom, traffic.times_ms[-1] / 1000) == samples > 100_000


def test_detect_finds_exactly_the_meshes_present(mesh_run, prometheus_server):
    traffic, prom, _, _, _ = mesh_run
    found = ml.detect(prom)
    assert set(found) == set(simulated_meshes())
    first = pd.Timestamp(traffic.times_ms[0], unit="ms", tz="UTC")
    assert all(pd.Timedelta(0) <= since - first <= pd.Timedelta("1s") for since in found.values())
    assert ml.detect(prometheus_server.client) == {}
