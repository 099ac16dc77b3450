"""Reading scenarios: YAML, TOML or plain data, checked key by key into :mod:`meshlab.sim.scenario`'s classes.

Every problem is a :class:`ScenarioError` naming the file (or scenario), the key path
(``workloads[2].replicas``) and what is allowed there. :mod:`meshlab.sim.scenario` re-exports
the public names, so ``from meshlab.sim.scenario import load_scenario`` keeps working; the
split keeps the model short. Longer than 400 lines: the key specs, the checks and the messages
they share belong together.
"""

from __future__ import annotations

import difflib
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import InvalidArgument
from ..timeutil import to_timestamp
from .scenario import (
    GRPC_CODES,
    INCIDENTS,
    KINDS,
    MAX_REPLICAS,
    PROTOCOLS,
    PROXY_LATENCY,
    SHAPES,
    Edge,
    Incident,
    Latency,
    Rate,
    Scenario,
    TcpTraffic,
    Workload,
    _seconds,
)

__all__ = ["START_RANGE", "ScenarioError", "ScenarioFileNotFound", "load_scenario", "scenario_from_dict"]


_DURATION_FIELDS = {"period": "period_s", "peak_at": "peak_at_s", "ramp_start": "ramp_start_s",
                    "ramp_end": "ramp_end_s", "burst_every": "burst_every_s", "burst_length": "burst_length_s",
                    "start": "start_s", "duration": "duration_s", "interval": "interval_s",
                    "connection_seconds": "connection_seconds", "step": "step_s"}

#: Scenario start times must fall in this range (pandas' nanosecond times end in 2262).
START_RANGE = (pd.Timestamp("1970-01-01T00:00:00Z"), pd.Timestamp("2200-01-01T00:00:00Z"))


class ScenarioError(InvalidArgument):
    """An invalid scenario: the message names the file (or scenario), the key path and what is allowed."""


class ScenarioFileNotFound(ScenarioError, FileNotFoundError):
    """A scenario file that does not exist."""


