from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshlab.errors import InvalidArgument
from meshlab.timeutil import format_duration, format_unix_ms, to_millis, to_timedelta, to_timestamp

NOW = pd.Timestamp("2024-05-01T12:00:00", tz="UTC")
UTC = dt.timezone.utc


@pytest.mark.parametrize(("value", "expected"), [
    (dt.datetime(2024, 5, 1, 12, tzinfo=UTC), "2024-05-01T12:00:00Z"),
    (dt.datetime(2024, 5, 1, 14, tzinfo=dt.timezone(dt.timedelta(hours=2))), "2024-05-01T12:00:00Z"),
    (dt.datetime(2024, 5, 1, 12), "2024-05-01T12:00:00Z"),  # naive means UTC
    (pd.Timestamp("2024-05-01 12:00"), "2024-05-01T12:00:00Z"),
    (pd.Timestamp("2024-05-01 08:00", tz="America/New_York"), "2024-05-01T12:00:00Z"),
    (np.datetime64("2024-05-01T12:00:00"), "2024-05-01T12:00:00Z"),
    (dt.date(2024, 5, 1), "2024-05-01T00:00:00Z"),
    (1714564800, "2024-05-01T12:00:00Z"),
    (1714564800.25, "2024-05-01T12:00:00.25Z"),
    ("1714564800", "2024-05-01T12:00:00Z"),
    ("1714564800.5", "2024-05-01T12:00:00.5Z"),
    ("2024-05-01T12:00:00Z", "2024-05-01T12:00:00Z"),
    ("2024-05-01T14:00:00+02:00", "2024-05-01T12:00:00Z"),
    ("2024-05-01 12:00", "2024-05-01T12:00:00Z"),
    ("now", "2024-05-01T12:00:00Z"),
    ("NOW", "2024-05-01T12:00:00Z"),
    ("-1h", "2024-05-01T11:00:00Z"),
    ("now-1h", "2024-05-01T11:00:00Z"),
    ("now - 90m", "2024-05-01T10:30:00Z"),
    ("30m", "2024-05-01T11:30:00Z"),  # a bare duration is that long ago
    ("1h30m", "2024-05-01T10:30:00Z"),
    ("+5m", "2024-05-01T12:05:00Z"),
    ("now+1d", "2024-05-02T12:00:00Z"),
])
def test_times(value, expected):
    ts = to_timestamp(value, now=NOW)
    assert ts == pd.Timestamp(expected)
    assert str(ts.tz) == "UTC" and ts.unit == "ns"


@pytest.mark.parametrize("value", ["yesterday-ish", "", "now-", "-1x", "1h-", True, None, float("nan"), [1], "nowish"])
def test_bad_times_say_what_is_accepted(value):
    with pytest.raises(InvalidArgument, match="time"):
        to_timestamp(value, now=NOW)


def test_now_is_read_once_per_call_site():
    start = to_timestamp("-1h", now=NOW)
    end = to_timestamp("now", now=NOW)
    assert end - start == pd.Timedelta(hours=1)


@pytest.mark.parametrize(("value", "ms"), [
    ("15s", 15_000), ("1m30s", 90_000), ("500ms", 500), ("2h", 7_200_000), ("1d", 86_400_000),
    ("1w", 604_800_000), ("1y", 31_536_000_000), ("1h0m5s", 3_605_000), (15, 15_000), (0.5, 500),
    ("15", 15_000), ("0.25", 250), (dt.timedelta(minutes=2), 120_000), (pd.Timedelta("3s"), 3_000),
])
def test_durations(value, ms):
    assert to_millis(to_timedelta(value)) == ms


@pytest.mark.parametrize("value", ["5 minutes", "1m1h", "m", "", "1.5m", True, float("inf"), "-"])
def test_bad_durations(value):
    with pytest.raises(InvalidArgument, match="duration"):
        to_timedelta(value, name="step")


@pytest.mark.parametrize(("value", "text"), [("90s", "1m30s"), (60, "1m"), ("1500ms", "1s500ms"),
                                             ("1d2h", "1d2h"), (0.001, "1ms")])
