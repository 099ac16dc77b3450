"""What the Envoy-based meshes (Consul Connect, Kuma) read the same way from Envoy's own stats."""

from __future__ import annotations

from ..prometheus.promql import NotEqual

__all__ = ["FAILURE", "SUCCESS"]

#: Envoy's ``envoy_response_code_class`` (1-5): class 5 fails, as the Consul UI and Kuma's dashboards count it.
SUCCESS = {"envoy_response_code_class": NotEqual("5")}
FAILURE = {"envoy_response_code_class": "5"}