class _Bad(Exception):
    """A problem at a key path, before the file's name is known to the message."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _number(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
            hi_open: bool = False) -> Any:
    bounds = " and ".join(b for b in (
        None if lo is None else f"{'>' if lo_open else '>='} {lo:g}",
        None if hi is None else f"{'<' if hi_open else '<='} {hi:g}") if b)
    wanted = f"a number{' ' + bounds if bounds else ''}"

    def check(value: Any, path: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Bad(path, f"must be {wanted}, got {_show(value)}")
        number = float(value) if isinstance(value, float) or abs(value) < 2**63 else math.inf
        if not math.isfinite(number):
            raise _Bad(path, f"must be a finite number ({wanted}), got {_show(value)}")
        if (lo is not None and (number <= lo if lo_open else number < lo)) or (
                hi is not None and (number >= hi if hi_open else number > hi)):
            raise _Bad(path, f"must be {wanted}, got {_show(value)}")
        return number
    return check


def _whole(lo: int, hi: int) -> Any:
    wanted = f"a whole number from {lo} to {hi}"

    def check(value: Any, path: str) -> int:
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Bad(path, f"must be {wanted}, got {_show(value)}")
        if not lo <= value <= hi:
            raise _Bad(path, f"must be {wanted}, got {_show(value)}")
        return value
    return check


def _flag(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise _Bad(path, f"must be true or false, got {_show(value)}")
    return value


def _text(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise _Bad(path, f"must be text (quote it), got {_show(value)}")
    return value


def _name(value: Any, path: str) -> str:
    value = _text(value, path)
    if not value.strip() or "/" in value or value != value.strip():
        raise _Bad(path, f"must be a non-empty name without '/' or surrounding spaces, got {_show(value)}")
    return value


def _ref(value: Any, path: str) -> str:
    value = _text(value, path)
    if not value.strip():
        raise _Bad(path, "must name a workload (name or namespace/name), got an empty string")
    return value


def _choice(what: str, options: tuple[str, ...]) -> Any:
    def check(value: Any, path: str) -> str:
        if not isinstance(value, str) or value not in options:
            raise _Bad(path, f"unknown {what} {_show(value)}; must be one of: {', '.join(options)}")
        return value
    return check


def _duration(lo: float = 0.0, *, lo_open: bool = False, whole: bool = False) -> Any:
    wanted = f"a duration {'>' if lo_open else '>='} {lo:g}s such as '30s', '5m' or '1h30m'"

    def check(value: Any, path: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise _Bad(path, f"must be {wanted}, got {_show(value)}")
        try:
            seconds = _seconds(value, path)
        except InvalidArgument:
            raise _Bad(path, f"{_show(value)} is not a duration; use {wanted}") from None
        except (OverflowError, ValueError):
            raise _Bad(path, f"is too long: {_show(value)}") from None
        if seconds < lo or (lo_open and seconds == lo):
            raise _Bad(path, f"must be {wanted}, got {_show(value)}")
        if whole and seconds != int(seconds):
            raise _Bad(path, f"must be a whole number of seconds, got {_show(value)}")
        return seconds
    return check


def _start(value: Any, path: str) -> pd.Timestamp:
    first, last = (t.strftime("%Y-%m-%d") for t in START_RANGE)
    wanted = f"a UTC time between {first} and {last}, such as '2024-03-04T00:00:00Z'"
    try:
        stamp = to_timestamp(value, name=path)
    except Exception:  # pandas' own range errors vary by version
        raise _Bad(path, f"must be {wanted}, got {_show(value)}") from None
    if not START_RANGE[0] <= stamp <= START_RANGE[1]:
        raise _Bad(path, f"must be {wanted}, got {_show(value)}")
    return stamp


def _codes(value: Any, path: str, protocol: str | None) -> dict[str, float]:
    """An ``errors`` mapping: status -> share; ``protocol=None`` allows HTTP codes and gRPC names."""
    grpc = ", ".join(c for c in GRPC_CODES if c != "OK")
    allowed = {"http": "an HTTP error status (400-599, e.g. '503')", "grpc": f"a gRPC error status; use one of {grpc}",
               None: f"an HTTP error status (400-599, e.g. '503') or a gRPC error status ({grpc})"}[protocol]
    if not isinstance(value, Mapping):
        raise _Bad(path, "must map each error status (HTTP '503' or a gRPC name such as 'UNAVAILABLE') to the "
                         f"share of requests that fail that way, e.g. {{'503': 0.01}}; got {_show(value)}")
    out: dict[str, float] = {}
    for code, share in value.items():
        key = str(code) if isinstance(code, int) and not isinstance(code, bool) else code
        where = f"{path}.{key}"
        http_ok = isinstance(key, str) and key.isascii() and key.isdigit() and 400 <= int(key) <= 599
        grpc_ok = isinstance(key, str) and key in GRPC_CODES and key != "OK"
        if not ((http_ok and protocol != "grpc") or (grpc_ok and protocol != "http")):
            raise _Bad(where, f"{_show(code)} is not {allowed}")
        out[key] = _number(0, 1)(share, where)
    if sum(out.values()) > 1:
        raise _Bad(path, f"the shares add up to {sum(out.values()):g}, more than 1")
    return out


# key -> (check, the dataclass field it fills, required)
_Spec = dict[str, tuple[Any, str, bool]]
_LATENCY: _Spec = {
    "median_ms": (_number(0, lo_open=True), "median_ms", False), "sigma": (_number(0, lo_open=True), "sigma", False),
    "tail_probability": (_number(0, 1, hi_open=True), "tail_probability", False),
    "tail_factor": (_number(1), "tail_factor", False)}
_RATE: _Spec = {
    "rps": (_number(0), "rps", True), "shape": (_choice("rate shape", SHAPES), "shape", False),
    "amplitude": (_number(0, 1), "amplitude", False), "period": (_duration(0, lo_open=True), "period_s", False),
    "peak_at": (_duration(), "peak_at_s", False), "to_rps": (_number(0), "to_rps", False),
    "ramp_start": (_duration(), "ramp_start_s", False), "ramp_end": (_duration(), "ramp_end_s", False),
    "burst_every": (_duration(0, lo_open=True), "burst_every_s", False),
    "burst_length": (_duration(), "burst_length_s", False), "burst_factor": (_number(0), "burst_factor", False),
    "steps": (_whole(2, 10_000), "steps", False), "step": (_duration(0, lo_open=True), "step_s", False)}
_TCP: _Spec = {
    "request_bytes": (_number(0), "request_bytes", False), "response_bytes": (_number(0), "response_bytes", False),
    "connections": (_whole(0, 10_000), "connections", False),
    "connection_seconds": (_number(0, lo_open=True), "connection_seconds", False),
    "sent_bytes_per_second": (_number(0), "sent_bytes_per_second", False),
    "received_bytes_per_second": (_number(0), "received_bytes_per_second", False)}
_WORKLOAD: _Spec = {
    "name": (_name, "name", True), "namespace": (_name, "namespace", True),
    "kind": (_choice("workload kind", KINDS), "kind", False),
    "replicas": (_whole(1, MAX_REPLICAS), "replicas", False),
    "latency": (lambda v, p: Latency(**_fields(v, p, _LATENCY)), "latency", False),
    "meshed": (_flag, "meshed", False), "external": (_flag, "external", False), "service": (_name, "service", False),
    "capacity_rps": (_number(0, lo_open=True), "capacity_rps", False)}
_EDGE: _Spec = {
    "from": (_ref, "source", True), "to": (_ref, "target", True),
    "protocol": (_choice("protocol", PROTOCOLS), "protocol", False),
    "rate": (lambda v, p: Rate(_number(0)(v, p)) if isinstance(v, (int, float)) and not isinstance(v, bool)
             else Rate(**_fields(v, p, _RATE)), "rate", False),
    "per_request": (_number(0), "per_request", False), "errors": (lambda v, p: v, "errors", False),
    "tcp": (lambda v, p: TcpTraffic(**_fields(v, p, _TCP)), "tcp", False),
    "network_ms": (_number(0), "network_ms", False)}
_INCIDENT: _Spec = {
    "kind": (_choice("incident kind", INCIDENTS), "kind", True), "workload": (_ref, "workload", True),
    "start": (_duration(), "start_s", True), "duration": (_duration(0, lo_open=True), "duration_s", False),
    "errors": (lambda v, p: _codes(v, p, None), "errors", False), "factor": (_number(0, lo_open=True), "factor", False),
    "pod": (_whole(0, MAX_REPLICAS * 100), "pod", False), "replicas": (_whole(1, MAX_REPLICAS), "replicas", False)}
_TOP: _Spec = {
    "name": (_name, "name", False), "description": (_text, "description", False),
    "seed": (_whole(0, 2**64 - 1), "seed", False), "interval": (_duration(1, whole=True), "interval_s", False),
    "start": (_start, "start", False), "duration": (_duration(0, lo_open=True), "duration_s", False),
    "proxy_latency": (_choice("proxy_latency", PROXY_LATENCY), "proxy_latency", False),
    "workloads": (None, "", True), "edges": (None, "", False), "incidents": (None, "", False)}


def _fields(data: Any, path: str, spec: _Spec, aliases: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Check a mapping against ``spec``: known keys, required keys, each value's type and range."""
    where = path or "the scenario"
    if not isinstance(data, Mapping):
        raise _Bad(path, f"must be a mapping with keys {', '.join(spec)}; got {_show(data)}")
    out: dict[str, Any] = {}
    for key, value in data.items():
        real = (aliases or {}).get(key, key) if isinstance(key, str) else key
        if not isinstance(real, str) or real not in spec:
            near = difflib.get_close_matches(str(key), list(spec), n=1) if isinstance(key, str) else []
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise _Bad(path, f"unknown key {_show(key)}{hint} (allowed: {', '.join(spec)})")
        if real != key and real in data:
            raise _Bad(path, f"give {key!r} or {real!r}, not both")
        check, target, _ = spec[real]
        if check is not None:
            at = f"{path}.{real}" if path else real
            out[target] = _made(at, lambda check=check, value=value, at=at: check(value, at))
    missing = [k for k, (_, _, required) in spec.items() if required and k not in data
               and not any(data.get(a) is not None and v == k for a, v in (aliases or {}).items())]
    if missing:
        raise _Bad(path, f"missing key {missing[0]!r} (required in {where}; keys: {', '.join(spec)})")
    return out


