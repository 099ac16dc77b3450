"""pandas.concat of meshlab frames stays usable: it validates, ml.concat restores categoricals, SMI accepts it."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

import meshlab as ml
from meshlab import schema
from meshlab.errors import SchemaError

from .conftest import upstream_fixture


@pytest.fixture(scope="module")
def shootout():
    return ml.datasets.load("mesh-shootout")


def _tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """A part of a frame as an adapter would return it: only its own categories."""
    frame = frame.reset_index(drop=True)
    for name in frame.columns:
        if isinstance(frame[name].dtype, pd.CategoricalDtype):
            frame[name] = frame[name].cat.remove_unused_categories()
    return frame


def _two_parts(data, kind: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two frames of a kind whose label categories differ, as two adapters or queries give them."""
    if kind == "query":  # one PromQL result over two namespaces, read separately
        frame = data.queries["linkerd_responses"]
        return _tidy(frame[frame["namespace"] == "shop"]), _tidy(frame[frame["namespace"] != "shop"])
    if kind == "string":
        stamp = pd.Timestamp("2024-03-04", tz="UTC").as_unit("ns")
        one = pd.DataFrame({"timestamp": [stamp], "value": pd.array(["a"], dtype="string")})
        return one, one.assign(value=pd.array(["b"], dtype="string"))
    if kind == "benchmark":  # load tests of two meshes, read from two files
        frame = ml.read_benchmark(upstream_fixture("istio-tools-benchmark.csv"))
        return _tidy(frame[frame["mesh"] == "none"]), _tidy(frame[frame["mesh"] != "none"])
    frame = data.truth["status_counts"] if kind == "status_counts" else data.frames[kind]
    key = "protocol" if kind == "status_counts" else "mesh"
    first = frame[key].iloc[0]
    return _tidy(frame[frame[key] == first]), _tidy(frame[frame[key] != first])


# pandas 2.x warns on the plain pd.concat below when a part's label is all missing; that call is the user's
@pytest.mark.filterwarnings("ignore:The behavior of DataFrame concatenation with empty or all-NA:FutureWarning")
@pytest.mark.parametrize("kind", list(schema.FRAMES))
def test_pandas_concat_of_two_frames_of_every_kind_validates_and_converts(shootout, kind):
    one, two = _two_parts(shootout, kind)
    schema.validate(one, kind, strict=True)
    schema.validate(two, kind, strict=True)
    plain = pd.concat([one, two], ignore_index=True)
    labels = [c for c in plain.columns
              if any(c in part and isinstance(part[c].dtype, pd.CategoricalDtype) for part in (one, two))]
    if kind != "string":  # the case this protects: the labels came out of pandas.concat as text
        assert any(not isinstance(plain[c].dtype, pd.CategoricalDtype) for c in labels)
    assert ml.validate(plain, kind) is plain
    assert schema.kind_of(plain) == kind

    with warnings.catch_warnings():  # ml.concat warns on no pandas version (2.2 did, on an all-missing label)
        warnings.simplefilter("error")
        joined = ml.concat([one, two], kind)
    assert ml.concat([one, two]).equals(joined)  # the kind is told from the frames
    schema.validate(joined, kind, strict=True)
    for name in labels:
        assert isinstance(joined[name].dtype, pd.CategoricalDtype)
        present = {v for part in (one, two) if name in part for v in part[name].dropna()}
        assert set(joined[name].cat.categories) >= present
    # same values, row for row, as the parts
    expected = pd.concat([one.astype(object), two.astype(object)], ignore_index=True)
    pd.testing.assert_frame_equal(joined[expected.columns].astype(object), expected, check_dtype=False)


@pytest.mark.parametrize("kind", ["traffic", "edges"])
def test_pandas_concat_of_two_meshes_frames_converts_to_smi(shootout, kind):
    one, two = _two_parts(shootout, kind)
    one, two = one.head(40), two.head(40)
    plain = pd.concat([one, two], ignore_index=True)
    obj = ml.smi.to_traffic_metrics(plain)
    assert len(obj["items"]) == len(plain)
    assert [i["metadata"]["labels"]["meshlab/mesh"] for i in obj["items"]] == plain["mesh"].astype(str).tolist()
    back = ml.smi.from_traffic_metrics(obj)
    joined = ml.concat([one, two], kind)
    ids = ["mesh", "namespace", "name"] if kind == "traffic" else ["mesh", "src_name", "dst_name", "side"]
    for name in ids:
        assert back[name].astype(str).tolist() == joined[name].astype(str).tolist()
    assert back["requests"].tolist() == pytest.approx(joined["requests"].tolist(), nan_ok=True)


def test_strict_validation_names_the_concat_fix(shootout):
    one, two = _two_parts(shootout, "traffic")
    with pytest.raises(SchemaError, match=r"meshlab\.concat\(frames, 'traffic'\)"):
        ml.validate(pd.concat([one, two]), "traffic", strict=True)
    with pytest.raises(SchemaError, match="expected category"):  # numbers are no labels
        ml.validate(one.assign(mesh=1.0), "traffic")
    with pytest.raises(SchemaError, match="needs kind="):
        ml.concat([])
    with pytest.raises(SchemaError, match="not a meshlab frame"):
        ml.concat([pd.DataFrame({"x": [1]})])
