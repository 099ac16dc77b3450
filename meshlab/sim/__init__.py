"""The mesh traffic simulator: scenarios in, each mesh's Prometheus metrics and ground truth out.

>>> from meshlab import sim
>>> traffic = sim.simulate(sim.load_scenario("shop"), hours=1)
>>> files, samples = sim.write_backfill(traffic, ["linkerd", "istio"])      # doctest: +SKIP
>>> sim.truth.traffic_truth(traffic, "linkerd").head()                      # doctest: +SKIP
"""

from __future__ import annotations

from . import truth
from .exporter import SimExporter
from .generate import layered_scenario
from .meshes import MESHES, mesh_families
from .output import write_backfill
from .scenario import Scenario, load_scenario, scenario_from_dict
from .traffic import Traffic, simulate

__all__ = ["MESHES", "Scenario", "SimExporter", "Traffic", "layered_scenario", "load_scenario",
           "mesh_families", "scenario_from_dict", "simulate", "truth", "write_backfill"]
