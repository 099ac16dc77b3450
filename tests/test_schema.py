from __future__ import annotations

import pandas as pd
import pytest

from meshlab import schema
from meshlab.errors import SchemaError


def good_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "timestamp": pd.to_datetime([0, 1], unit="s", utc=True).as_unit("ns"),
        "value": [1.0, 2.0],
        "job": pd.Categorical(["a", "b"]),
    })


def test_a_good_frame_passes_and_is_returned():
    frame = good_frame()
    assert schema.validate(frame, "query") is frame


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda f: f.drop(columns="value"), r"missing columns \['value'\]"),
    (lambda f: f.assign(value=f["value"].astype("int64")),
     r"'value' has dtype int64, expected float64 .*astype\('float64'\)"),
    (lambda f: f.assign(job=f["job"].astype(str)), r"'job' has dtype .*, expected category"),
    (lambda f: f.assign(timestamp=f["timestamp"].dt.tz_localize(None)),
     r"'timestamp' has dtype datetime64\[ns\], expected datetime64\[ns, UTC\]"),
    (lambda f: f.assign(timestamp=f["timestamp"].dt.tz_convert("Europe/Paris")), "expected datetime64"),
    (lambda f: f.assign(timestamp=f["timestamp"].dt.as_unit("us")), "expected datetime64"),
])
def test_each_problem_is_named_with_its_fix(mutate, message):
    with pytest.raises(SchemaError, match=message):
        schema.validate(mutate(good_frame()), "query", strict=True)


def test_all_problems_are_reported_at_once():
    frame = good_frame().assign(value=lambda f: f["value"].astype("int64"), job=lambda f: f["job"].astype(str))
    with pytest.raises(SchemaError) as caught:
        schema.validate(frame, "query", strict=True)
    assert "'value'" in str(caught.value) and "'job'" in str(caught.value)


def test_unknown_kind_lists_the_known_ones():
    with pytest.raises(SchemaError, match=r"unknown frame kind 'trafic'; must be one of: query, string"):
        schema.validate(good_frame(), "trafic")


def test_not_a_frame():
    with pytest.raises(SchemaError, match=r"must be a pandas\.DataFrame"):
        schema.validate([1, 2], "query")  # type: ignore[arg-type]


def test_string_frames_take_no_label_columns():
    frame = pd.DataFrame({"timestamp": good_frame()["timestamp"], "value": pd.array(["a", "b"], dtype="string")})
    schema.validate(frame, "string")
    with pytest.raises(SchemaError, match="unexpected columns"):
        schema.validate(frame.assign(job=pd.Categorical(["a", "b"])), "string")


@pytest.mark.parametrize("kind", list(schema.FRAMES))
def test_empty_frames_validate(kind):
    labels = ["job"] if schema.FRAMES[kind].label_columns else []
    frame = schema.empty(kind, labels)
    assert len(frame) == 0 and list(frame.columns) == schema.FRAMES[kind].names + labels
    schema.validate(frame, kind)


def traffic_frame(**extra) -> pd.DataFrame:
    columns = {c.name: ([pd.Timestamp(0, tz="UTC")] if c.role == "time" else ["x"] if c.role == "label" else [1.0])
               for c in schema.FRAMES["traffic"].columns}
    return pd.DataFrame({**columns, **extra})


def test_extra_quantile_columns_belong_to_traffic_frames_and_nothing_else_does():
    frame = schema.conform(traffic_frame(latency_p999_ms=[3]), "traffic")
    assert frame["latency_p999_ms"].dtype == "float64" and isinstance(frame["mesh"].dtype, pd.CategoricalDtype)
    assert frame["timestamp"].dtype == schema.TIMESTAMP_DTYPE
    with pytest.raises(SchemaError, match=r"unexpected columns \['pod'\]"):
        schema.conform(traffic_frame(pod=["a"]), "traffic")
    # the optional cluster column (from concat_sources) goes right after the timestamp
    clustered = schema.conform(traffic_frame(cluster=["eu"]), "traffic")
    assert list(clustered.columns[:3]) == ["timestamp", "cluster", "mesh"]
    assert isinstance(clustered["cluster"].dtype, pd.CategoricalDtype)
    with pytest.raises(SchemaError, match=r"column 'cluster' has dtype object, expected category"):
        schema.validate(clustered.astype({"cluster": object}), "traffic", strict=True)
    with pytest.raises(SchemaError, match=r"unexpected columns \['cluster'\]"):  # truth has no clusters
        schema.validate(schema.empty("status_counts").assign(cluster=pd.Categorical([])), "status_counts")
    with pytest.raises(SchemaError, match=r"missing columns \['rps'\]"):
        schema.conform(traffic_frame().drop(columns="rps"), "traffic")


@pytest.mark.parametrize(("q", "name"), [(0.5, "latency_p50_ms"), (0.95, "latency_p95_ms"), (0.999, "latency_p999_ms")])
def test_quantile_column_names(q, name):
    assert schema.quantile_column(q) == name
