"""The ``meshlab`` command line: ``meshlab demo`` and ``meshlab query``."""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .errors import BinaryNotFoundError, MeshlabError

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    """Start a local Prometheus on a small synthetic history, query it, write a CSV."""
    from .demo import DEMO_END_MS, write_demo_history
    from .prometheus.local import LocalPrometheus
    from .report import write_csv

    with tempfile.TemporaryDirectory(prefix="meshlab-demo-") as tmp:
        data = write_demo_history(Path(tmp) / "demo.om")
        try:
            server = LocalPrometheus(openmetrics=data)
        except BinaryNotFoundError as exc:
            print(f"meshlab demo needs a Prometheus server binary: {exc}", file=sys.stderr)
            return 3
        with server:
            promql = "sum by (namespace, deployment) (rate(demo_requests_total[1m]))"
            end = DEMO_END_MS / 1000
            frame = server.client.query_range(promql, end - 3000, end, "1m")
    out = write_csv(frame, args.out)
    summary = frame.groupby(["namespace", "deployment"], observed=True)["value"].agg(["count", "mean"])
    print(f"Queried a local Prometheus ({len(frame)} rows):\n  {promql}\n")
    print(summary.rename(columns={"count": "points", "mean": "mean rps"}).round(2).to_string())
    print(f"\nWrote {out}")
    return 0


def _query(args: argparse.Namespace) -> int:
    from .prometheus.client import Prometheus
    from .report import write_csv

    prom = Prometheus(args.url, timeout=args.timeout)
    if args.start is None:
        frame = prom.query(args.promql, time=args.time)
    else:
        frame = prom.query_range(args.promql, args.start, args.end, args.step)
    if args.out:
        print(f"wrote {len(frame)} rows to {write_csv(frame, args.out)}")
    else:
        frame.to_csv(sys.stdout, index=False)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, exposed for documentation and tests."""
    parser = argparse.ArgumentParser(prog="meshlab", description="Service-mesh golden signals as tidy data.")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run the end-to-end demo against a local Prometheus")
    demo.add_argument("--out", default="out/demo-query.csv", help="CSV to write (default: %(default)s)")
    demo.set_defaults(run=_demo)

    query = commands.add_parser("query", help="run a PromQL query and write a tidy CSV")
    query.add_argument("url", help="Prometheus base URL, e.g. http://127.0.0.1:9090")
    query.add_argument("promql", help="the PromQL expression")
    query.add_argument("--time", default=None, help="instant query time (default: the server's now)")
    query.add_argument("--start", default=None, help="range start, e.g. -1h or an ISO time")
    query.add_argument("--end", default="now", help="range end (default: %(default)s)")
    query.add_argument("--step", default="1m", help="range step (default: %(default)s)")
    query.add_argument("--timeout", type=float, default=30.0, help="seconds (default: %(default)s)")
    query.add_argument("-o", "--out", default=None, help="CSV file to write (default: stdout)")
    query.set_defaults(run=_query)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except MeshlabError as exc:
        print(f"meshlab: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
