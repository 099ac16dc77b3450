"""Write frames to files atomically: a reader never sees a half-written report."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd

__all__ = ["write_csv"]


def write_csv(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write a frame as CSV, atomically.

    The CSV is written to a temporary file beside ``path`` and renamed over it, so an
    interrupted write leaves the old file (or none), never a truncated one. Timestamps
    are written in ISO 8601 with their UTC offset.

    Parameters
    ----------
    frame : pandas.DataFrame
        The frame to write; its index is not written.
    path : path-like
        The destination. Parent directories are created.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            frame.to_csv(handle, index=False, date_format="%Y-%m-%dT%H:%M:%S.%fZ")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
