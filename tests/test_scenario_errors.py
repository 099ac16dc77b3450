"""Bad scenario files and dicts: every error names the file, the key path and what is allowed.

A table of bad scenarios (one per class of mistake), then hypothesis: random mutations
of the shop scenario either load or raise a MeshlabError, never another exception.
"""

from __future__ import annotations

import copy
import string
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshlab.errors import InvalidArgument, MeshlabError
from meshlab.sim.scenario import Scenario, ScenarioError, ScenarioFileNotFound, load_scenario, scenario_from_dict

SHOP = Path(__file__).parents[1] / "meshlab" / "sim" / "scenarios" / "shop.yaml"
OK = "name: x\nworkloads:\n  - {name: a, namespace: n}\n  - {name: b, namespace: n}\n"
EDGE = OK + "edges:\n  - {from: a, to: b, rate: 1"  # + the edge's other keys and "}\n"

# Python's own wording, which must never reach a user
# (PyYAML's "found unhashable key" names the line and column: a good message; Python's "unhashable type" is not)
INTERNALS = ("__init__", "not supported between", "object has no attribute", "NoneType", "invalid literal",
             "Traceback", "unhashable type", "could not convert", "argument of type")

# (file text, the key path the message names, what it says is allowed or wrong)
BAD = {
    "replicas-text": (OK.replace("namespace: n}", "namespace: n, replicas: two}", 1), "workloads[0].replicas",
                      "a whole number from 1 to 1000, got 'two'"),
    "replicas-fraction": (OK.replace("namespace: n}", "namespace: n, replicas: 2.5}", 1), "workloads[0].replicas",
                          "a whole number from 1 to 1000, got 2.5"),
    "replicas-huge": (OK.replace("namespace: n}", "namespace: n, replicas: 10000000}", 1), "workloads[0].replicas",
                      "from 1 to 1000"),
    "replicas-zero": (OK.replace("namespace: n}", "namespace: n, replicas: 0}", 1), "workloads[0].replicas",
                      "from 1 to 1000"),
    "missing-namespace": ("name: x\nworkloads: [{name: a}]\n", "workloads[0]",
                          "missing key 'namespace' (required in workloads[0]; keys: name, namespace"),
    "workload-name-number": ("name: x\nworkloads: [{name: 7, namespace: n}]\n", "workloads[0].name", "must be text"),
    "workload-kind": (OK.replace("namespace: n}", "namespace: n, kind: pod}", 1), "workloads[0].kind",
                      "unknown workload kind 'pod'; must be one of: deployment, statefulset, daemonset, job"),
    "meshed-text": (OK.replace("namespace: n}", "namespace: n, meshed: maybe}", 1), "workloads[0].meshed",
                    "must be true or false"),
    "latency-zero": (OK.replace("namespace: n}", "namespace: n, latency: {median_ms: 0}}", 1),
                     "workloads[0].latency.median_ms", "a number > 0"),
    "duplicate-workload": ("name: x\nworkloads: [{name: a, namespace: n}, {name: a, namespace: n}]\n",
                           "workloads[1]", "n/a is defined twice (also workloads[0])"),
    "workloads-not-list": ("name: x\nworkloads: {name: a}\n", "workloads", "must be a list"),
    "workloads-typo": ("name: x\nwrkloads: [{name: a, namespace: n}]\n", "",
                       "unknown key 'wrkloads'; did you mean 'workloads'?"),
    "edge-source-target": (OK + "edges: [{source: a, target: b, rate: 1}]\n", "edges[0]",
                           "unknown key 'source' (allowed: from, to, protocol"),
    "edge-missing-to": (OK + "edges: [{from: a, rate: 1}]\n", "edges[0]", "missing key 'to'"),
    "edge-unknown-workload": (EDGE.replace("to: b", "to: zz") + "}\n", "edges[0].to",
                              "unknown workload 'zz'; known: n/a, n/b"),
    "edge-rate-and-per-request": (EDGE + ", per_request: 1}\n", "edges[0]", "give exactly one of rate and per_request"),
    "edge-rate-negative": (OK + "edges: [{from: a, to: b, rate: {rps: -1}}]\n", "edges[0].rate.rps", "a number >= 0"),
    "edge-rate-shape": (OK + "edges: [{from: a, to: b, rate: {rps: 1, shape: wobbly}}]\n", "edges[0].rate.shape",
                        "must be one of: steady, diurnal, ramp, bursts"),
    "edge-ramp-without-end-rate": (OK + "edges: [{from: a, to: b, rate: {rps: 1, shape: ramp}}]\n", "edges[0].rate",
                                   "needs to_rps"),
    "errors-word": (EDGE + ", errors: {'503': lots}}\n", "edges[0].errors.503", "a number >= 0 and <= 1, got 'lots'"),
    "errors-list": (EDGE + ", errors: [503]}\n", "edges[0].errors", "must map each error status"),
    "errors-200": (EDGE + ", errors: {'200': 0.1}}\n", "edges[0].errors.200", "not an HTTP error status (400-599"),
    "errors-grpc-name-on-http": (EDGE + ", errors: {UNAVAILABLE: 0.1}}\n", "edges[0].errors.UNAVAILABLE",
                                 "not an HTTP error status"),
    "errors-sum": (EDGE + ", errors: {'503': 0.7, '500': 0.6}}\n", "edges[0].errors", "add up to 1.3, more than 1"),
    "protocol": (EDGE + ", protocol: udp}\n", "edges[0].protocol", "must be one of: http, grpc, tcp"),
    "cycle": (OK + "edges: [{from: a, to: b, per_request: 1}, {from: b, to: a, per_request: 1}]\n", "edges",
              "per_request edges form a cycle"),
    "external-calls-out": ("name: x\nworkloads: [{name: a, namespace: n, external: true}, {name: b, namespace: n}]\n"
                           "edges: [{from: a, to: b, rate: 1}]\n", "edges[0].from", "external service"),
    "seed-text": ("seed: abc\n" + OK, "seed", "a whole number from 0 to 18446744073709551615, got 'abc'"),
    "seed-inf": ("seed: .inf\n" + OK, "seed", "a whole number from 0 to"),
    "seed-fraction": ("seed: 1.5\n" + OK, "seed", "a whole number from 0 to 18446744073709551615, got 1.5"),
    "seed-negative": ("seed: -1\n" + OK, "seed", "a whole number from 0 to"),
    "start-far-future": ("start: 2500-01-01\n" + OK, "start", "a UTC time between 1970-01-01 and 2200-01-01"),
    "start-word": ("start: yesterday-ish\n" + OK, "start", "a UTC time between"),
    "interval-words": ("interval: 15 seconds\n" + OK, "interval", "is not a duration"),
    "interval-zero": ("interval: 0s\n" + OK, "interval", "a duration >= 1s"),
    "interval-fraction": ("interval: 1500ms\n" + OK, "interval", "a whole number of seconds"),
    "duration-negative": ("duration: -1h\n" + OK, "duration", "a duration > 0s"),
    "incident-kind": (OK + "incidents: [{kind: meteor, workload: a, start: 1m}]\n", "incidents[0].kind",
                      "unknown incident kind 'meteor'; must be one of: error_burst, latency_spike"),
    "incident-no-start": (OK + "incidents: [{kind: scale, workload: a, replicas: 2}]\n", "incidents[0]",
                          "missing key 'start'"),
    "incident-start-and-at": (OK + "incidents: [{kind: scale, workload: a, replicas: 2, start: 1m, at: 2m}]\n",
                              "incidents[0]", "give 'at' or 'start', not both"),
    "incident-unknown-workload": (OK + "incidents: [{kind: scale, workload: c, replicas: 2, at: 1m}]\n",
                                  "incidents[0].workload", "unknown workload 'c'"),
    "burst-without-errors": (OK + "incidents: [{kind: error_burst, workload: a, start: 1m}]\n", "incidents[0]",
                             "give errors"),
    "burst-errors-code": (OK + "incidents: [{kind: error_burst, workload: a, start: 1m, errors: {OOPS: 1}}]\n",
                          "incidents[0].errors.OOPS", "or a gRPC error status"),
    "restart-missing-pod": (OK + "incidents: [{kind: pod_restart, workload: a, pod: 3, start: 1m}]\n", "incidents",
                            "there is no pod 3 at that time"),
    "top-level-list": ("- a\n- b\n", "", "must be a mapping with keys name, description"),
    "empty-file": ("", "", "the scenario is empty"),
    "number-key": ("1: 2\n" + OK, "", "unknown key 1"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_every_scenario_error_names_the_file_the_key_path_and_what_is_allowed(tmp_path, case):
    text, key_path, allowed = BAD[case]
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    message = str(caught.value)
    assert isinstance(caught.value, InvalidArgument) and isinstance(caught.value, MeshlabError)
    assert message.startswith(f"scenario file {str(path)!r}: ")
    assert f": {key_path}: " in message or not key_path, message
    assert allowed in message, message
    assert not any(text in message for text in INTERNALS), message
    # the same mistake in a dict names the scenario instead of a file
    data = yaml.safe_load(text)
    if isinstance(data, dict):
        with pytest.raises(ScenarioError, match=r"^scenario\b"):
            scenario_from_dict(data)


@pytest.mark.parametrize(("name", "content", "expected"), [
    ("latin1.yaml", "name: caf\xe9\n".encode("latin-1"), r"is not UTF-8 text \(byte 0xe9 at offset 9\); save it as"),
    ("seed.toml", b'seed = "abc"\n[[workloads]]\nname = "a"\nnamespace = "n"\n', r": seed: must be a whole number"),
    ("bad.toml", b"seed = \n", "is not valid TOML"),
    ("deep.yaml", b"[" * 5000 + b"]" * 5000, "is not valid YAML|nested too deeply|must be a mapping"),
])
def test_unreadable_scenario_files(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ScenarioError, match=rf"^scenario file '{path}'.*({expected})"):
        load_scenario(path)


def test_missing_files_and_directories(tmp_path):
    with pytest.raises(ScenarioFileNotFound, match="does not exist") as caught:
        load_scenario(tmp_path / "missing.yaml")
    assert isinstance(caught.value, FileNotFoundError) and isinstance(caught.value, MeshlabError)
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(ScenarioError, match="is a directory"):
        load_scenario(tmp_path / "dir.yaml")
    with pytest.raises(ScenarioError, match="a built-in name, a file path, a dict or a Scenario; got int"):
        load_scenario(3)  # type: ignore[arg-type]


# -- hypothesis: random damage to the shop scenario ------------------------------------------

LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=6),
    st.sampled_from(["2h", "-1s", "0s", "15s", ".inf", "1e400", "UNAVAILABLE", "503", "cart", "shop/cart", "ramp",
                     "2500-01-01", "steady", "statefulset", "grpc", "tcp", "", " "]),
    st.dates(), st.datetimes(), st.lists(st.integers(0, 600), max_size=2),
    st.dictionaries(st.sampled_from(["rps", "503", "name", "x"]), st.integers(-1, 2), max_size=2))


