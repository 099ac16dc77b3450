"""Adapter arguments: label values, sources and windows, for every mesh and every public method.

A refused argument must fail with :class:`InvalidArgument` naming it, before any request: the
refusal tables run against a closed port, where a request would fail differently. What must
work is checked on one hour of tests/scenarios/incidents.yaml in a real Prometheus.
"""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

import meshlab as ml
from meshlab.errors import InvalidArgument, MeshlabWarning, ShortWindowWarning
from meshlab.prometheus.local import free_port

MESHES = ("linkerd", "istio", "consul", "kuma", "hubble")
#: every public adapter method and the arguments of it that select by a label value
LABEL_ARGUMENTS = {
    "traffic": ("namespace", "name"),
    "edges": ("namespace", "name"),
    "tcp": ("namespace", "name"),
    "proxies": ("namespace", "workload"),
    "promql": ("namespace", "name"),
}
BAD_VALUES = [("", "must not be empty"), ("\ud800", "not valid UTF-8"), ("shop\udfff", "not valid UTF-8"),
              ("\udc80abc", "not valid UTF-8"), (5, "must be a string"), (b"shop", "must be a string"),
              (["shop"], "must be a string")]
AT = "2024-05-01T00:30:00Z"


def closed_port() -> ml.Prometheus:
    return ml.Prometheus(f"http://127.0.0.1:{free_port()}", retries=0, timeout=2)


def call(adapter: ml.Mesh, method: str, **arguments):
    if method == "promql":
        signal = "cpu_cores" if "workload" in arguments else "success_count"
        if signal == "cpu_cores":
            arguments.pop("name", None)
        return adapter.promql(signal, **arguments)
    return getattr(adapter, method)(at=AT, **arguments)


@pytest.fixture(scope="module")
def run(sim_run):
    traffic, prom, _ = sim_run
    return traffic, prom, traffic.timestamps()[-1]


# -- label values ------------------------------------------------------------------------------

@pytest.mark.parametrize("mesh", MESHES)
@pytest.mark.parametrize(("method", "argument"),
                         [(m, a) for m, arguments in LABEL_ARGUMENTS.items() for a in arguments])
@pytest.mark.parametrize(("value", "reason"), BAD_VALUES, ids=[repr(v) for v, _ in BAD_VALUES])
def test_bad_label_values_are_refused_naming_the_argument(mesh, method, argument, value, reason):
    adapter = ml.mesh(mesh, closed_port())
    with pytest.raises(InvalidArgument, match=rf"^{argument}\b.*{reason}"):
        call(adapter, method, **{argument: value})


@pytest.mark.parametrize("name", ["", "\ud800"])
def test_linkerd_name_cannot_select_a_statefulset_by_matching_nothing(run, name):
    # name="" used to replace the deployment!="" matcher and return ledger, a StatefulSet
    _, prom, end = run
    with pytest.raises(InvalidArgument, match=r"^name"):
        ml.Linkerd(prom).traffic("deployment", namespace="back", name=name, at=end)


def test_good_label_values_still_select(run):
    _, prom, end = run
    frame = ml.Linkerd(prom).traffic("deployment", namespace="back", name="api", at=end)
    assert frame["name"].astype(str).tolist() == ["api"]
    # unusual but valid UTF-8 goes through, escaped, and matches nothing
    assert len(ml.Linkerd(prom).traffic("deployment", namespace='b"ack\\\n\U0001f600', at=end)) == 0


# -- sources -------------------------------------------------------------------------------------

ENTRY_POINTS = {
    "detect": lambda source: ml.detect(source),
    "mesh": lambda source: ml.mesh("linkerd", source).traffic("deployment", at=END),
    "Mesh subclass": lambda source: ml.Istio(source).traffic("deployment", at=END),
    "Mesh.detect": lambda source: ml.Consul.detect(source),
    "concat_sources": lambda source: ml.concat_sources({"a": source}, "traffic", mesh="linkerd", at=END,
                                                       errors="raise"),
}
END = "2024-05-01T01:00:00Z"  # the end of the incidents hour


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_every_entry_point_takes_a_url_string(run, entry):
    _, prom, end = run
    assert end == ml.timeutil.to_timestamp(END)
    by_url = ENTRY_POINTS[entry](prom.url)
    by_client = ENTRY_POINTS[entry](prom)
    if entry == "detect":  # to the second, by bisection from now
        assert set(by_url) == set(by_client) == {"linkerd", "istio", "consul"}
        assert all(abs(by_url[m] - by_client[m]) <= pd.Timedelta(seconds=1) for m in by_url)
    elif entry == "Mesh.detect":
        assert by_url is not None and abs(by_url - by_client) <= pd.Timedelta(seconds=1)
    else:
        assert len(by_url) > 0
        assert by_url.equals(by_client)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("bad", [None, 9090, b"http://127.0.0.1:9090", ["http://127.0.0.1:9090"]],
                         ids=["None", "int", "bytes", "list"])
def test_every_entry_point_says_what_a_source_must_be(entry, bad):
    with pytest.raises(InvalidArgument, match=r"needs a meshlab\.Prometheus or a URL string"):
        ENTRY_POINTS[entry](bad)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_a_bad_url_is_refused_by_every_entry_point(entry):
    with pytest.raises(InvalidArgument, match="url must look like http://host:9090"):
        ENTRY_POINTS[entry]("prometheus:9090")


def test_a_local_server_object_is_pointed_to_its_client(run):
    class Server:  # what LocalPrometheus and the sandbox look like
        def __init__(self, client):
            self.client = client

    _, prom, _ = run
    with pytest.raises(InvalidArgument, match=r"its \.client is one"):
        ml.detect(Server(prom))


# -- windows --------------------------------------------------------------------------------------

FRAME_METHODS = ("traffic", "edges", "tcp", "proxies")


@pytest.mark.parametrize("method", FRAME_METHODS)
def test_a_window_shorter_than_two_scrapes_warns(run, method):
    _, prom, end = run
    adapter = ml.Linkerd(prom)
    with pytest.warns(ShortWindowWarning, match=r"window=10s cannot hold two scrapes 15s apart.*window=30s"):
        short = getattr(adapter, method)(at=end, window="10s")
    assert issubclass(ShortWindowWarning, MeshlabWarning)
    # the warning is deserved: too short a window loses what two scrapes give
    with warnings.catch_warnings():
        warnings.simplefilter("error", MeshlabWarning)
        enough = getattr(adapter, method)(at=end, window="30s")
    assert len(enough) > 0
    assert len(short) < len(enough) or short.select_dtypes("float64").isna().sum().sum() > \
        enough.select_dtypes("float64").isna().sum().sum()


@pytest.mark.parametrize("method", FRAME_METHODS)
def test_the_scrape_interval_can_be_given(method):
    adapter = ml.Linkerd(closed_port(), scrape_interval="5s")
    with warnings.catch_warnings():
        warnings.simplefilter("error", MeshlabWarning)
        with pytest.raises(ml.PrometheusUnavailable):  # no warning first: 10 s holds two 5 s scrapes
            getattr(adapter, method)(at=AT, window="10s")


@pytest.mark.parametrize("bad", [0, "-15s", "soon"])
def test_a_bad_scrape_interval_is_refused(bad):
    with pytest.raises(InvalidArgument, match="scrape_interval"):
        ml.mesh("istio", closed_port(), scrape_interval=bad)
