"""Benchmark: what `import meshlab` costs on top of pandas, beside its peers.

Each import runs in a fresh interpreter that has already imported pandas; the figure is
the median over the repeats of the time `import X` takes there.
Usage: ``python bench/bench_import.py [--repeat 15]``
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

PEERS = {"meshlab": "import meshlab",
         "meshlab + ml.Prometheus": "import meshlab; meshlab.Prometheus",
         "prometheus-pandas": "import prometheus_pandas.query",
         "prometheus-api-client": "import prometheus_api_client"}
CODE = "import time, pandas; t = time.perf_counter(); {extra}; print(time.perf_counter() - t)"


def timed(extra: str) -> float:
    out = subprocess.run([sys.executable, "-c", CODE.format(extra=extra or "pass")],
                         capture_output=True, text=True, check=True).stdout
    return float(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    results = {}
    for name, statement in PEERS.items():
        results[name] = statistics.median(timed(statement) for _ in range(args.repeat))
    mine = results["meshlab"]
    for name, extra in results.items():
        print(f"{name:26} +{extra * 1000:6.1f} ms on top of pandas  ({extra / mine:.1f}x `import meshlab`)")
    print(f"target: meshlab under 100 ms on top of pandas: {'met' if mine < 0.1 else 'NOT met'}")


if __name__ == "__main__":
    main()
