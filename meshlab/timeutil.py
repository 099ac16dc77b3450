"""Times, durations and steps: how meshlab reads them, in one place.

Time arguments (``time=``, ``start=``, ``end=``) accept:

- an aware ``datetime`` or ``pandas.Timestamp``: converted to UTC;
- a naive ``datetime`` or ``pandas.Timestamp``: read as UTC (never as local time);
- an ``int`` or ``float``: unix seconds (a float is read to the microsecond, all it holds);
- ``"now"``;
- ``"today"``, ``"yesterday"``, ``"tomorrow"``: midnight UTC of that day (never local midnight);
- a relative string: ``"-1h"``, ``"now-1h"`` and the bare ``"1h"`` all mean one hour ago;
  ``"+5m"`` and ``"now+5m"`` mean five minutes from now;
- a string of digits such as ``"1700000000"`` or ``"1700000000.5"``: unix seconds. A signed
  bare number such as ``"-1"`` is refused as ambiguous (one second ago, or 1969?): write
  ``"-1s"`` or ``"-1h"`` for a relative time;
- any other string: parsed as ISO 8601 (``"2024-05-01T12:00:00Z"``); naive means UTC.

Times must fall within the years 1677 to 2262 (what pandas holds); a number past that, such
as milliseconds given as seconds (``1700000000000``), is refused with a hint.

Duration arguments (``step=``, ``window=``) accept a Prometheus duration string
(``"30s"``, ``"1m30s"``, ``"500ms"``, ``"1d"``), a number of seconds, or a ``timedelta``.

Prometheus keeps time in milliseconds, so times and durations sent to a server are
rounded to the nearest millisecond.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from decimal import Decimal
from typing import Union

import numpy as np
import pandas as pd

from .errors import InvalidArgument

__all__ = [
    "Duration",
    "TimeLike",
    "format_duration",
    "format_unix_ms",
    "to_millis",
    "to_timedelta",
    "to_timestamp",
    "utc_now",
]

TimeLike = Union[dt.datetime, dt.date, pd.Timestamp, np.datetime64, int, float, str]
Duration = Union[str, int, float, dt.timedelta, pd.Timedelta]

_UNITS_MS = {"y": 365 * 86_400_000, "w": 7 * 86_400_000, "d": 86_400_000,
             "h": 3_600_000, "m": 60_000, "s": 1_000, "ms": 1}
# Prometheus' own duration grammar: units in this order, each at most once.
_DURATION = re.compile(r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$")
_DURATION_UNITS = ("y", "w", "d", "h", "m", "s", "ms")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_RELATIVE = re.compile(r"^(now)?\s*([+-]?)\s*([0-9a-z]+)$")
_MAX_SECONDS = 9_223_372_036  # int64 nanoseconds
_DAYS = {"today": 0, "yesterday": -1, "tomorrow": 1}
_RANGE = "the years 1677 to 2262 that pandas can hold"


def _out_of_range(name: str, value: object, seconds: float | None = None) -> InvalidArgument:
    hint = ""
    if seconds is not None and 1e11 < abs(seconds) < 1e17:
        hint = f"; it looks like milliseconds: pass {seconds / 1000:.3f} (seconds)"
    elif isinstance(value, str) and not re.search(r"\d{4}", value):
        hint = "; a date without a year (such as 'Jan 5') is read as year 1: write the year"
    return InvalidArgument(f"{name}={value!r} is outside {_RANGE}{hint}")


def utc_now() -> pd.Timestamp:
    """Return the current time as an aware UTC timestamp with nanosecond unit."""
    return pd.Timestamp.now(tz="UTC").as_unit("ns")


def to_timedelta(value: Duration, *, name: str = "duration") -> pd.Timedelta:
    """Read a duration.

    Parameters
    ----------
    value : str, int, float, timedelta or pandas.Timedelta
        ``"30s"``, ``"1m30s"``, ``"500ms"``, ``"2h"``, ``"1d"``, ``"1w"``, ``"1y"`` (365 days),
        a number of seconds (``15``, ``0.5``, ``"15"``), or a timedelta.
    name : str
        The argument's name, used in error messages.

    Returns
    -------
    pandas.Timedelta

    Raises
    ------
    InvalidArgument
        If the value is not a duration.
    """
    if isinstance(value, bool):
        raise InvalidArgument(f"{name} must be a duration such as '30s' or a number of seconds, not {value!r}")
    try:
        return _timedelta(value, name)
    except (OverflowError, ValueError) as exc:  # pandas' OutOfBoundsTimedelta is a ValueError
        if isinstance(exc, InvalidArgument):
            raise
        raise InvalidArgument(f"{name}={value!r} is longer than the 292 years pandas can hold") from None


def _timedelta(value: Duration, name: str) -> pd.Timedelta:
    if isinstance(value, (pd.Timedelta, dt.timedelta)):
        return pd.Timedelta(value).as_unit("ns")
    if isinstance(value, (int, float, np.integer, np.floating)):
        seconds = float(value)  # an int past a float's range raises OverflowError: refused below
        if not math.isfinite(seconds):
            raise InvalidArgument(f"{name} must be a finite duration, got {value!r}")
        if abs(seconds) > _MAX_SECONDS:  # pandas would give NaT near the edge, not an error
            raise OverflowError
        return pd.Timedelta(seconds=seconds).as_unit("ns")
    if isinstance(value, str):
        text = value.strip()
        if _NUMBER.match(text):
            return to_timedelta(float(text), name=name)
        match = _DURATION.match(text)
        if text and match:
            ms = sum(int(n) * _UNITS_MS[u] for n, u in zip(match.groups(), _DURATION_UNITS, strict=True) if n)
            return pd.Timedelta(milliseconds=ms).as_unit("ns")
    raise InvalidArgument(
        f"{name}={value!r} is not a duration; use a Prometheus duration such as '30s', '5m', "
        "'1h30m' or '500ms', a number of seconds, or a timedelta"
    )


def to_timestamp(value: TimeLike, *, now: pd.Timestamp | None = None, name: str = "time") -> pd.Timestamp:
    """Read a point in time as an aware UTC timestamp.

    Parameters
    ----------
    value : datetime, date, pandas.Timestamp, numpy.datetime64, int, float or str
        See the module docstring for every accepted form. Naive values are UTC.
    now : pandas.Timestamp, optional
        The instant that ``"now"`` and relative forms refer to. Pass the same value for
        ``start`` and ``end`` so both are read against one clock reading.
    name : str
        The argument's name, used in error messages.

    Returns
    -------
    pandas.Timestamp
        Aware, UTC, nanosecond unit.

    Raises
    ------
    InvalidArgument
        If the value cannot be read as a time.
    """
    if isinstance(value, bool) or value is None:
        raise InvalidArgument(f"{name} must be a time, not {value!r}")
    try:
        return _timestamp(value, now, name)
    except (OverflowError, ValueError) as exc:  # pandas' OutOfBoundsDatetime is a ValueError
        if isinstance(exc, InvalidArgument):
            raise
        seconds = float(value) if isinstance(value, (int, float, np.integer, np.floating)) else None
        raise _out_of_range(name, value, seconds) from None


def _timestamp(value: TimeLike, now: pd.Timestamp | None, name: str) -> pd.Timestamp:
    if isinstance(value, (int, np.integer)):
        if abs(int(value)) > _MAX_SECONDS:
            raise _out_of_range(name, value, float(value))
        return pd.Timestamp(int(value) * 10**9, unit="ns", tz="UTC")
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            raise InvalidArgument(f"{name} must be a finite unix time in seconds, got {value!r}")
        if abs(value) > _MAX_SECONDS:
            raise _out_of_range(name, value, float(value))
        # A float holds unix seconds to about 0.2 us today: read it to the microsecond.
        whole = math.floor(value)
        return pd.Timestamp(int(whole) * 10**9 + round((float(value) - whole) * 1e6) * 1000, unit="ns", tz="UTC")
    if isinstance(value, str):
        return _parse_time_string(value, now=now, name=name)
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if isinstance(value, (dt.datetime, pd.Timestamp, np.datetime64)):
        ts = pd.Timestamp(value)
        if ts is pd.NaT:
            raise InvalidArgument(f"{name} must be a time, not NaT")
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        return ts.as_unit("ns")
    raise InvalidArgument(
        f"{name}={value!r} ({type(value).__name__}) is not a time; use a datetime, a pandas "
        "Timestamp, unix seconds, an ISO 8601 string, 'now' or a relative form like '-1h'"
    )


def _parse_time_string(text: str, *, now: pd.Timestamp | None, name: str) -> pd.Timestamp:
    stripped = text.strip()
    if _NUMBER.match(stripped):
        if stripped[0] in "+-":
            raise InvalidArgument(
                f"{name}={text!r} is ambiguous: write {stripped}s or {stripped}h for a time relative to now, "
                f"or an unsigned number ({stripped.lstrip('+-')}) or a number (not a string) for unix seconds"
            )
        seconds = Decimal(stripped)
        if abs(seconds) > _MAX_SECONDS:
            raise _out_of_range(name, text, float(seconds))
        return pd.Timestamp(int((seconds * 10**9).to_integral_value()), unit="ns", tz="UTC")
    lowered = stripped.lower()
    base = now.tz_convert("UTC").as_unit("ns") if now is not None else utc_now()
    if lowered == "now":
        return base
    if lowered in _DAYS:  # midnight UTC, whatever the machine's time zone
        return base.normalize() + pd.Timedelta(days=_DAYS[lowered])
    relative = _RELATIVE.match(lowered)
    # 'now-1h', '-1h' and '1h' (one hour ago); 'now+5m' and '+5m' (in five minutes).
    if relative and _DURATION.match(relative[3]) and (relative[1] is None or relative[2]):
        delta = to_timedelta(relative[3], name=name)
        return base + delta if relative[2] == "+" else base - delta
    try:
        ts = pd.Timestamp(stripped)
    except (ValueError, TypeError):
        ts = None
    if ts is None or ts is pd.NaT:
        raise InvalidArgument(
            f"{name}={text!r} is not a time; use an ISO 8601 string ('2024-05-01T12:00:00Z'), "
            "unix seconds, 'now', or a relative form like '-1h', 'now-30m' or '30m' (30 minutes ago)"
        )
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.as_unit("ns")


def to_millis(value: pd.Timestamp | pd.Timedelta) -> int:
    """Return a timestamp (unix epoch) or a duration in whole milliseconds, rounded to nearest."""
    nanos = value.value
    return int((nanos + 500_000) // 1_000_000)


def format_unix_ms(ms: int) -> str:
    """Format milliseconds since the epoch as exact decimal seconds, e.g. ``'1700000000.250'``."""
    sign = "-" if ms < 0 else ""
    seconds, millis = divmod(abs(ms), 1000)
    return f"{sign}{seconds}.{millis:03d}"


def format_duration(value: Duration, *, name: str = "duration") -> str:
    """Format a duration the way PromQL range selectors expect it, e.g. ``'1m30s'``, ``'250ms'``.

    Raises
    ------
    InvalidArgument
        If the duration is not positive.
    """
    ms = to_millis(to_timedelta(value, name=name))
    if ms <= 0:
        raise InvalidArgument(f"{name} must be a positive duration such as '5m' (a PromQL range), got {value!r}")
    parts = []
    for unit in ("d", "h", "m", "s", "ms"):
        n, ms = divmod(ms, _UNITS_MS[unit])
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts)
