"""Shared fixtures: real Prometheus and VictoriaMetrics servers loaded with tests/testdata.py.

A missing server binary skips the tests that need it, with the reason; under CI=true
it fails them instead, so CI can never pass by skipping.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshlab.openmetrics import write_openmetrics
from meshlab.prometheus.local import INSTALL_HINTS, LocalPrometheus, LocalVictoriaMetrics

from . import testdata

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
#: Real files from other projects, beside the checkout (../shared/fixtures/upstream).
UPSTREAM = Path(os.environ.get("MESHLAB_UPSTREAM_FIXTURES",
                               Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures" / "upstream"))


def upstream_fixture(name: str) -> Path:
    """Path of a shared upstream fixture; skips the test (with the reason) when it is absent."""
    path = UPSTREAM / name
    if not path.exists():
        pytest.skip(f"upstream fixture {name} not found at {UPSTREAM} (set MESHLAB_UPSTREAM_FIXTURES)")
    return path


def require_binary(*names: str) -> None:
    """Skip (or fail under CI=true) unless one of ``names`` is on PATH."""
    if any(shutil.which(n) for n in names):
        return
    message = f"`{names[0]}` is not on PATH; {INSTALL_HINTS.get(names[0], 'install it')}"
    if IN_CI:
        pytest.fail(f"CI=true but {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def testdata_file(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("testdata") / "testdata.om"
    return write_openmetrics(path, testdata.all_series())


@pytest.fixture(scope="session")
def prometheus_server(testdata_file) -> Iterator[LocalPrometheus]:
    require_binary("prometheus")
    require_binary("promtool")
    with LocalPrometheus(openmetrics=testdata_file) as server:
        yield server


@pytest.fixture(scope="session")
def victoria_server(testdata_file) -> Iterator[LocalVictoriaMetrics]:
    require_binary("victoria-metrics", "victoria-metrics-prod")
    with LocalVictoriaMetrics(openmetrics=testdata_file) as server:
        yield server


@pytest.fixture(scope="session", params=["prometheus", "victoriametrics"])
def server(request: pytest.FixtureRequest):
    """Each real server in turn; source tests compare each against its own raw API."""
    name = "prometheus_server" if request.param == "prometheus" else "victoria_server"
    return request.getfixturevalue(name)


SIM_MESHES = ("linkerd", "istio", "consul")


@pytest.fixture(scope="session")
def incidents_traffic():
    """One simulated hour of tests/scenarios/incidents.yaml."""
    from meshlab.sim import load_scenario, simulate

    return simulate(load_scenario(Path(__file__).parent / "scenarios" / "incidents.yaml"))


@pytest.fixture(scope="session")
def sim_files(incidents_traffic, tmp_path_factory: pytest.TempPathFactory):
    """One hour of tests/scenarios/incidents.yaml for three meshes: ``(traffic, files, samples_written)``."""
    from meshlab.sim import write_backfill

    traffic = incidents_traffic
    files, samples = write_backfill(traffic, SIM_MESHES, tmp_path_factory.mktemp("sim"))
    return traffic, files, samples


@pytest.fixture(scope="session")
def sim_run(sim_files):
    """``sim_files`` backfilled into a real Prometheus: yields ``(traffic, client, samples_written)``."""
    require_binary("prometheus")
    require_binary("promtool")
    traffic, files, samples = sim_files
    with LocalPrometheus(openmetrics=files) as server:
        yield traffic, server.client, samples


def simulated_meshes() -> list[str]:
    """Every registered mesh the simulator renders (a plugin may register an adapter only)."""
    import meshlab as ml
    from meshlab.errors import InvalidArgument
    from meshlab.sim import meshes as sim_meshes

    out = []
    for mesh in ml.meshes.available():
        try:
            sim_meshes.check_mesh(mesh)
        except InvalidArgument:
            continue
        out.append(mesh)
    return out


@pytest.fixture(scope="session")
def mesh_run(incidents_traffic, tmp_path_factory: pytest.TempPathFactory):
    """The incidents hour for every mesh the simulator renders, in one Prometheus.

    Yields ``(traffic, client, start, end, samples_written)``: the adapter contract and each
    mesh's own file read it, so a worker process starts it once.
    """
    from meshlab.sim import write_backfill

    require_binary("prometheus")
    require_binary("promtool")
    traffic = incidents_traffic
    files, samples = write_backfill(traffic, simulated_meshes(), tmp_path_factory.mktemp("every-mesh"))
    with LocalPrometheus(openmetrics=files) as server:
        times = traffic.timestamps()
        yield traffic, server.client, times[4], times[-1], samples


@pytest.fixture(scope="session")
def errors_run(tmp_path_factory: pytest.TempPathFactory):
    """Half an hour of ``mesh_truths.ERRORS`` (HTTP 5xx between meshed workloads) for Kuma,
    Hubble and Consul in one Prometheus: ``(traffic, client, start, end)``."""
    from meshlab.sim import write_backfill
    from meshlab.sim.scenario import scenario_from_dict
    from meshlab.sim.traffic import simulate

    from .mesh_truths import ERRORS

    require_binary("prometheus")
    require_binary("promtool")
    traffic = simulate(scenario_from_dict(ERRORS))
    files, _ = write_backfill(traffic, ("kuma", "hubble", "consul"), tmp_path_factory.mktemp("errors"))
    with LocalPrometheus(openmetrics=files) as server:
        times = traffic.timestamps()
        yield traffic, server.client, times[4], times[-1]