def _items(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key, [] if key != "workloads" else None)
    if value is None:
        raise _Bad("", "missing key 'workloads' (a list of workloads, each with name and namespace)")
    if not isinstance(value, list):
        raise _Bad(key, f"must be a list, got {_show(value)}")
    return value


def _made(path: str, make: Any) -> Any:
    # The dataclasses' own checks (cross-field ones) name the object; add where it is.
    try:
        return make()
    except InvalidArgument as exc:
        raise _Bad(path, str(exc)) from None


def _from_dict(data: Any) -> Scenario:
    if data is None:
        raise _Bad("", "the scenario is empty; it needs at least 'workloads'")
    top = _fields(data, "", _TOP)
    top.pop("", None)
    workloads = []
    for i, item in enumerate(_items(data, "workloads")):
        path = f"workloads[{i}]"
        workloads.append(_made(path, lambda item=item, path=path: Workload(**_fields(item, path, _WORKLOAD))))
    if not workloads:
        raise _Bad("workloads", "is empty: the scenario has no workloads; list at least one (name and namespace)")
    seen: dict[str, int] = {}
    for i, w in enumerate(workloads):
        if w.key in seen:
            raise _Bad(f"workloads[{i}]", f"{w.key} is defined twice (also workloads[{seen[w.key]}])")
        seen[w.key] = i
    draft = Scenario(top.get("name", "scenario"), tuple(workloads), ())

    def known(ref: str, path: str) -> Workload:
        try:
            return draft.workload(ref)
        except InvalidArgument:
            names = ", ".join(w.key for w in workloads)
            raise _Bad(path, f"{'ambiguous' if any(w.name == ref for w in workloads) else 'unknown'} workload "
                             f"{ref!r}; known: {names}") from None

    edges = []
    for i, item in enumerate(_items(data, "edges")):
        path = f"edges[{i}]"
        fields_ = _fields(item, path, _EDGE)
        if known(fields_["source"], f"{path}.from").external:
            raise _Bad(f"{path}.from", f"{fields_['source']!r} is an external service, which cannot call out")
        known(fields_["target"], f"{path}.to")
        if "errors" in fields_:
            fields_["errors"] = _codes(fields_["errors"], f"{path}.errors",
                                       "grpc" if fields_.get("protocol") == "grpc" else "http")
        edges.append(_made(path, lambda f=fields_: Edge(**f)))
    incidents = []
    for i, item in enumerate(_items(data, "incidents")):
        path = f"incidents[{i}]"
        fields_ = _fields(item, path, _INCIDENT, aliases={"at": "start"})
        known(fields_["workload"], f"{path}.workload")
        incidents.append(_made(path, lambda f=fields_: Incident(**f)))
    top = {"name": "scenario", **top}
    _made("edges", lambda: Scenario(workloads=tuple(workloads), edges=tuple(edges), **top))  # cycles
    return _made("incidents", lambda: Scenario(workloads=tuple(workloads), edges=tuple(edges),
                                               incidents=tuple(incidents), **top))


