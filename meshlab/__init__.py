"""meshlab: service-mesh golden signals from Prometheus as tidy pandas frames.

``import meshlab`` is cheap: names are imported on first use (PEP 562), so the HTTP
stack, Arrow, altair, kubernetes and jupyter load only when something needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "Prometheus": "meshlab.prometheus.client",
    "from_prometheus_pandas": "meshlab.prometheus.interop",
    "promql": "meshlab.prometheus.promql",
    "LocalPrometheus": "meshlab.prometheus.local",
    "LocalVictoriaMetrics": "meshlab.prometheus.local",
    "sandbox": "meshlab.sim.sandbox",
    "Sandbox": "meshlab.sim.sandbox",
    "datasets": "meshlab.datasets",
    "sim": "meshlab.sim",
    "smi": "meshlab.smi",
    "charts": "meshlab.charts",
    "Mesh": "meshlab.meshes",
    "Linkerd": "meshlab.meshes",
    "Istio": "meshlab.meshes",
    "Consul": "meshlab.meshes",
    "Kuma": "meshlab.meshes",
    "Hubble": "meshlab.meshes",
    "mesh": "meshlab.meshes",
    "detect": "meshlab.meshes",
    "concat_sources": "meshlab.meshes",
    "meshes": "meshlab.meshes",
    "validate": "meshlab.schema",
    "concat": "meshlab.schema",
    "schema": "meshlab.schema",
    "timeutil": "meshlab.timeutil",
    "errors": "meshlab.errors",
    "MeshlabError": "meshlab.errors",
    "QueryError": "meshlab.errors",
    "SchemaError": "meshlab.errors",
    "PrometheusError": "meshlab.errors",
    "PrometheusUnavailable": "meshlab.errors",
    "PrometheusWarning": "meshlab.errors",
    "ResponseError": "meshlab.errors",
    "InvalidArgument": "meshlab.errors",
    "BinaryNotFoundError": "meshlab.errors",
    "SourcesFailed": "meshlab.errors",
    "SourcesFailedWarning": "meshlab.errors",
    "read_benchmark": "meshlab.analysis.benchmarks",
    "write_smp": "meshlab.analysis.benchmarks",
    "capacity": "meshlab.analysis.capacity",
    "compare": "meshlab.analysis.compare",
    "k8s": "meshlab.k8s",
    "connect": "meshlab.k8s",
    "report": "meshlab.report",
    "Report": "meshlab.report",
}

__all__ = sorted([*_LAZY, "__version__"])

if TYPE_CHECKING:  # for type checkers and IDEs; at run time __getattr__ imports on first use
    from . import datasets as datasets
    from . import errors as errors
    from . import k8s as k8s
    from . import meshes as meshes
    from . import schema as schema
    from . import sim as sim
    from . import smi as smi
    from . import timeutil as timeutil
    from .analysis import capacity as capacity
    from .analysis.benchmarks import read_benchmark as read_benchmark
    from .analysis.benchmarks import write_smp as write_smp
    from .analysis.compare import compare as compare
    from .errors import BinaryNotFoundError as BinaryNotFoundError
    from .errors import InvalidArgument as InvalidArgument
    from .errors import MeshlabError as MeshlabError
    from .errors import PrometheusError as PrometheusError
    from .errors import PrometheusUnavailable as PrometheusUnavailable
    from .errors import PrometheusWarning as PrometheusWarning
    from .errors import QueryError as QueryError
    from .errors import ResponseError as ResponseError
    from .errors import SchemaError as SchemaError
    from .errors import SourcesFailed as SourcesFailed
    from .errors import SourcesFailedWarning as SourcesFailedWarning
    from .k8s import connect as connect
    from .meshes import Consul as Consul
    from .meshes import Hubble as Hubble
    from .meshes import Istio as Istio
    from .meshes import Kuma as Kuma
    from .meshes import Linkerd as Linkerd
    from .meshes import Mesh as Mesh
    from .meshes import concat_sources as concat_sources
    from .meshes import detect as detect
    from .meshes import mesh as mesh
    from .prometheus import promql as promql
    from .prometheus.client import Prometheus as Prometheus
    from .prometheus.interop import from_prometheus_pandas as from_prometheus_pandas
    from .prometheus.local import LocalPrometheus as LocalPrometheus
    from .prometheus.local import LocalVictoriaMetrics as LocalVictoriaMetrics
    from .report import Report as Report
    from .report import report as report
    from .schema import concat as concat
    from .schema import validate as validate
    from .sim.sandbox import Sandbox as Sandbox
    from .sim.sandbox import sandbox as sandbox


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'meshlab' has no attribute {name!r}")
    module = importlib.import_module(module_name)
    # ml.report is the module meshlab.report, which is callable: importing it rebinds the name anyway
    value = module if name == "report" else getattr(module, name) if hasattr(module, name) else module
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
