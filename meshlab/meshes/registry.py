"""The mesh registry: adapters by name, built-in and from plugins, and detection.

Built-in adapters register when their modules are imported. Third parties add meshes through
the ``meshlab.meshes`` entry-point group; their names are listed without importing them, and
each is loaded when first asked for.

- A plugin that fails to load is skipped with a :class:`~meshlab.errors.PluginWarning` naming it
  and its error; the other plugins still load, and a later call does not retry it until
  :meth:`MeshRegistry.refresh`.
- A plugin whose name is already taken (``istio``) is skipped with a warning: the built-in wins,
  unless the registry was made with ``plugins_override=True``.
- :meth:`MeshRegistry.state` and :meth:`MeshRegistry.restore` (or the
  :meth:`MeshRegistry.snapshot` context manager) let tests change the registry and put it back.
"""

from __future__ import annotations

import importlib.metadata
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from ..errors import InvalidArgument, PluginWarning
from ..timeutil import Duration
from .base import Mesh, as_prometheus

if TYPE_CHECKING:
    import pandas as pd

    from ..prometheus.client import Prometheus

__all__ = ["ENTRY_POINT_GROUP", "MeshRegistry", "RegistryState", "available", "detect", "get_mesh", "mesh",
           "register", "registry", "unregister"]

#: The entry-point group third-party meshes register in (``toy = toy_mesh:Toy``).
ENTRY_POINT_GROUP = "meshlab.meshes"
M = TypeVar("M", bound=type[Mesh])


@dataclass(frozen=True)
class RegistryState:
    """What :meth:`MeshRegistry.state` saves: the registered classes and the plugins not yet loaded."""

    meshes: dict[str, type[Mesh]] = field(default_factory=dict)
    pending: dict[str, importlib.metadata.EntryPoint] | None = None
    failed: dict[str, str] = field(default_factory=dict)
    loaded: dict[str, str] = field(default_factory=dict)


