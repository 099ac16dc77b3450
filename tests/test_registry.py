"""The mesh registry and the adapter contract checked at class creation: no server needed.

Plugins are real entry points: a ``*.dist-info`` folder with an ``entry_points.txt`` on
``sys.path``, as pip installs them, each in its own entry-point group so the tests do not see
one another's.
"""

from __future__ import annotations

import itertools
import sys
import textwrap
import warnings

import pytest

import meshlab as ml
from meshlab.errors import InvalidArgument, PluginWarning
from meshlab.meshes import MeshRegistry, Signal
from meshlab.meshes.linkerd import Linkerd

_groups = itertools.count()

GOOD = '''
from meshlab.meshes.linkerd import Linkerd
class Toy(Linkerd):
    name = "{name}"
'''
BROKEN = '''
raise RuntimeError("the toy plugin cannot start: {name}")
'''


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    """Install plugins ``{entry name: module source}`` in a fresh group; return a registry reading it."""
    modules: list[str] = []

    def install(sources: dict[str, str], **options) -> MeshRegistry:
        group = f"meshlab.test_meshes_{next(_groups)}"
        lines = [f"[{group}]"]
        for entry, source in sources.items():
            module = f"toy_plugin_{group.rsplit('_', 1)[1]}_{entry}"
            (tmp_path / f"{module}.py").write_text(textwrap.dedent(source.format(name=entry)))
            lines.append(f"{entry} = {module}:Toy")
            modules.append(module)
        dist = tmp_path / f"toy_{group.rsplit('_', 1)[1]}-1.0.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: toy-{dist.name}\nVersion: 1.0\n")
        (dist / "entry_points.txt").write_text("\n".join(lines) + "\n")
        registry = MeshRegistry(group, **options)
        for name in ml.meshes.registry.names():  # the built-ins, as the real registry has them
            registry.register(ml.meshes.get_mesh(name))
        return registry

    monkeypatch.syspath_prepend(str(tmp_path))
    yield install
    for module in modules:
        sys.modules.pop(module, None)


def test_plugin_names_are_listed_without_importing_them(plugins):
    registry = plugins({"toy": GOOD})
    assert "toy" in registry.names() and "toy" in registry
    assert not any(name.startswith("toy_plugin") for name in sys.modules)
    assert registry.get("toy").name == "toy"
    assert any(name.startswith("toy_plugin") for name in sys.modules)


def test_a_plugin_that_fails_to_load_is_skipped_with_a_warning_and_the_others_still_load(plugins):
    registry = plugins({"broken": BROKEN, "good": GOOD})
    with pytest.warns(PluginWarning, match=r"mesh plugin 'broken' \(toy_plugin_\w+_broken:Toy\) failed to load and "
                                           r"is skipped: RuntimeError: the toy plugin cannot start: broken"):
        names = registry.available()
    assert "good" in names and "broken" not in names and "istio" in names
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # later calls neither fail nor warn again, and still list the good plugin
        assert "good" in registry.available()
    with pytest.raises(InvalidArgument, match="mesh plugin 'broken' failed to load: RuntimeError: the toy plugin"):
        registry.get("broken")


def test_the_module_level_registry_survives_a_broken_plugin(plugins, monkeypatch):
    # the bug: the first available() raised, and every later call left out every plugin after the broken one
    fresh = plugins({"broken": BROKEN, "good": GOOD})
    monkeypatch.setattr(ml.meshes.registry, "group", fresh.group)
    with ml.meshes.registry.snapshot() as registry:
        registry.refresh()
        with pytest.warns(PluginWarning, match="'broken'"):
            assert "good" in ml.meshes.available()
        assert "good" in ml.meshes.available()
        assert ml.meshes.get_mesh("good").name == "good"
    assert "good" not in ml.meshes.available()  # the snapshot put the registry back


def test_a_plugin_named_like_a_built_in_is_skipped_with_a_warning(plugins):
    registry = plugins({"istio": GOOD})
    with pytest.warns(PluginWarning, match=r"mesh plugin 'istio' .* is not loaded: the name is taken by "
                                           r"meshlab\.meshes\.istio\.Istio"):
        assert registry.get("istio") is ml.Istio
    preferring = plugins({"istio": GOOD}, plugins_override=True)
    assert preferring.get("istio") is not ml.Istio and issubclass(preferring.get("istio"), Linkerd)


@pytest.mark.filterwarnings("error")
def test_refresh_finds_plugins_installed_after_the_first_look(plugins, tmp_path):
    registry = plugins({"first": GOOD})
    assert "first" in registry.available()
    (tmp_path / "late_toy.py").write_text(textwrap.dedent(GOOD.format(name="late")))
    dist = next(tmp_path.glob("*.dist-info"))
    (dist / "entry_points.txt").write_text(f"[{registry.group}]\nfirst = {registry.get('first').__module__}:Toy\n"
                                           "late = late_toy:Toy\n")
    assert "late" not in registry.names()
    registry.refresh()
    assert "late" in registry.names() and registry.get("late").name == "late"
    sys.modules.pop("late_toy", None)


def test_register_unregister_and_the_state_snapshot():
    class Extra(Linkerd):
        name = "extra"

    before = ml.meshes.available()
    with ml.meshes.registry.snapshot():
        assert ml.meshes.register(Extra) is Extra
        assert ml.meshes.get_mesh("extra") is Extra and "extra" in ml.meshes.available()
        assert ml.meshes.unregister("extra") is Extra
        with pytest.raises(InvalidArgument, match=r"unknown mesh 'extra'; available: consul, hubble, istio"):
            ml.meshes.get_mesh("extra")
        ml.meshes.register(Extra)
        assert ml.meshes.unregister("istio") is ml.Istio
    assert ml.meshes.available() == before and ml.meshes.get_mesh("istio") is ml.Istio


