"""Every notebook in notebooks/ runs top to bottom in a fresh kernel, and its charts say what they show."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from .conftest import require_binary

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
_executed: dict[Path, Any] = {}


def executed(path: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The notebook run once per test session (running takes seconds to minutes)."""
    if path not in _executed:
        require_binary("prometheus")
        notebook = nbformat.read(path, as_version=4)
        client = NotebookClient(notebook, timeout=300, kernel_name="python3",
                                resources={"metadata": {"path": str(tmp_path_factory.mktemp("nb"))}})
        client.execute()  # raises CellExecutionError, with the cell and traceback, on any error
        _executed[path] = notebook
    return _executed[path]


def vegalite_specs(notebook: Any) -> Iterator[dict[str, Any]]:
    """The Vega-Lite spec of every chart output: a vegalite mimebundle, or altair's HTML, which embeds it."""
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            for mime, body in output.get("data", {}).items():
                if mime.startswith("application/vnd.vegalite"):
                    yield body
                elif mime == "text/html" and "vegaEmbed" in body:
                    start = body.rindex("})(") + len("})(")
                    yield json.JSONDecoder().raw_decode(body, start)[0]


def encodings(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every channel definition of a chart, layers and tooltip lists included."""
    for part in [spec, *spec.get("layer", []), *spec.get("concat", []), *spec.get("hconcat", []),
                 *spec.get("vconcat", [])]:
        for channel in part.get("encoding", {}).values():
            yield from (channel if isinstance(channel, list) else [channel])


def rows(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [row for values in spec.get("datasets", {}).values() for row in values]


def test_there_are_notebooks():
    assert NOTEBOOKS


def test_every_notebook_has_charts_to_check(tmp_path_factory):
    """The chart tests below read charts out of the outputs; make sure they find them."""
    charted = [p.name for p in NOTEBOOKS if any(vegalite_specs(executed(p, tmp_path_factory)))]
    assert len(charted) >= 2, charted


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom(path, tmp_path_factory):
    notebook = executed(path, tmp_path_factory)
    assert all(c.get("execution_count") for c in notebook.cells if c.cell_type == "code")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_charts_show_time_in_utc(path, tmp_path_factory):
    """A temporal axis or tooltip in the viewer's local time puts a 3 h spike at 10 PM the day before in New York."""
    for spec in vegalite_specs(executed(path, tmp_path_factory)):
        for channel in encodings(spec):
            if channel.get("type") != "temporal":
                continue
            utc_scale = channel.get("scale", {}).get("type") == "utc"
            utc_unit = str(channel.get("timeUnit", "")).startswith("utc")
            assert utc_scale or utc_unit, f"{path.name}: {channel} shows local time"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_charts_have_no_null_legend_entries(path, tmp_path_factory):
    """A series without the colour label shows up as a legend entry 'null' (ledger has no deployment label)."""
    for spec in vegalite_specs(executed(path, tmp_path_factory)):
        colour = spec.get("encoding", {}).get("color", {}).get("field")
        if colour:
            assert all(row.get(colour) is not None for row in rows(spec)), f"{path.name}: null {colour}"


def test_shootout_spike_chart_plots_what_each_mesh_measured(tmp_path_factory):
    """The chart once plotted the ground truth for every mesh, so all lines coincided."""
    path = next(p for p in NOTEBOOKS if p.name.startswith("02-"))
    spike = [s for s in vegalite_specs(executed(path, tmp_path_factory)) if "spike" in str(s.get("title"))]
    assert len(spike) == 1
    series: dict[str, list[float]] = {}
    for row in rows(spike[0]):
        if row["source"] == "measured by the mesh":
            series.setdefault(row["mesh"], []).append(row["latency_p99_ms"])
    assert {"linkerd", "istio", "consul"} <= set(series)
    lines = list(series.values())
    assert any(line != lines[0] for line in lines[1:]), "every mesh's line is the same: not what each measured"
