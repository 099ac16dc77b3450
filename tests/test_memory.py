"""Long range reads in time pieces: the same frames as one read, with memory bounded by the pieces.

The frame methods read a range of more than ``piece_steps`` steps in pieces aligned on the
steps (:meth:`meshlab.meshes.base.Mesh._piecewise`). Each step's value depends only on its
own window, so the pieces must give exactly the frame one read gives; here every frame kind
is read both ways from a real VictoriaMetrics holding two simulated clusters, with pieces
forced tiny so that windows straddle many piece boundaries.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

import meshlab as ml

from .conftest import require_binary

END = "2026-03-04T06:00:00Z"
START = "2026-03-04T05:05:00Z"
CLUSTERS = {"eu": "shop", "us": "shop"}


class Counting(ml.Prometheus):
    """A real client that counts its range queries."""

    ranges = 0

    def _fetch(self, endpoint, params, promql):  # type: ignore[no-untyped-def]
        self.ranges += endpoint == "query_range"
        return super()._fetch(endpoint, params, promql)


@pytest.fixture(scope="module")
def store() -> Iterator[str]:
    require_binary("victoria-metrics", "victoria-metrics-prod")
    with ml.sandbox(clusters=CLUSTERS, meshes=["istio"], hours=1, end=END) as vm:
        yield vm.url


def assert_same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """Equal, every column exactly but where VictoriaMetrics itself is not bit-reproducible.

    Its ``histogram_quantile`` and bucket sums are not: the same range query sent twice
    differs by up to about 1e-14 relative in some estimates (it sums in parallel), so the
    estimates are compared to 1e-12, and an estimate exactly on a bucket edge lies in both
    buckets, whose bounds may then differ (as in tests/test_fleet.py). Everything else is
    identical.
    """
    estimates = [c for c in want.columns if c.startswith("latency_") and not c.endswith(("_low_ms", "_high_ms"))]
    bounds = [c for c in want.columns if c.endswith(("_low_ms", "_high_ms"))]
    exact = [c for c in want.columns if c not in estimates and c not in bounds]
    pd.testing.assert_frame_equal(got[exact], want[exact], check_exact=True)
    assert got.memory_usage(deep=True).equals(want.memory_usage(deep=True))  # the same compact dtypes (codes)
    pd.testing.assert_frame_equal(got[estimates], want[estimates], check_exact=False, rtol=1e-12, atol=0)
    for estimate in estimates:
        low, high = estimate.removesuffix("_ms") + "_low_ms", estimate.removesuffix("_ms") + "_high_ms"
        def near(a: pd.Series, b: pd.Series) -> np.ndarray:  # a hair either side of an edge is on it
            return np.isclose(a.to_numpy(float), b.to_numpy(float), rtol=1e-9, atol=0.0)

        edge = (near(want[estimate], want[low]) | near(want[estimate], want[high])
                | near(got[estimate], got[low]) | near(got[estimate], got[high]))
        assert edge.mean() < 0.01
        pd.testing.assert_frame_equal(got.loc[~edge, [low, high]], want.loc[~edge, [low, high]], check_exact=True)


def istio(url: str, *, piece_steps: int, piece_rows: int = 50_000) -> ml.Istio:
    mesh = ml.Istio(Counting(url, params={"nocache": "1"}))  # nocache: VictoriaMetrics answers each range afresh
    mesh.piece_steps, mesh.piece_rows = piece_steps, piece_rows
    return mesh


#: every frame kind, with and without by_cluster; sub-minute steps with windows spanning several
CASES = [("traffic", {"by_cluster": True}), ("traffic", {"step": "30s", "window": "2m"}),
         ("edges", {"by_cluster": True}), ("edges", {}), ("tcp", {"by_cluster": True}), ("tcp", {"per": "workload"}),
         ("proxies", {"by_cluster": True}), ("proxies", {}),
         ("edges", {"start": "2026-03-04T04:30:00Z"})]  # the first pieces empty: the history begins at 05:00


@pytest.mark.parametrize(("frame", "options"), CASES, ids=[f"{f}-{'-'.join(o)}" for f, o in CASES])
def test_pieces_give_the_frame_one_read_gives(store, frame, options):
    read = {"start": START, "end": END, "step": "1m", "window": "5m", **options}
    whole = istio(store, piece_steps=10**6)
    pieced = istio(store, piece_steps=2, piece_rows=120)  # pieces of a few steps: windows straddle their edges
    want = getattr(whole, frame)(**read)
    got = getattr(pieced, frame)(**read)
    assert 0 < 3 * whole.prom.ranges <= pieced.prom.ranges  # it did read in pieces
    assert len(want) > 50
    assert_same(got, want)


def test_a_short_read_is_one_piece(store):
    """A range of at most piece_steps steps is read as before: one range query per signal."""
    whole, pieced = istio(store, piece_steps=10**6), istio(store, piece_steps=56, piece_rows=1)
    assert_same(pieced.traffic(start=START, end=END, step="1m", window="5m"),
                whole.traffic(start=START, end=END, step="1m", window="5m"))
    assert pieced.prom.ranges == whole.prom.ranges


def peak_while(read) -> tuple[pd.DataFrame, int]:  # type: ignore[no-untyped-def]
    tracemalloc.start()
    try:
        frame = read()
        return frame, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


#: What one piece costs while it is read, per row of the frame (raw answers, per-bucket rates, label
#: text): about 3.3 KiB measured here on pandas 3, 4.6 KiB on pandas 2.2 (no copy-on-write); a
#: read in one piece costs that for every row of the frame.
PIECE_BYTES_PER_ROW = 6144


@pytest.mark.parametrize(("frame", "step"), [("traffic", "30s")])  # edges: the same, at twice the time
def test_peak_memory_while_reading_is_a_small_multiple_of_the_frame(store, frame, step):
    """Python's peak allocation while reading: at most 4x the finished frame plus one piece's worth.

    Read in one piece (as before pieces), the peak was 28x the frame for traffic (45x on pandas 2.2),
    16x for edges.
    """
    mesh = istio(store, piece_steps=2, piece_rows=300)
    got, peak = peak_while(lambda: getattr(mesh, frame)(start=START, end=END, step=step, window="5m",
                                                        by_cluster=True))
    assert len(got) > 3 * mesh.piece_rows
    size = int(got.memory_usage(deep=True).sum())
    assert peak <= 4 * size + mesh.piece_rows * PIECE_BYTES_PER_ROW


@pytest.mark.parametrize("frame", ["edges"])
def test_pieces_of_a_span_without_data_give_the_empty_frame_one_read_gives(store, frame):
    read = {"start": "2026-03-04T02:00:00Z", "end": "2026-03-04T03:00:00Z", "step": "1m", "window": "5m"}
    want = getattr(istio(store, piece_steps=10**6), frame)(**read)
    got = getattr(istio(store, piece_steps=2, piece_rows=120), frame)(**read)
    assert len(want) == 0
    pd.testing.assert_frame_equal(got, want)
