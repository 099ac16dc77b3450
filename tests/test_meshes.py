"""Across meshes: the registry with a third-party plugin, and reading many sources at once.

What every mesh's adapter must do is in ``test_mesh_contract.py`` (once, for every registered
mesh); each mesh's own PromQL and names are in its own ``test_mesh_<name>.py``. All of them
read one Prometheus holding every mesh (``mesh_run`` in conftest.py).
"""

from __future__ import annotations

import sys
import textwrap

import pandas as pd
import pytest

import meshlab as ml
from meshlab import schema
from meshlab.errors import InvalidArgument
from meshlab.meshes import base
from meshlab.prometheus.local import LocalVictoriaMetrics, free_port

from .adapter_support import count_requests
from .conftest import require_binary


@pytest.fixture(scope="module")
def run(mesh_run):
    """``(traffic, client, start, end)`` of the Prometheus holding every mesh (conftest.py)."""
    return mesh_run[:4]


# -- the registry ----------------------------------------------------------------------------

def test_registry_and_errors(run):
    _, prom, _, _ = run
    assert {"linkerd", "istio", "consul"} <= set(ml.meshes.available())
    assert isinstance(ml.mesh("istio", prom), ml.Istio)
    with pytest.raises(InvalidArgument, match=r"unknown mesh 'kumaa'; available: consul, hubble, istio, kuma, linkerd"):
        ml.mesh("kumaa", prom)
    with pytest.raises(InvalidArgument, match="consul cannot name workloads by kind 'deployment'; supported kinds: "
                                              "namespace, workload, service, pod"):
        ml.Consul(prom).traffic("deployment", at="now")
    with pytest.raises(InvalidArgument, match="give start= and end= for a range, or at= for one instant"):
        ml.Linkerd(prom).traffic()


def test_a_third_party_mesh_plugs_in_through_the_entry_point_group(run, tmp_path, monkeypatch):
    _, prom, _, end = run
    (tmp_path / "toy_mesh.py").write_text(textwrap.dedent('''
        from meshlab.meshes.linkerd import Linkerd
        class Toy(Linkerd):
            name = "toy"
    '''))
    dist = tmp_path / "toy_mesh-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-mesh\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[meshlab.meshes]\ntoy = toy_mesh:Toy\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with ml.meshes.registry.snapshot() as registry:
        registry.refresh()
        assert "toy" in ml.meshes.available()
        frame = ml.mesh("toy", prom).traffic(at=end)
        assert set(frame["mesh"]) == {"toy"} and len(frame) > 0
    sys.modules.pop("toy_mesh", None)


@pytest.mark.parametrize(("pod", "workload"), [
    ("web-5d9c8b7f6-x2k9p", "web"), ("my-api-v2-7c9f8b6d4f-x2k9p", "my-api-v2"), ("db-0", "db"),
    ("redis-cluster-12", "redis-cluster"), ("node-agent-x2k9p", "node-agent"), ("standalone", "standalone"),
    ("web-abcde", "web-abcde"),  # vowels never appear in generated suffixes
])
def test_workload_of_pod(pod, workload):
    assert base.workload_of_pod(pod) == workload


# -- many sources ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def second_cluster(sim_files):
    """The same metrics in VictoriaMetrics, standing in for a second cluster's scale-out store."""
    require_binary("victoria-metrics", "victoria-metrics-prod")
    _, files, _ = sim_files
    with LocalVictoriaMetrics(openmetrics=files) as server:
        yield server.client