def scenario_from_dict(data: Mapping[str, Any], *, origin: str | None = None) -> Scenario:
    """Build a :class:`Scenario` from plain data (as loaded from YAML or TOML).

    Parameters
    ----------
    data : mapping
    origin : str, optional
        Where the data came from (a file name), for error messages.

    Raises
    ------
    ScenarioError
        An :class:`~meshlab.errors.InvalidArgument` naming the file (or the scenario), the
        key path (``workloads[2].replicas``) and what is allowed there.
    """
    if origin is None:
        name = data.get("name") if isinstance(data, Mapping) else None
        origin = f"scenario {name!r}" if isinstance(name, str) else "scenario"
    try:
        return _from_dict(data)
    except _Bad as exc:
        raise ScenarioError(f"{origin}: {exc}") from None


def load_scenario(source: str | os.PathLike[str] | Mapping[str, Any] | Scenario) -> Scenario:
    """Load a scenario: a built-in name (``"shop"``), a ``.yaml``/``.yml``/``.toml`` file, or a dict.

    Raises
    ------
    ScenarioError
        For an unknown name, an unreadable or malformed file, or an invalid scenario; the
        message names the file, the key path and what is allowed.
    ScenarioFileNotFound
        For a path that does not exist (also a :class:`FileNotFoundError`).
    """
    if isinstance(source, Scenario):
        return source
    if isinstance(source, Mapping):
        return scenario_from_dict(source)
    if not isinstance(source, (str, os.PathLike)):
        raise ScenarioError(f"a scenario is a built-in name, a file path, a dict or a Scenario; "
                            f"got {type(source).__name__}")
    path = Path(source)
    builtin = Path(__file__).parent / "scenarios" / f"{source}.yaml"
    if isinstance(source, str) and path.suffix == "" and not path.exists():
        if not builtin.exists() or "/" in source or source.startswith("."):
            names = ", ".join(sorted(p.stem for p in builtin.parent.glob("*.yaml")))
            raise ScenarioError(f"unknown scenario {source!r}; built-in scenarios: {names}; or give a file path")
        path = builtin
    where = f"scenario file {str(path)!r}"
    if path.is_dir():
        raise ScenarioError(f"{where} is a directory; give a .yaml or .toml file")
    if path.suffix not in (".yaml", ".yml", ".toml"):
        raise ScenarioError(f"{where}: use a .yaml, .yml or .toml file")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ScenarioFileNotFound(f"{where} does not exist") from None
    except IsADirectoryError:
        raise ScenarioError(f"{where} is a directory; give a .yaml or .toml file") from None
    except OSError as exc:
        raise ScenarioError(f"{where} cannot be read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{where} is not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start}); "
                            "save it as UTF-8") from None
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # pragma: no cover
                import tomli as tomllib
            data = tomllib.loads(text)
    except RecursionError:
        raise ScenarioError(f"{where} is nested too deeply") from None
    except Exception as exc:  # the parsers' own error types vary
        raise ScenarioError(f"{where} is not valid {path.suffix[1:].upper()}: {exc}") from None
    try:
        return scenario_from_dict(data, origin=where)
    except RecursionError:
        raise ScenarioError(f"{where} is nested too deeply") from None


