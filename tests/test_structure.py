"""One concept, one place: the family headers every writer writes, and imports that do not cycle."""

from __future__ import annotations

import ast
import io
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from meshlab.openmetrics import OpenMetricsWriter, family_header
from meshlab.sim.output import exposition, write_chunk
from meshlab.sim.render import Block, Family

HELP = 'Bytes "sent", per\\second\nand more'
#: by hand, from the OpenMetrics spec (escape \ " and line feed in HELP) and the Prometheus
#: text format 0.0.4 (escape \ and line feed only)
OPENMETRICS_HEADER = '# TYPE x_bytes gauge\n# HELP x_bytes Bytes \\"sent\\", per\\\\second\\nand more\n'
TEXT_HEADER = '# TYPE x_bytes gauge\n# HELP x_bytes Bytes "sent", per\\\\second\\nand more\n'


def block() -> Block:
    family = Family("x_bytes", "gauge", HELP)
    return Block(family, ["x_bytes"], [{"a": "1"}], np.array([[5.0, 6.0]]))


def test_every_writer_starts_a_family_with_type_then_escaped_help(tmp_path):
    out = io.StringIO()
    with OpenMetricsWriter(out) as writer:
        writer.family("x_bytes", "gauge", HELP)
        writer.series("x_bytes", {"a": "1"}, [1_700_000_000_000], [5.0])
    assert out.getvalue().startswith(OPENMETRICS_HEADER)
    path = tmp_path / "chunk.om"
    write_chunk(path, [block()], np.array([1_700_000_000_000, 1_700_000_015_000]))
    assert path.read_text().startswith(OPENMETRICS_HEADER)
    assert exposition([block()], 1).startswith(TEXT_HEADER)
    assert exposition([block()], 1).splitlines()[2] == 'x_bytes{a="1"} 6.0'
    assert family_header("x_bytes", "gauge") == "# TYPE x_bytes gauge\n"


def test_openmetrics_imports_nothing_from_the_prometheus_package():
    # openmetrics sits below meshlab.prometheus (local.py writes with it): the other way would be a cycle
    code = ("import sys, meshlab.openmetrics; "
            "print(sorted(m for m in sys.modules if m.startswith('meshlab.prometheus')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_without_fcntl_the_lockers_import_and_fail_at_use_with_a_clear_error():
    # Windows has no fcntl: importing must work, taking a lock must say why it cannot
    code = ("import sys; sys.modules['fcntl'] = None\n"
            "import meshlab as ml, meshlab.sim.sandbox\n"
            "from meshlab.prometheus.local import LocalPrometheus, locked_tempdir\n"
            "from meshlab.errors import MeshlabError\n"
            "try:\n"
            "    with locked_tempdir('meshlab-test-'):\n"
            "        pass\n"
            "except MeshlabError as exc:\n"
            "    print(exc)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ("meshlab's local servers and sandbox cache lock files with POSIX flock, which this "
                                   "platform lacks; run them on Linux or macOS (on Windows, under WSL)")


# -- size and layout ------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "meshlab"
#: A module longer than this must give the reason in its docstring, in a sentence starting
#: "Longer than 400 lines" (e.g. "Longer than 400 lines: one algorithm, whose steps share ...").
MAX_LINES = 400
REASON = re.compile(r"(?:^|[.:!?]\s+|\n\s*)Longer than 400 lines\b", re.MULTILINE)
#: Modules being split in parallel on other branches; the lead empties this set after merging them.
TEMPORARILY_ALLOWED: frozenset[str] = frozenset()


def long_modules_without_a_reason() -> list[str]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) < MAX_LINES:
            continue
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if not REASON.search(docstring):
            out.append(f"{path.relative_to(ROOT).as_posix()} ({len(text.splitlines())} lines)")
    return out


def test_every_module_is_short_or_says_why_it_is_long():
    offenders = [m for m in long_modules_without_a_reason() if m.split(" ")[0] not in TEMPORARILY_ALLOWED]
    assert offenders == [], (f"split these along a seam, or give the reason in the module docstring in a sentence "
                             f"starting 'Longer than {MAX_LINES} lines': {offenders}")


def test_the_temporary_allowances_are_still_needed():
    # an allowance outlives its module's split only by mistake: once short (or explained), drop it
    still_long = {m.split(" ")[0] for m in long_modules_without_a_reason()}
    assert sorted(TEMPORARILY_ALLOWED - still_long) == []


def layout_block() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    return section.split("```", 2)[1]


def test_the_readme_layout_names_every_package_directory():
    """Every directory of Python modules under meshlab/ is in the Layout block: a top-level one as
    ``meshlab/NAME/``, a nested one as ``NAME/`` on its parent's entry (up to the next ``meshlab/``)."""
    block = layout_block()
    missing = []
    for directory in sorted({p.parent for p in PACKAGE.rglob("*.py")} - {PACKAGE}):
        first, *nested = directory.relative_to(PACKAGE).parts
        entry = f"meshlab/{first}/"
        if entry not in block:
            missing.append(entry)
            continue
        text = block.split(entry, 1)[1].split("meshlab/", 1)[0]
        missing += [f"{entry}{part}/" for part in nested if f"{part}/" not in text]
    assert missing == []
