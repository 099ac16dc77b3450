"""Progress on long fetches: a rich bar on stderr, shown only when stderr is a terminal.

stdout carries the result (``-o json`` or ``csv`` included) and is never written to here; a
pipe or a file on stderr gets nothing either, so logs and CI output stay clean.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def fetch_all(jobs: Sequence[tuple[str, Callable[[], T]]], what: str = "fetching") -> list[T]:
    """Run ``jobs`` (label, thunk) in order and return their results, with a progress bar on a terminal.

    Parameters
    ----------
    jobs : sequence of (str, callable)
        What each step fetches (shown beside the bar, e.g. ``linkerd traffic``) and the call doing it.
    what : str
        The bar's heading.
    """
    if len(jobs) < 2 or not sys.stderr.isatty():
        return [job() for _, job in jobs]
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    results: list[T] = []
    # transient: the bar is gone once the result is printed
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=Console(file=sys.stderr), transient=True) as bar:
        task = bar.add_task(what, total=len(jobs))
        for label, job in jobs:
            bar.update(task, description=f"{what}: {label}")
            results.append(job())
            bar.advance(task)
    return results