def scenario_to_dict(scenario: Scenario) -> dict[str, Any]:
    """The scenario as plain data, as :func:`scenario_from_dict` reads it."""
    def dur(seconds: float) -> str:
        return f"{seconds:g}s"

    def plain(obj: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(obj):
            value = getattr(obj, f.name)
            if f.name in skip or value is None:
                continue
            key = next((k for k, v in _DURATION_FIELDS.items() if v == f.name and f.name.endswith("_s")), f.name)
            out[key] = dur(value) if f.name.endswith("_s") else value
        return out

    return {
        "name": scenario.name,
        "description": scenario.description,
        "seed": scenario.seed,
        "interval": dur(scenario.interval_s),
        "start": scenario.start.isoformat().replace("+00:00", "Z"),
        "duration": dur(scenario.duration_s),
        **({"proxy_latency": scenario.proxy_latency} if scenario.proxy_latency != "linear" else {}),
        "workloads": [{**plain(w, ("latency",)), "latency": plain(w.latency)} for w in scenario.workloads],
        "edges": [
            {**{("from" if k == "source" else "to" if k == "target" else k): v
                for k, v in plain(e, ("rate", "errors", "tcp")).items()},
             **({"rate": plain(e.rate)} if e.rate else {}), "errors": dict(e.errors), "tcp": plain(e.tcp)}
            for e in scenario.edges
        ],
        "incidents": [{**plain(i, ("errors",)), "errors": dict(i.errors)} for i in scenario.incidents],
    }
