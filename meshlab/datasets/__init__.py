"""Bundled datasets: ``ml.datasets.list()`` and ``ml.datasets.load(name)``.

Each dataset is a directory with a ``manifest.json``, a ``README.md`` dataset card, the
scenario that produced it, and Parquet files: the query frames (results of real PromQL
against a real Prometheus backfilled by the simulator), the mesh adapters' frames from
that same Prometheus, and the ground truth. Installed
wheels carry them as package data; a source checkout reads the top-level ``datasets/``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .. import schema
from ..errors import InvalidArgument

__all__ = ["Dataset", "data_dir", "list", "load"]

_list = list


def data_dir() -> Path:
    """Where the datasets are: inside the installed package, else the source checkout's ``datasets/``."""
    packaged = Path(__file__).parent / "data"
    if packaged.is_dir() and any(packaged.glob("*/manifest.json")):
        return packaged
    return Path(__file__).resolve().parents[2] / "datasets"


def list() -> _list[str]:
    """The names of the bundled datasets."""
    return sorted(p.parent.name for p in data_dir().glob("*/manifest.json"))


@dataclass
class Dataset:
    """A loaded dataset.

    Attributes
    ----------
    name : str
    queries : dict of str to pandas.DataFrame
        Query frames by name; ``manifest["queries"][name]`` has the PromQL, step and mesh.
    frames : dict of str to pandas.DataFrame
        What the mesh adapters returned from the same Prometheus, every mesh in one frame
        per kind: ``traffic``, ``edges``, ``tcp``, ``proxies``.
    truth : dict of str to pandas.DataFrame
        Ground truth by kind: ``traffic``, ``edges``, ``tcp``, ``proxies``, ``status_counts``.
    manifest : dict
    card : str
        The dataset card (README.md).
    path : pathlib.Path
    """

    name: str
    queries: dict[str, pd.DataFrame]
    frames: dict[str, pd.DataFrame]
    truth: dict[str, pd.DataFrame]
    manifest: dict[str, Any]
    card: str
    path: Path

    @property
    def scenario(self) -> Any:
        """The simulator scenario that produced the data."""
        from ..sim.scenario import load_scenario

        return load_scenario(self.path / "scenario.yaml")

    def __repr__(self) -> str:
        return (f"<Dataset {self.name!r}: {len(self.queries)} query frames, adapter frames: "
                f"{', '.join(self.frames)}, truth: {', '.join(self.truth)}; "
                f"{self.manifest.get('description', '')}>")

    def _repr_html_(self) -> str:
        from .._html import dataset_html

        return dataset_html(self)


def _read(path: Path, kind: str) -> pd.DataFrame:
    return schema.conform(pd.read_parquet(path), kind)  # Parquet may hand back another time unit


def load(name: str) -> Dataset:
    """Load a bundled dataset; every frame is validated against :mod:`meshlab.schema`.

    Raises
    ------
    InvalidArgument
        For an unknown name, listing the available ones.
    """
    path = data_dir() / name
    manifest_path = path / "manifest.json"
    if not manifest_path.exists():
        available = ", ".join(list()) or "none (run `make datasets`)"
        raise InvalidArgument(f"unknown dataset {name!r}; available: {available}")
    manifest = json.loads(manifest_path.read_text())
    queries = {q: _read(path / meta["file"], "query") for q, meta in manifest["queries"].items()}
    frames = {kind: _read(path / meta["file"], kind) for kind, meta in manifest.get("frames", {}).items()}
    truth = {kind: _read(path / file, kind) for kind, file in manifest["truth"].items()}
    return Dataset(name, queries, frames, truth, manifest, (path / "README.md").read_text(), path)
