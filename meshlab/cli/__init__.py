"""The ``meshlab`` command line, on click with rich tables.

``meshlab stat``, ``edges`` and ``top`` read a mesh's golden signals from a Prometheus now,
as ``linkerd viz stat`` does; ``query`` runs PromQL; ``sandbox`` serves a simulated scenario from a
local Prometheus; ``sim`` serves, backfills or pushes one; ``datasets list`` and ``demo`` use the
bundled data. Errors are one line, ``meshlab: error: ...``, exit status 2, with the traceback
only under ``--debug``. Only click loads at start-up: each command imports what it needs, so
``meshlab --help`` is quick and an unreachable local server is reported before pandas loads.
"""

from __future__ import annotations

import sys
import traceback
import warnings
from collections.abc import Sequence
from typing import IO

import click

from .. import __version__
from ..errors import MeshlabError
from .core import DEBUG, Group

__all__ = ["cli", "main"]


#: Commands loaded when used: name -> ("module:attribute", the short help ``meshlab --help`` lists).
LAZY = {
    "stat": ("meshlab.cli.mesh:stat", "Golden signals per workload now."),
    "edges": ("meshlab.cli.mesh:edges", "Golden signals per edge now."),
    "top": ("meshlab.cli.mesh:top", "The worst workloads now."),
    "demo": ("meshlab.cli.data:demo", "Summarise the bundled mesh-shootout dataset and build its report."),
    "query": ("meshlab.cli.data:query", "Run PromQL; a tidy CSV."),
    "datasets": ("meshlab.cli.data:datasets", "The bundled datasets."),
    "report": ("meshlab.cli.report:report", "Write a report folder with CSVs and an HTML page."),
    "sim": ("meshlab.cli.sim:sim", "The traffic simulator."),
    "sandbox": ("meshlab.cli.sim:sandbox", "Serve a simulated scenario from a local Prometheus."),
    "serve-smi": ("meshlab.cli.serve:serve_smi", "Serve the SMI Traffic Metrics API."),
}


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]}, lazy=LAZY,
             help="Service-mesh golden signals as tidy data.")
@click.version_option(__version__, "--version", prog_name="meshlab", message="%(prog)s %(version)s")
@click.option("--debug", is_flag=True, help="On an error, show the traceback too.")
def cli(debug: bool) -> None:
    if debug:
        DEBUG["on"] = True


def _one_line(message: str) -> str:
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


def _describe(error: OSError) -> str:
    """An OSError as one line: what failed, on which file."""
    reason = error.strerror or str(error) or type(error).__name__
    names = [name for name in (error.filename, error.filename2) if name is not None]
    if names:
        return f"{' -> '.join(map(str, names))}: {reason}"
    return reason if error.strerror is None else f"{reason} ({type(error).__name__})"


def _warning_line(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: IO[str] | None = None, line: str | None = None) -> None:
    """A warning as one line on stderr, as errors are: ``meshlab: warning: ...``."""
    print(f"meshlab: warning: {_one_line(str(message))}", file=file or sys.stderr)


def main(argv: Sequence[str] | None = None, *, stderr: IO[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    Errors are one line on stderr, ``meshlab: error: ...``, with exit status 2; no traceback
    for bad input, an unreachable server or a file that cannot be read or written, unless
    ``--debug`` is given. Warnings are one line too, ``meshlab: warning: ...``.
    """
    previous = warnings.showwarning
    warnings.showwarning = _warning_line
    try:
        return _main(argv, stderr)
    finally:
        warnings.showwarning = previous  # main() may run inside a notebook or a test


def _main(argv: Sequence[str] | None, stderr: IO[str] | None) -> int:
    from .core import describe_usage_error

    err = stderr or sys.stderr
    args = list(sys.argv[1:] if argv is None else argv)
    DEBUG["on"] = "--debug" in args[:args.index("--")] if "--" in args else "--debug" in args
    error: BaseException
    try:
        status = cli.main(args=args, prog_name="meshlab", standalone_mode=False)
        return int(status or 0)
    except click.UsageError as exc:
        message, error = describe_usage_error(exc), exc
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except (click.Abort, KeyboardInterrupt):
        return 130
    except MeshlabError as exc:
        message, error = _one_line(str(exc)), exc
    except OSError as exc:
        message, error = _describe(exc), exc
    except click.ClickException as exc:
        message, error = _one_line(exc.format_message()), exc
    if DEBUG["on"]:
        traceback.print_exception(type(error), error, error.__traceback__, file=err)
    print(f"meshlab: error: {message}", file=err)
    return 2