def _places(obj: Any) -> list[tuple[Any, Any]]:
    """Every (container, key) in nested dicts and lists."""
    out: list[tuple[Any, Any]] = []
    keys = list(obj) if isinstance(obj, dict) else range(len(obj)) if isinstance(obj, list) else []
    for key in keys:
        out.append((obj, key))
        out += _places(obj[key])
    return out


def _check(load: Any) -> None:
    message = None
    try:
        result = load()
    except MeshlabError as exc:
        message = str(exc)
    if message is None:
        assert isinstance(result, Scenario)
    else:
        assert message and not any(text in message for text in INTERNALS), message


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_damaged_scenarios_load_or_raise_a_meshlab_error(data):
    scenario = yaml.safe_load(SHOP.read_text())
    for _ in range(data.draw(st.integers(1, 3))):
        container, key = data.draw(st.sampled_from(_places(scenario)))
        action = data.draw(st.sampled_from(["set", "set", "delete", "rename"]))
        if action == "set":
            container[key] = data.draw(LEAVES)
        elif action == "delete":
            del container[key]
        elif isinstance(container, dict):
            container[data.draw(st.text(string.ascii_lowercase + "_", min_size=1, max_size=10))] = container.pop(key)
    _check(lambda: scenario_from_dict(copy.deepcopy(scenario)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 3),
                                st.text(":{}[]-,'\"&*!|>%@`#?\n 0123456789ab.", max_size=3)), min_size=1, max_size=4))
def test_damaged_scenario_files_load_or_raise_a_meshlab_error(tmp_path, edits):
    text = SHOP.read_text()
    for at, cut, insert in edits:
        at %= len(text)
        text = text[:at] + insert + text[at + cut:]
    path = tmp_path / "damaged.yaml"
    path.write_text(text)
    _check(lambda: load_scenario(path))
