"""The analysis layer: benchmark results as tidy frames, comparisons and capacity planning.

It reads frames (and the files load generators write) and never imports the CLI, charts
or reports. Statistics come from scipy and statsmodels, imported inside the functions
that need them so that ``import meshlab`` stays light.
"""

from __future__ import annotations

__all__ = ["benchmarks", "capacity", "compare"]