def test_register_refuses_what_is_not_a_concrete_mesh():
    for bad in (object, ml.Mesh, "istio"):
        with pytest.raises(InvalidArgument, match="is not a Mesh subclass with a name"):
            ml.meshes.register(bad)  # type: ignore[arg-type]


def test_register_without_replace_keeps_the_first_with_a_warning():
    class Other(Linkerd):
        name = "istio"

    registry = MeshRegistry("meshlab.test_meshes_none")
    registry.register(ml.Istio)
    with pytest.warns(PluginWarning, match="mesh 'istio' from .*Other is not registered: the name is taken by "
                                           r"meshlab\.meshes\.istio\.Istio"):
        registry.register(Other, replace=False)
    assert registry.get("istio") is ml.Istio


# -- the adapter contract, at class creation --------------------------------------------------

@pytest.mark.parametrize("missing", ["name", "marker", "workload_signal"])
def test_an_adapter_missing_a_required_attribute_fails_when_defined(missing):
    attributes = {"name": "toy", "marker": "toy_requests_total", "kinds": ("namespace",), "default_kind": "namespace",
                  "workload_signal": Signal("toy_requests_total", {}, {}, {}),
                  "workload_identity": classmethod(lambda cls, kind: None)}
    del attributes[missing]
    with pytest.raises(TypeError, match=rf"mesh adapter .*Toy must set class attribute\(s\) {missing} "
                                        r"\(or be declared with abstract=True\)"):
        type("Toy", (ml.Mesh,), attributes)


def test_an_adapter_must_define_its_identities_and_a_default_kind_it_has():
    base = {"name": "toy", "marker": "toy_requests_total", "kinds": ("namespace",), "default_kind": "namespace",
            "workload_signal": Signal("toy_requests_total", {}, {}, {})}
    with pytest.raises(TypeError, match=r"Toy must define the classmethod workload_identity\(\)"):
        type("Toy", (ml.Mesh,), base)
    with pytest.raises(TypeError, match=r"Toy: default_kind 'deployment' is not among its kinds \('namespace',\)"):
        type("Toy", (ml.Mesh,), {**base, "default_kind": "deployment"})
    with pytest.raises(TypeError, match=r"Toy must define the classmethod edge_identity\(\)"):
        type("Toy", (ml.Mesh,), {**base, "workload_identity": classmethod(lambda cls, kind: None),
                                 "edge_signals": {"client": base["workload_signal"]}})


def test_an_abstract_adapter_is_allowed_but_cannot_be_built():
    class EnvoyBase(ml.Mesh, abstract=True):
        marker = "envoy_cluster_upstream_rq_xx"

    for abstract in (ml.Mesh, EnvoyBase):
        with pytest.raises(TypeError, match=f"{abstract.__name__} is an abstract mesh adapter"):
            abstract("http://127.0.0.1:9")


# -- simulator renderers from the meshlab.sim.meshes group -------------------------------------

def test_a_plugin_renderer_is_simulated_and_a_broken_or_clashing_one_is_skipped(tmp_path, monkeypatch):
    from meshlab.sim import meshes as sim_meshes
    from meshlab.sim.scenario import load_scenario
    from meshlab.sim.traffic import simulate

    (tmp_path / "toy_sim.py").write_text(textwrap.dedent('''
        from meshlab.sim.meshes.linkerd import linkerd_families
        def toy_families(traffic):
            return [f for f in linkerd_families(traffic) if f.name == "response_total"]
    '''))
    (tmp_path / "broken_sim.py").write_text("raise ImportError('no such renderer')\n")
    dist = tmp_path / "toy_sim-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-sim\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[meshlab.sim.meshes]\ntoy = toy_sim:toy_families\n"
                                           "broken = broken_sim:families\nistio = toy_sim:toy_families\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    sim_meshes.refresh_plugins()
    try:
        with pytest.warns(PluginWarning) as caught:
            assert sim_meshes.check_mesh("toy") == "toy"
        messages = sorted(str(w.message) for w in caught)
        assert any("'broken' (broken_sim:families) failed to load and is skipped: ImportError: no such renderer" in m
                   for m in messages)
        assert any("'istio' (toy_sim:toy_families) is not loaded: the name is a built-in renderer's" in m
                   for m in messages)
        traffic = simulate(load_scenario("shop"), hours=0.25)
        toy = sim_meshes.mesh_families(traffic, "toy")
        linkerd = {f.name: f for f in sim_meshes.mesh_families(traffic, "linkerd")}
        assert [f.name for f in toy] == ["response_total"]
        assert len(toy[0].series) == len(linkerd["response_total"].series) > 0
        assert sim_meshes.MESHES["istio"] is sim_meshes.istio_families
        with pytest.raises(InvalidArgument, match="unknown mesh 'broken'; available: linkerd, istio, consul, kuma, "
                                                  "hubble, none, toy"):
            sim_meshes.check_mesh("broken")
    finally:
        sim_meshes.refresh_plugins()
        for module in ("toy_sim", "broken_sim"):
            sys.modules.pop(module, None)
    assert "toy" not in sim_meshes.MESHES


def test_identities_written_as_instance_methods_still_work_on_the_class():
    class Old(ml.Mesh):
        name, marker, kinds, default_kind = "old", "old_total", ("namespace",), "namespace"
        workload_signal = Signal("old_total", {}, {}, {})

        def workload_identity(self, kind):
            return ml.meshes.Identity("ns", None)

    assert Old.promql("success_count") == 'sum by (ns) (increase(old_total[1m]))'
    assert Old("http://127.0.0.1:9").promql("success_count") == Old.promql("success_count")
