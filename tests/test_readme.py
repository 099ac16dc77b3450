"""Every Python example in the README runs against a sandbox and returns data.

The README's examples use relative times ("now", "-1h"), so this also checks that a sandbox's run ends at the
current time: when it sat at the scenario's fixed 2024 date, every one of them came back empty.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from .conftest import UPSTREAM, require_binary

README = Path(__file__).resolve().parent.parent / "README.md"
ALL_MESHES = ("linkerd", "istio", "consul", "kuma", "hubble")


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.S | re.M)


def has_data(value: Any) -> bool:
    if isinstance(value, pd.DataFrame | pd.Series):
        return len(value) > 0
    if isinstance(value, dict | list | tuple | str):
        return len(value) > 0
    return value is not None


class _CheckEveryExpression(ast.NodeTransformer):
    """Wrap each expression statement and each assignment so that its value is checked for data."""

    def visit_Expr(self, node: ast.Expr) -> ast.AST:
        if isinstance(node.value, ast.Call) and getattr(node.value.func, "id", None) == "print":
            return node  # prints what the lines above computed; those were checked
        call = ast.Call(ast.Name("_check", ast.Load()), [node.value, ast.Constant(node.lineno)], [])
        return ast.copy_location(ast.Expr(call), node)

    def visit_Assign(self, node: ast.Assign) -> ast.AST:
        node.value = ast.Call(ast.Name("_check", ast.Load()), [node.value, ast.Constant(node.lineno)], [])
        return node


@pytest.fixture(scope="module")
def readme_sandbox():
    require_binary("prometheus")
    import meshlab as ml

    with ml.sandbox(scenario="shop", meshes=ALL_MESHES, hours=1) as prom:
        yield prom


def test_readme_has_python_examples():
    assert len(python_blocks()) >= 5


@pytest.mark.parametrize("index", range(len(python_blocks())), ids=lambda i: f"block{i + 1}")
def test_readme_example_returns_data(index, readme_sandbox, tmp_path, monkeypatch):
    import meshlab as ml

    prom = readme_sandbox
    monkeypatch.chdir(tmp_path)  # what the examples write (charts, reports) stays out of the checkout
    source = python_blocks()[index].replace("http://127.0.0.1:9090", prom.url)
    source = source.replace("../shared/fixtures/upstream/", f"{UPSTREAM}/")
    empty: list[str] = []
    lines = source.splitlines()

    def check(value: Any, lineno: int) -> Any:
        if not has_data(value):
            empty.append(lines[lineno - 1].strip())
        return value

    now = pd.Timestamp.now(tz="UTC")
    namespace: dict[str, Any] = {
        "ml": ml, "json": json, "prom": prom, "_check": check,
        # the names the examples leave to the reader
        "ns": "shop", "names": ["cart", "catalog"], "t0": now - pd.Timedelta("50min"), "t1": now,
        "prom_eu": prom, "prom_us": prom, "sources": {"prod-eu": prom, "prod-us": prom},
    }
    if "from_traffic_metrics(raw" in source:  # what `kubectl get --raw` would print: an SMI list
        edges = ml.Linkerd(prom).edges("deployment", at="now", window="1m")
        namespace["raw"] = json.dumps(ml.smi.to_traffic_metrics(edges))
    tree = ast.fix_missing_locations(_CheckEveryExpression().visit(ast.parse(source)))
    exec(compile(tree, f"README block {index + 1}", "exec"), namespace)
    assert not empty, f"README block {index + 1}: these returned no data: {empty}"