def test_concat_sources_reads_every_cluster_and_reports_the_failed_one(run, second_cluster, monkeypatch):
    _, prom, start, end = run
    down = ml.Prometheus(f"http://user:s3cret@127.0.0.1:{free_port()}", retries=0, timeout=2)
    sources = {"prod-eu": prom, "prod-us": second_cluster, "prod-ap": down}
    calls = count_requests(prom, monkeypatch)
    with pytest.warns(ml.SourcesFailedWarning, match=r"1 of 3 sources failed.*prod-ap: PrometheusUnavailable"):
        frame = ml.concat_sources(sources, "traffic", mesh="istio", kind="deployment", start=start, end=end)
    assert len(calls) == 2 + 3 + 1  # still one query per signal for all workloads, per source
    schema.validate(frame, "traffic")
    assert list(frame.columns[:3]) == ["timestamp", "cluster", "mesh"]
    assert list(frame["cluster"].cat.categories) == list(sources)
    assert set(frame.attrs["failed_sources"]) == {"prod-ap"}
    assert "s3cret" not in frame.attrs["failed_sources"]["prod-ap"]
    # each cluster's rows are exactly what its own source returns alone
    for name in ("prod-eu", "prod-us"):
        alone = ml.Istio(sources[name]).traffic("deployment", start=start, end=end)
        mine = frame[frame["cluster"] == name].drop(columns="cluster").reset_index(drop=True)
        pd.testing.assert_frame_equal(mine.astype({c: str for c in ("mesh", "kind", "namespace", "name")}),
                                      alone.astype({c: str for c in ("mesh", "kind", "namespace", "name")}))
        assert len(alone) > 50
    with pytest.raises(ml.SourcesFailed, match=r"1 source\(s\) failed: prod-ap") as raised:
        ml.concat_sources(sources, "proxies", mesh={"prod-eu": "linkerd", "prod-us": "consul", "prod-ap": "istio"},
                          at=end, errors="raise")
    partial = raised.value.frame
    assert set(partial["cluster"]) == {"prod-eu", "prod-us"} and set(partial["mesh"]) == {"linkerd", "consul"}
    with pytest.raises(ml.SourcesFailed, match=r"1 source\(s\) failed: prod-ap"):
        ml.concat_sources({"prod-ap": down}, "traffic", mesh="istio", at=end)


def test_concat_sources_takes_a_callable_and_checks_its_arguments(run):
    _, prom, _, end = run
    frame = ml.concat_sources({"a": prom, "b": prom}, lambda p: ml.Consul(p).tcp("service", at=end))
    schema.validate(frame, "tcp")
    alone = ml.Consul(prom).tcp("service", at=end)
    assert frame.groupby("cluster", observed=True).size().tolist() == [len(alone)] * 2 and len(alone) > 0
    with pytest.raises(InvalidArgument, match="unknown frame 'trafic'; must be one of: traffic, edges, tcp, proxies"):
        ml.concat_sources({"a": prom}, "trafic", mesh="istio")
    with pytest.raises(InvalidArgument, match=r"unknown mesh 'istoi'; available: "):
        ml.concat_sources({"a": prom}, mesh="istoi")
    with pytest.raises(InvalidArgument, match=r"no mesh given for sources \['b'\]"):
        ml.concat_sources({"a": prom, "b": prom}, mesh={"a": "istio"})
    with pytest.raises(InvalidArgument, match=r"source 'a' needs a meshlab\.Prometheus or a URL string .*got int"):
        ml.concat_sources({"a": 9090}, mesh="istio")


def test_concat_sources_raises_the_callers_mistakes_at_once(run, monkeypatch):
    _, prom, _, end = run
    calls = count_requests(prom, monkeypatch)
    with pytest.raises(InvalidArgument, match=r"Istio.tcp\(\): got an unexpected keyword argument 'windw'"):
        ml.concat_sources({"eu": prom, "us": prom}, "tcp", mesh="istio", at=end, windw="5m")
    with pytest.raises(InvalidArgument, match="source 'us' runs kuma, which cannot name workloads by kind "
                                              "'deployment'"):
        ml.concat_sources({"eu": prom, "us": prom}, mesh={"eu": "istio", "us": "kuma"}, kind="deployment", at=end)
    assert calls == []  # nothing was asked of any source
    # without kind=, each mesh names workloads its own way (Consul by service)
    frame = ml.concat_sources({"eu": prom, "us": prom}, mesh={"eu": "istio", "us": "consul"}, at=end)
    assert frame.groupby("cluster", observed=True)["kind"].unique().map(list).to_dict() == {
        "eu": ["deployment"], "us": ["service"]}
