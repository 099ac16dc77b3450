"""``meshlab report``: a report folder (CSV, Parquet, an offline HTML page) from a dataset or a Prometheus."""

from __future__ import annotations

from typing import Any

import click

from ..errors import InvalidArgument
from .common import debug_option, prometheus
from .core import Command, duration_type, positive, time_type

_HELP = """Write a report folder: every frame as CSV and Parquet, a column dictionary and one
self-contained report.html (ml.report).

From a bundled dataset (--dataset mesh-shootout), or from a Prometheus: the adapters' traffic,
edges, tcp and proxies frames of each mesh (--mesh, auto: every mesh detected) from --start to
--end every --step.

\b
  meshlab report --dataset mesh-shootout --out ./meshlab-report
  meshlab report --prometheus http://127.0.0.1:9090 --mesh linkerd --start -1h
"""


@click.command(cls=Command, help=_HELP, short_help="Write a report folder with CSVs and an HTML page.")
@click.option("--dataset", default=None, help="A bundled dataset (see: meshlab datasets list).")
@click.option("--prometheus", "url", envvar="MESHLAB_PROMETHEUS_URL", metavar="URL", default=None,
              help="Prometheus base URL (or $MESHLAB_PROMETHEUS_URL).")
@click.option("--mesh", default="auto", show_default=True, help="With --prometheus: whose metrics; auto: every mesh "
                                                                "with data.")
@click.option("-n", "--namespace", default=None, help="With --prometheus: only this namespace.")
@click.option("--start", type=time_type("--start"), default="-1h", show_default=True)
@click.option("--end", type=time_type("--end"), default="now", show_default=True)
@click.option("--step", type=duration_type("--step"), default="1m", show_default=True)
@click.option("--window", type=duration_type("--window"), default="1m", show_default=True)
@click.option("--timeout", type=positive(float, "seconds"), default=30.0, show_default=True)
@click.option("--out", default="meshlab-report", show_default=True, help="The report folder.")
@click.option("--title", default=None, help="The page's heading.")
@click.option("--no-charts", "charts", is_flag=True, flag_value=False, default=True, help="Tables only.")
@debug_option
def report(dataset: str | None, url: str | None, mesh: str, namespace: str | None, start: str, end: str, step: str,
           window: str, timeout: float, out: str, title: str | None, charts: bool) -> int:
    if (dataset is None) == (url is None):
        raise InvalidArgument("give one source: --dataset NAME or --prometheus URL")
    frames: Any
    if dataset is not None:
        from .. import datasets

        frames = datasets.load(dataset)
    else:
        assert url is not None
        from .. import schema
        from .mesh import _adapters, _check_mesh_name

        _check_mesh_name(mesh)
        prom = prometheus(url, timeout)
        adapters = _adapters(prom, mesh)
        from functools import partial

        from .progress import fetch_all

        span: dict[str, Any] = {"namespace": namespace, "start": start, "end": end, "step": step, "window": window}
        jobs: dict[str, list[tuple[str, Any]]] = {
            "traffic": [(f"{a.name} traffic", partial(a.traffic, **span)) for a in adapters],
            "edges": [(f"{a.name} edges", partial(a.edges, **span)) for a in adapters],
            "tcp": [(f"{a.name} tcp", partial(a.tcp, per="workload", **span)) for a in adapters
                    if a.tcp_workload_signal is not None],
            "proxies": [(f"{a.name} proxies", partial(a.proxies, **span)) for a in adapters],
        }
        fetched = iter(fetch_all([job for kind in jobs.values() for job in kind]))
        frames = {kind: schema.concat([next(fetched) for _ in kind_jobs], kind) for kind, kind_jobs in jobs.items()}
    from ..report import report as write_report

    done = write_report(frames, out, title=title, charts=charts)
    print(f"wrote {len(done.tables)} tables and {done.html}")
    return 0


