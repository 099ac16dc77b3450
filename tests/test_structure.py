"""One concept, one place: the family headers every writer writes, and imports that do not cycle."""

from __future__ import annotations

import io
import subprocess
import sys

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