def test_format_duration(value, text):
    assert format_duration(value) == text
    assert to_timedelta(text) == to_timedelta(value)


def test_format_duration_rejects_zero():
    with pytest.raises(InvalidArgument, match="positive"):
        format_duration(0)


@pytest.mark.parametrize(("ms", "text"), [(1_700_000_000_000, "1700000000.000"), (1_700_000_000_005, "1700000000.005"),
                                          (-1_500, "-1.500"), (0, "0.000")])
def test_format_unix_ms_is_exact(ms, text):
    assert format_unix_ms(ms) == text
    assert round(float(text) * 1000) == ms


@pytest.mark.parametrize(("value", "expected"), [
    ("today", "2024-05-01T00:00:00Z"), ("yesterday", "2024-04-30T00:00:00Z"), ("Tomorrow", "2024-05-02T00:00:00Z"),
])
def test_today_is_utc_midnight_in_any_local_zone(monkeypatch, value, expected):
    import time

    for zone in ("America/New_York", "Asia/Kolkata", "UTC"):
        monkeypatch.setenv("TZ", zone)
        time.tzset()
        assert to_timestamp(value, now=NOW) == pd.Timestamp(expected)
    assert to_timestamp("today").hour == 0  # against the real clock too
    monkeypatch.delenv("TZ")
    time.tzset()


@pytest.mark.parametrize(("value", "match"), [
    (1_700_000_000_000, "looks like milliseconds: pass 1700000000.000"),
    ("1700000000000", "looks like milliseconds"),
    (1.7e12, "looks like milliseconds"),
    (10**30, "outside the years 1677 to 2262"),
    ("-300y", "longer than the 292 years"),
    ("+1000y", "longer than the 292 years"),
    ("+250y", "outside the years 1677 to 2262"),
    ("Jan 5", "without a year"),
    ("1e400", "outside the years 1677 to 2262"),
    (dt.datetime(1, 1, 1), "outside the years 1677 to 2262"),
    (np.datetime64("3000-01-01"), "outside the years 1677 to 2262"),
    ("-1", "ambiguous: write -1s or -1h"),
    ("+5", "ambiguous"),
    ("-1.5", "ambiguous"),
])
def test_out_of_range_and_ambiguous_times_name_the_argument(value, match):
    with pytest.raises(InvalidArgument, match=match) as caught:
        to_timestamp(value, now=NOW, name="start")
    assert str(caught.value).startswith("start=")


@pytest.mark.parametrize("value", [1e20, "1e20", "999999999y", dt.timedelta(days=999_999)])
def test_huge_durations_name_the_argument(value):
    with pytest.raises(InvalidArgument, match=r"^window="):
        to_timedelta(value, name="window")


def test_a_zero_window_names_the_argument():
    with pytest.raises(InvalidArgument, match=r"^window must be a positive duration"):
        format_duration(0, name="window")


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.integers(), st.floats(), st.text(max_size=12),
                 st.from_regex(r"(now)?[+-]?[0-9]{1,12}(y|w|d|h|m|s|ms)?", fullmatch=True),
                 st.datetimes(), st.timedeltas()))
def test_any_time_is_read_or_refused_cleanly(value):
    try:
        ts = to_timestamp(value, now=NOW, name="time")
    except InvalidArgument as exc:
        message = str(exc)
    else:
        assert str(ts.tz) == "UTC" and ts.unit == "ns"
        return
    assert "time" in message


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.integers(), st.floats(), st.text(max_size=12),
                 st.from_regex(r"[0-9]{1,14}(y|w|d|h|m|s|ms)", fullmatch=True), st.timedeltas()))
def test_any_duration_is_read_or_refused_cleanly(value):
    try:
        td = to_timedelta(value, name="step")
    except InvalidArgument as exc:
        message = str(exc)
    else:
        assert isinstance(td, pd.Timedelta)
        return
    assert "step" in message
