"""Each mesh's own metrics for the same traffic: names, labels and buckets as its proxies emit them.

One module per mesh (``linkerd``, ``istio``, ``consul``, ``kuma``, ``hubble``), each independent
of the adapters' constants in :mod:`meshlab.meshes`: that independence is what makes the
simulator an oracle for them. A third party adds a renderer (``traffic -> list[Family]``)
through the ``meshlab.sim.meshes`` entry-point group; it is loaded when its name is first
asked for, and one that fails to load is skipped with a warning.

See ``../shared/reference/mesh-metrics.md`` for the facts these follow, and each
renderer's docstring for the sources of the meshes added later (Kuma, Hubble). Every
renderer returns a list of :class:`~meshlab.sim.render.Family`; nothing here samples or
formats.

Label sets are the ones the meshes' own tooling and dashboards read, plus the scrape's
``namespace``, ``pod``, ``job`` and ``instance``; labels no tool reads are left out to
keep a day of data small: Linkerd's ``target_addr``, ``srv_*``/``authz_*`` policy labels,
``pod_template_hash``, ``control_plane_ns``, ``dst_serviceaccount`` and
``dst_pod_template_hash``; Istio's ``*_app``, ``*_version``, ``*_canonical_revision`` and
``*_cluster``; Consul's ``consul_*_partition``, ``consul_destination_routing_type`` and
``consul_destination_trust_domain``; Kuma's copies of every other dataplane tag (pod
labels such as ``app``, ``kuma_io_protocol`` and their plural ``...s`` forms); Hubble's
``cluster`` (a multi-cluster scrape's; Cilium's dashboards match its absence); and the
scrape's copies of pod labels. Not modelled: per-route metrics,
Istio's ``*_bytes`` size histograms, Envoy stats beyond those the meshes' dashboards read,
and Hubble's flow, DNS, drop and TCP-flag metrics.

Every renderer also writes traffic the adapters must not count, as real scrapes have it:
Linkerd's outbound view of requests its inbound view counts; Istio's second reporter;
Consul's ``upstream`` listener and ``local_app`` cluster; Kuma's inbound ``localhost_*``
clusters next to the callers' outbound ones, its ``external`` split of the same counts and
the metrics hijacker cluster Prometheus' own scrapes go through; Hubble's ``client`` and
``server`` reporters of the same request; and everywhere unmeshed callers and egress,
which each mesh sees on one side only.
"""

from __future__ import annotations

import importlib.metadata
import warnings
from collections.abc import Callable

from ...errors import InvalidArgument, PluginWarning
from ..render import Family
from ..traffic import Traffic
from ._common import (
    ENVOY_BUCKETS_MS,
    HUBBLE_BUCKETS_S,
    LINKERD_BUCKETS_MS,
    LINKERD_GRPC_FAILURES,
    NODES,
    NodeProxy,
    node_proxies,
    node_proxy_usage,
    proxy_usage,
)
from .consul import consul_families
from .hubble import hubble_families
from .istio import istio_families
from .kuma import kuma_families, kuma_service
from .linkerd import linkerd_families

__all__ = ["ENTRY_POINT_GROUP", "ENVOY_BUCKETS_MS", "HUBBLE_BUCKETS_S", "LINKERD_BUCKETS_MS", "LINKERD_GRPC_FAILURES",
           "MESHES", "NODES", "NodeProxy", "check_mesh", "kuma_service", "mesh_families", "node_proxies",
           "node_proxy_usage", "proxy_usage"]

Renderer = Callable[[Traffic], list[Family]]
#: The entry-point group of third-party renderers (``toy = toy_sim:toy_families``).
ENTRY_POINT_GROUP = "meshlab.sim.meshes"

#: Mesh name -> renderer. "none" renders no proxy metrics at all: its truth is the application's.
MESHES: dict[str, Renderer] = {
    "linkerd": linkerd_families,
    "istio": istio_families,
    "consul": consul_families,
    "kuma": kuma_families,
    "hubble": hubble_families,
    "none": lambda traffic: [],
}
_BUILT_IN = frozenset(MESHES)
_loaded_plugins = False


def _load_plugins() -> None:
    """Add the renderers of the ``meshlab.sim.meshes`` group to :data:`MESHES`, once.

    A name taken by a built-in keeps the built-in; a plugin that fails to load is left out.
    Both warn, naming the plugin.
    """
    global _loaded_plugins
    if _loaded_plugins:
        return
    _loaded_plugins = True  # set first: a plugin that imports meshlab.sim must not recurse here
    for point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if point.name in _BUILT_IN:
            warnings.warn(f"simulator mesh plugin {point.name!r} ({point.value}) is not loaded: the name is a "
                          "built-in renderer's", PluginWarning, stacklevel=3)
            continue
        try:
            renderer = point.load()
            if not callable(renderer):
                raise TypeError(f"{point.value} is {renderer!r}, not a function of a traffic run")
        except Exception as exc:  # one broken plugin must not take the simulator down
            warnings.warn(f"simulator mesh plugin {point.name!r} ({point.value}) failed to load and is skipped: "
                          f"{type(exc).__name__}: {exc}", PluginWarning, stacklevel=3)
            continue
        MESHES.setdefault(point.name, renderer)


def refresh_plugins() -> None:
    """Forget the plugin renderers loaded so far and read the entry-point group again on next use."""
    global _loaded_plugins
    for name in [name for name in MESHES if name not in _BUILT_IN]:
        del MESHES[name]
    _loaded_plugins = False


def check_mesh(mesh: str) -> str:
    """Return ``mesh`` if the simulator can render it, else raise ``unknown mesh ...; available: ...``."""
    if mesh not in MESHES:
        _load_plugins()
    if mesh not in MESHES:
        raise InvalidArgument(f"unknown mesh {mesh!r}; available: {', '.join(MESHES)}")
    return mesh


def mesh_families(traffic: Traffic, mesh: str) -> list[Family]:
    """The metric families one mesh emits for a traffic run.

    Raises
    ------
    InvalidArgument
        For an unknown mesh name.
    """
    return MESHES[check_mesh(mesh)](traffic)
