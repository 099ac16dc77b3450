"""Bundled datasets: loading, the contract, the card, and loading from an installed wheel."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import meshlab as ml
from meshlab import schema
from meshlab.errors import InvalidArgument

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def test_list_and_load():
    assert "mesh-shootout" in ml.datasets.list()
    data = ml.datasets.load("mesh-shootout")
    assert set(data.truth) == {"traffic", "edges", "tcp", "proxies", "status_counts"}
    for kind, frame in data.truth.items():
        schema.validate(frame, kind)
        assert len(frame) > 1000
    for name, frame in data.queries.items():
        schema.validate(frame, "query")
        assert len(frame) > 1000, name
    assert set(data.truth["traffic"]["mesh"].cat.categories) == {"linkerd", "istio", "consul", "none"}
    assert data.scenario.name == "shop" and data.manifest["queries"]["istio_requests"]["promql"].startswith("sum by")


def test_the_card_says_it_is_synthetic_and_how_to_rebuild():
    card = ml.datasets.load("mesh-shootout").card
    assert "**This dataset is synthetic.**" in card and "make datasets" in card
    assert "seed 20240304" in card and "istio/tools" in card and "linkerd.io/2021/11/29" in card
    for column in schema.FRAMES["traffic"].columns:
        assert f"| `{column.name}` |" in card


def test_identical_offered_load_across_meshes():
    traffic = ml.datasets.load("mesh-shootout").truth["traffic"]
    per_mesh = traffic.groupby("mesh", observed=True)["requests"].sum()
    assert per_mesh.nunique() == 1 and per_mesh.iloc[0] > 1e6


def test_query_frames_agree_with_the_truth():
    data = ml.datasets.load("mesh-shootout")
    linkerd = data.queries["linkerd_responses"]
    rate = linkerd[linkerd["deployment"] == "catalog"]["value"].groupby(linkerd["timestamp"]).sum()
    truth = data.truth["traffic"]
    catalog = truth[(truth["mesh"] == "linkerd") & (truth["name"] == "catalog")].set_index("timestamp")["rps"]
    assert rate.mean() == pytest.approx(catalog.mean(), rel=0.01)


def test_adapter_frames_agree_with_the_query_frames_and_the_truth():
    data = ml.datasets.load("mesh-shootout")
    assert set(data.frames) == {"traffic", "edges", "tcp", "proxies"}
    for kind, frame in data.frames.items():
        schema.validate(frame, kind)
        assert set(frame["mesh"]) == {"linkerd", "istio", "consul"}, kind
    traffic = data.frames["traffic"]
    # the adapter's rps is the linkerd-viz-style query's rate summed over classifications
    query = data.queries["linkerd_responses"]
    query = query.assign(name=query["deployment"].astype(str).where(query["deployment"].notna(),
                                                                   query["statefulset"].astype(str)))
    theirs = query.groupby(["timestamp", "name"])["value"].sum()
    linkerd = traffic[traffic["mesh"] == "linkerd"].astype({"name": str}).set_index(["timestamp", "name"])["rps"]
    assert linkerd.index.sort_values().equals(theirs.index)
    assert (linkerd.sort_index() - theirs).abs().max() < 1e-9 * theirs.abs().max()
    # and every mesh's request counts equal the truth over each 1 m window (four 15 s scrapes)
    truth = data.truth["traffic"].astype({"mesh": str, "name": str})
    for mesh in ("linkerd", "istio", "consul"):
        ours = traffic[traffic["mesh"] == mesh].astype({"name": str}).set_index(["name", "timestamp"])["requests"]
        per = truth[truth["mesh"] == mesh].set_index(["name", "timestamp"])["requests"].sort_index()
        windowed = per.groupby(level="name").rolling(4).sum().droplevel(0)
        assert (ours - windowed.loc[ours.index]).abs().max() == 0, mesh
    proxies = data.frames["proxies"]
    assert set(proxies["workload"].astype(str)) == set(data.truth["proxies"]["workload"].astype(str))


def test_unknown_dataset():
    with pytest.raises(InvalidArgument, match="unknown dataset 'nope'; available: mesh-shootout"):
        ml.datasets.load("nope")


def test_datasets_stay_small():
    size = sum(p.stat().st_size for p in (ROOT / "datasets").rglob("*") if p.is_file())
    assert size < 10e6


def test_every_package_is_declared():
    declared = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "meshlab").rglob("__init__.py")}
    assert found <= declared


def _isolated_env() -> dict[str, str]:
    """This environment without what would put the checkout on a subprocess's path: PYTHONPATH (a caller's
    ``PYTHONPATH=$PWD``), PYTHONHOME, PYTHONSTARTUP and the rest of PYTHON*, and the user site (which may
    hold an editable install)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return {**env, "PYTHONNOUSERSITE": "1"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[Path, str]:
    """The wheel built from the checkout (as ``pip install`` builds it), and the build's verbose output."""
    wheel_dir = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w", str(wheel_dir), str(ROOT)],
                           capture_output=True, text=True, env=_isolated_env(), cwd=wheel_dir)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return next(wheel_dir.glob("meshlab-*.whl")), built.stdout + built.stderr


@pytest.mark.e2e
def test_the_wheel_builds_without_warnings_and_ships_the_scenarios(wheel):
    """setuptools warned that the data-only package meshlab.sim.scenarios "would be ignored" (it is not in
    ``packages``); the scenario files must still ship."""
    path, log = wheel
    for warning in ("would be ignored", "is absent from the `packages` configuration"):
        assert warning not in log, log[max(0, log.find(warning) - 500):log.find(warning) + 500]
    scenarios = ROOT / "meshlab" / "sim" / "scenarios"
    files = {f"meshlab/{p.relative_to(ROOT / 'meshlab').as_posix()}" for p in scenarios.rglob("*")
             if p.is_file() and "__pycache__" not in p.parts}
    assert files, "no scenario files in the checkout"
    with zipfile.ZipFile(path) as archive:
        shipped = {n for n in archive.namelist() if n.startswith("meshlab/sim/scenarios/")}
        assert shipped == files
        for name in files:  # the same bytes, not an empty or stale file
            assert archive.read(name) == (ROOT / name).read_bytes(), name


@pytest.mark.e2e
def test_an_installed_wheel_loads_the_datasets(wheel, tmp_path):
    """Install the wheel (no deps) into a new venv that borrows this venv's dependencies through a .pth
    file, and load the dataset from outside the checkout, whatever the caller's PYTHONPATH."""
    env = _isolated_env()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, env=env, cwd=tmp_path)
    python = venv / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True, env=env, cwd=tmp_path).stdout.strip()
    (Path(site) / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", site, str(wheel[0])],
                   check=True, capture_output=True, env=env, cwd=tmp_path)
    code = ("import meshlab as ml, pathlib; d = ml.datasets.load('mesh-shootout'); "
            "print(pathlib.Path(ml.__file__).parent); print(ml.datasets.data_dir()); print(len(d.truth['traffic']))")
    out = subprocess.run([python, "-c", code], check=True, capture_output=True, text=True, cwd=tmp_path,
                         env=env).stdout.split()
    assert out[0].startswith(site) and out[1].startswith(site)
    assert int(out[2]) == len(ml.datasets.load("mesh-shootout").truth["traffic"]) > 0
