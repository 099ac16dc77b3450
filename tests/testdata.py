"""The series every source test loads into its real server, with their ground truth.

One OpenMetrics file holds all of them; the session fixtures backfill it into one
Prometheus and import it into one VictoriaMetrics.
"""

from __future__ import annotations

import numpy as np

from meshlab.openmetrics import Series

T0_MS = 1_700_000_000_000
STEP_MS = 15_000
POINTS = 240  # one hour at 15 s

# Label values that break naive quoting, escaping or decoding.
ODD_VALUES = [
    'say "hi"',
    "back\\slash",
    "trailing\\",
    "new\nline",
    "tab\there",
    "ünïcödé",
    "emoji 😀",
    "日本語",
    "{brace}=[bracket],comma",
    '"values":[[1,"2"]]',
    '{"metric":{}}',
    "a.b|c*",
    " spaced ",
]


def regular_series() -> list[Series]:
    """Six gauges with values of every magnitude and sign, sampled every 15 s."""
    rng = np.random.default_rng(1)
    times = T0_MS + np.arange(POINTS, dtype=np.int64) * STEP_MS
    out = []
    for i in range(6):
        scale = 10.0 ** rng.integers(-12, 15)
        values = rng.normal(0, 1, POINTS) * scale
        out.append(Series("test_gauge", {"job": f"job-{i % 2}", "instance": f"host-{i}:9100"}, times, values))
    return out


def odd_series() -> list[Series]:
    """Series with unusual label values, NaN and infinities, and reserved label names."""
    times = T0_MS + np.arange(POINTS, dtype=np.int64) * STEP_MS
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 5e-324, 1.7976931348623157e308, 0.1])
    out = [
        Series("test_odd", {"odd": value, "idx": str(i)}, times, np.resize(np.roll(specials, i), POINTS))
        for i, value in enumerate(ODD_VALUES)
    ]
    out.append(Series("test_reserved", {"value": "v", "timestamp": "t", "label_value": "lv"}, times,
                      np.arange(POINTS, dtype=float)))
    return out


LONG_POINTS = 12_500  # more than Prometheus' 11,000 points per series limit


def long_series() -> list[Series]:
    """Two long series at 15 s steps; the second has gaps longer than the 5 m lookback."""
    times = T0_MS + np.arange(LONG_POINTS, dtype=np.int64) * STEP_MS
    gaps = (np.arange(LONG_POINTS) // 2_000) % 2 == 0  # 2,000 points on, 2,000 off
    return [
        Series("test_long", {"kind": "dense"}, times, np.arange(LONG_POINTS, dtype=float) * 0.5),
        Series("test_long", {"kind": "gappy"}, times[gaps], np.arange(LONG_POINTS, dtype=float)[gaps]),
    ]


def counter_series() -> list[Series]:
    """A counter with uneven increments, where rate estimators disagree."""
    rng = np.random.default_rng(3)
    times = T0_MS + np.arange(POINTS, dtype=np.int64) * STEP_MS
    return [Series("test_counter_total", {"job": "c"}, times, np.cumsum(rng.integers(0, 100, POINTS)).astype(float))]


def all_series() -> list[Series]:
    return regular_series() + odd_series() + long_series() + counter_series()