class MeshRegistry:
    """Mesh adapter classes by name.

    Parameters
    ----------
    group : str
        The entry-point group to read plugins from.
    plugins_override : bool
        Whether a plugin may replace an adapter already registered under its name
        (by default the registered one wins, with a warning).
    """

    def __init__(self, group: str = ENTRY_POINT_GROUP, *, plugins_override: bool = False):
        self.group = group
        self.plugins_override = plugins_override
        self._meshes: dict[str, type[Mesh]] = {}
        #: plugins found but not yet loaded, by name; None until the group is first read
        self._pending: dict[str, importlib.metadata.EntryPoint] | None = None
        #: plugins that failed to load, by name, with their error
        self._failed: dict[str, str] = {}
        #: plugins loaded, by name: the entry point's value (``module:Class``)
        self._loaded: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"MeshRegistry(group={self.group!r}, names={self.names()!r})"

    # -- registering ---------------------------------------------------------------------------

    def register(self, cls: M, *, replace: bool = True) -> M:
        """Register a :class:`Mesh` subclass under ``cls.name`` (usable as a decorator).

        With ``replace=False``, a name already taken by another class is kept, with a warning.
        """
        if not (isinstance(cls, type) and issubclass(cls, Mesh)) or cls.abstract or not getattr(cls, "name", None):
            raise InvalidArgument(f"{cls!r} is not a Mesh subclass with a name")
        taken = self._meshes.get(cls.name)
        if taken is not None and taken is not cls and not replace:
            warnings.warn(f"mesh {cls.name!r} from {cls.__module__}.{cls.__qualname__} is not registered: the name is "
                          f"taken by {taken.__module__}.{taken.__qualname__}", PluginWarning, stacklevel=2)
            return cls
        self._meshes[cls.name] = cls
        return cls

    def unregister(self, name: str) -> type[Mesh] | None:
        """Remove mesh ``name`` (a registered class or a plugin not yet loaded); return its class if loaded."""
        if self._pending is not None:
            self._pending.pop(name, None)
        self._failed.pop(name, None)
        self._loaded.pop(name, None)
        return self._meshes.pop(name, None)

    # -- plugins ---------------------------------------------------------------------------------

    def _discover(self) -> dict[str, importlib.metadata.EntryPoint]:
        if self._pending is None:
            self._pending = {}
            for point in importlib.metadata.entry_points(group=self.group):
                if self._loaded.get(point.name) == point.value:
                    continue  # found again by refresh(): already loaded
                if point.name in self._meshes and not self.plugins_override:
                    warnings.warn(f"mesh plugin {point.name!r} ({point.value}) is not loaded: the name is taken by "
                                  f"{self._qualname(point.name)}; make "
                                  "MeshRegistry(plugins_override=True) to prefer plugins", PluginWarning,
                                  stacklevel=4)
                    continue
                self._pending[point.name] = point
        return self._pending

    def _qualname(self, name: str) -> str:
        cls = self._meshes[name]
        return f"{cls.__module__}.{cls.__qualname__}"

    def _load(self, name: str) -> None:
        point = self._discover().pop(name)
        try:
            cls = point.load()
            if not (isinstance(cls, type) and issubclass(cls, Mesh)) or cls.abstract:
                raise TypeError(f"{point.value} is {cls!r}, not a concrete meshlab.meshes.Mesh subclass")
        except Exception as exc:  # a broken plugin must not take the others (or meshlab) down with it
            self._failed[name] = f"{type(exc).__name__}: {exc}"
            warnings.warn(f"mesh plugin {name!r} ({point.value}) failed to load and is skipped: "
                          f"{self._failed[name]}", PluginWarning, stacklevel=4)
            return
        if cls.name in self._meshes and self._meshes[cls.name] is not cls and not self.plugins_override:
            warnings.warn(f"mesh plugin {name!r} ({point.value}) is not loaded: its name {cls.name!r} is taken by "
                          f"{self._qualname(cls.name)}", PluginWarning, stacklevel=4)
            return
        self._meshes[cls.name] = cls
        self._loaded[name] = point.value

    def load_all(self) -> None:
        """Load every plugin not loaded yet (those that fail are skipped with a warning)."""
        for name in list(self._discover()):
            self._load(name)

    def refresh(self) -> None:
        """Read the entry-point group again: new plugins are found, failed ones retried on next use."""
        self._pending = None
        self._failed.clear()

    # -- looking up ------------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Every mesh name, registered or offered by a plugin, without loading any plugin."""
        return sorted({*self._meshes, *self._discover()})

    def available(self) -> list[str]:
        """The names of every mesh that can be used: plugins are loaded, broken ones left out."""
        self.load_all()
        return sorted(self._meshes)

    def get(self, name: str) -> type[Mesh]:
        """The adapter class registered as ``name``, loading its plugin if need be.

        Raises
        ------
        InvalidArgument
            ``unknown mesh 'x'; available: ...``, or naming the plugin's load error.
        """
        pending = self._discover()  # a plugin named like a built-in is reported on first use, whatever is asked
        if name in pending and (name not in self._meshes or self.plugins_override):
            self._load(name)
        try:
            return self._meshes[name]
        except KeyError:
            if name in self._failed:
                raise InvalidArgument(f"mesh plugin {name!r} failed to load: {self._failed[name]}") from None
            raise InvalidArgument(f"unknown mesh {name!r}; available: {', '.join(self.available())}") from None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.names()

    # -- state, for tests ------------------------------------------------------------------------

    def state(self) -> RegistryState:
        """A copy of what is registered, to :meth:`restore` later."""
        pending = None if self._pending is None else dict(self._pending)
        return RegistryState(dict(self._meshes), pending, dict(self._failed), dict(self._loaded))

    def restore(self, state: RegistryState) -> None:
        """Put the registry back as :meth:`state` saved it."""
        self._meshes = dict(state.meshes)
        self._pending = None if state.pending is None else dict(state.pending)
        self._failed = dict(state.failed)
        self._loaded = dict(state.loaded)

    @contextmanager
    def snapshot(self) -> Iterator[MeshRegistry]:
        """Within the ``with`` block, change the registry freely; it is restored after."""
        saved = self.state()
        try:
            yield self
        finally:
            self.restore(saved)


#: The registry ``ml.mesh``, ``ml.detect`` and the CLI use.
registry = MeshRegistry()


def register(cls: M) -> M:
    """Register a :class:`Mesh` subclass under ``cls.name`` in :data:`registry` (usable as a decorator)."""
    return registry.register(cls)


def unregister(name: str) -> type[Mesh] | None:
    """Remove mesh ``name`` from :data:`registry`."""
    return registry.unregister(name)


def available() -> list[str]:
    """The names of every registered mesh, built-in and from plugins."""
    return registry.available()


def get_mesh(name: str) -> type[Mesh]:
    """The adapter class registered as ``name``.

    Raises
    ------
    InvalidArgument
        ``unknown mesh 'x'; available: ...``
    """
    return registry.get(name)


def mesh(name: str, prom: Prometheus | str, *, scrape_interval: Duration = "15s") -> Mesh:
    """An adapter for mesh ``name`` reading from ``prom`` (a client or a URL): ``ml.mesh("istio", prom)``."""
    return get_mesh(name)(prom, scrape_interval=scrape_interval)


def detect(prom: Prometheus | str) -> dict[str, pd.Timestamp]:
    """Which registered meshes have data in ``prom`` (a client or a URL), and since when (to the second)."""
    prom = as_prometheus(prom, "detect")
    found = {}
    for name in available():
        since = get_mesh(name).detect(prom)
        if since is not None:
            found[name] = since
    return found
