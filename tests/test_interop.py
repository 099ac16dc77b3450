"""prometheus-pandas interoperability, against the real Prometheus."""

from __future__ import annotations

import pandas as pd
import pandas.testing as tm
import pytest
from prometheus_pandas.query import Prometheus as PandasPrometheus

from meshlab import Prometheus, from_prometheus_pandas
from meshlab.errors import InvalidArgument
from meshlab.prometheus.interop import parse_series_name

from .test_source import T0, T_END


def sort_rows(frame: pd.DataFrame) -> pd.DataFrame:
    labels = [c for c in frame.columns if c not in ("timestamp", "value")]
    keys = [*labels, "timestamp"] if "timestamp" in frame.columns else labels
    return frame.sort_values(keys, kind="stable").reset_index(drop=True)


def test_a_prometheus_pandas_client_is_reused(prometheus_server):
    theirs = PandasPrometheus(prometheus_server.url)
    ours = Prometheus(theirs)
    assert ours.session is theirs.http and ours.url == prometheus_server.url
    tm.assert_frame_equal(ours.query_range("test_gauge", T0, T_END, "15s"),
                          prometheus_server.client.query_range("test_gauge", T0, T_END, "15s"))


@pytest.mark.parametrize("query", ["test_gauge", "test_odd"])
def test_wide_frames_become_the_same_tidy_frame(prometheus_server, query):
    wide = PandasPrometheus(prometheus_server.url).query_range(query, T0, T_END, 15)
    ours = prometheus_server.client.query_range(query, T0, T_END, "15s")
    # The wide form cannot tell a NaN sample from a missing point: compare without NaN.
    expected = ours[ours["value"].notna()].reset_index(drop=True)
    expected = expected.assign(**{c: expected[c].cat.remove_unused_categories()
                                   for c in expected.columns if c not in ("timestamp", "value")})
    tm.assert_frame_equal(sort_rows(from_prometheus_pandas(wide)), sort_rows(expected))


def test_vector_series_become_a_tidy_frame_at_the_given_time(prometheus_server):
    series = PandasPrometheus(prometheus_server.url).query("test_gauge", T0 + 60)
    frame = from_prometheus_pandas(series, time=T0 + 60)
    ours = prometheus_server.client.query("test_gauge", time=T0 + 60)
    tm.assert_frame_equal(sort_rows(frame), sort_rows(ours))  # timestamps included, none NaT


def test_a_series_without_its_time_is_refused_not_nat():
    series = pd.Series([1.0], index=['up{job="a"}'])
    with pytest.raises(InvalidArgument, match="pass time="):
        from_prometheus_pandas(series)
    frame = from_prometheus_pandas(series, time="2024-05-01T12:00:00Z")
    assert frame["timestamp"].tolist() == [pd.Timestamp("2024-05-01T12:00:00Z")]


def test_series_names_round_trip_odd_values():
    assert parse_series_name('up{job="a\\"b",path="x,y=z",u="\\u00fc"}') == {
        "__name__": "up", "job": 'a"b', "path": "x,y=z", "u": "ü"}
    assert parse_series_name('{job="a"}') == {"job": "a"}
    with pytest.raises(InvalidArgument, match="not a prometheus-pandas series name"):
        parse_series_name("up job=a")
