"""The mesh traffic simulator: scenarios in, each mesh's Prometheus metrics and ground truth out.

>>> from meshlab import sim
>>> traffic = sim.simulate(sim.load_scenario("shop"), hours=1)
>>> files, samples = sim.write_backfill(traffic, ["linkerd", "istio"])      # doctest: +SKIP
>>> samples = sim.push_backfill(traffic, ["linkerd"], "http://127.0.0.1:8428/api/v1/write")  # doctest: +SKIP
>>> sim.truth.traffic_truth(traffic, "linkerd").head()                      # doctest: +SKIP
"""

from __future__ import annotations

from . import truth
from .exporter import SimExporter
from .generate import layered_scenario
from .meshes import MESHES, mesh_families
from .output import push_backfill, write_backfill
from .scenario import Scenario, load_scenario, scenario_from_dict
from .traffic import Traffic, simulate

__all__ = ["MESHES", "Scenario", "SimExporter", "Traffic", "layered_scenario", "load_scenario",
           "mesh_families", "push_backfill", "scenario_from_dict", "simulate", "truth", "write_backfill"]
