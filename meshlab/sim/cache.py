"""The sandbox cache: TSDB blocks of simulated runs, kept to a budget, least recently used first.

Split from :mod:`meshlab.sim.sandbox`, which uses it (and re-exports its names).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ..errors import InvalidArgument
from ..prometheus.local import flock

__all__ = ["CACHE_MAX_BYTES", "cache_dir", "prune_cache"]

#: How much the sandbox cache may hold before the least recently used runs are removed.
CACHE_MAX_BYTES = 2 * 2**30


def cache_dir() -> Path:
    """Where sandboxes cache their TSDB blocks: ``$MESHLAB_CACHE``, else ``~/.cache/meshlab``."""
    explicit = os.environ.get("MESHLAB_CACHE")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "meshlab"


def prune_cache(max_bytes: int | None = None, *, keep: Sequence[Path] = ()) -> list[Path]:
    """Remove the least recently used cached runs until the sandbox cache holds at most ``max_bytes``.

    Safe to run from several processes: pruning takes the cache's lock exclusively, and a
    sandbox holds it shared while it copies a run, so no run is removed under a reader.

    Parameters
    ----------
    max_bytes : int, optional
        The budget; ``$MESHLAB_CACHE_MAX_BYTES``, else 2 GiB. ``0`` empties the cache.
    keep : sequence of Path
        Runs never removed (the one just built).

    Returns
    -------
    list of Path
        The runs removed.
    """
    budget = _cache_budget() if max_bytes is None else max_bytes
    root = cache_dir() / "sandbox"
    removed = []
    with _cache_lock(shared=False):
        runs = {}
        for run in root.iterdir():
            if run.is_dir() and not run.name.startswith("."):  # dot-names are runs still being built
                try:
                    runs[run] = (run.stat().st_mtime, sum(f.stat().st_size for f in run.rglob("*") if f.is_file()))
                except FileNotFoundError:  # removed by hand meanwhile
                    continue
        total = sum(size for _, size in runs.values())
        for run in sorted(runs, key=lambda r: runs[r][0]):  # oldest use first
            if total <= budget:
                break
            if run in keep:
                continue
            shutil.rmtree(run, ignore_errors=True)
            total -= runs[run][1]
            removed.append(run)
    return removed


def _cache_budget() -> int:
    text = os.environ.get("MESHLAB_CACHE_MAX_BYTES")
    if text is None:
        return CACHE_MAX_BYTES
    try:
        return int(text)
    except ValueError:
        raise InvalidArgument(f"MESHLAB_CACHE_MAX_BYTES must be a whole number of bytes (e.g. {CACHE_MAX_BYTES}), "
                              f"got {text!r}") from None


@contextmanager
def _cache_lock(*, shared: bool) -> Iterator[None]:
    """The sandbox cache's lock: shared while a run is read, exclusive while runs are removed."""
    root = cache_dir() / "sandbox"
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "ab") as lock:
        flock(lock, shared=shared, wait=True)
        yield
