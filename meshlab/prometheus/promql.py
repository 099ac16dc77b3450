"""Build PromQL selectors safely from user-supplied values.

Namespace names, workload names and other label values come from users. Pasting them
into PromQL with string formatting breaks on a quote or a backslash and lets a value
rewrite the query. Every piece of meshlab that builds PromQL goes through this module.

Examples
--------
>>> selector("response_total", direction="inbound", namespace='sh"op')
'response_total{direction="inbound",namespace="sh\\\\"op"}'
>>> selector("istio_requests_total", response_code=Regex("5.."), destination_workload=None)
'istio_requests_total{response_code=~"5.."}'
>>> selector("up", job=OneOf(["a.b", "c"]))
'up{job=~"a\\\\\\\\.b|c"}'
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Union

from ..errors import InvalidArgument
from ..openmetrics import LABEL_NAME, METRIC_NAME

__all__ = [
    "Matcher",
    "NotEqual",
    "NotRegex",
    "OneOf",
    "Regex",
    "by",
    "label_name",
    "metric_name",
    "quote",
    "re_escape",
    "selector",
]

_RE2_SPECIAL = re.compile(r"([\\.+*?()|\[\]{}^$])")
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def label_name(name: str) -> str:
    """Return ``name`` if it is a valid Prometheus label name, else raise InvalidArgument."""
    if not isinstance(name, str) or not LABEL_NAME.match(name):
        raise InvalidArgument(
            f"{name!r} is not a valid Prometheus label name; names match [a-zA-Z_][a-zA-Z0-9_]*"
        )
    return name


def metric_name(name: str) -> str:
    """Return ``name`` if it is a valid Prometheus metric name, else raise InvalidArgument."""
    if not isinstance(name, str) or not METRIC_NAME.match(name):
        raise InvalidArgument(
            f"{name!r} is not a valid Prometheus metric name; names match [a-zA-Z_:][a-zA-Z0-9_:]*"
        )
    return name


def quote(value: str) -> str:
    """Return ``value`` as a PromQL double-quoted string literal, escaping as PromQL requires."""
    if not isinstance(value, str):
        raise InvalidArgument(f"a PromQL label value must be a str, got {type(value).__name__}: {value!r}")
    out = []
    for char in value:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def re_escape(value: str) -> str:
    """Escape ``value`` so that it matches literally inside a PromQL (RE2) regex.

    This is Go's ``regexp.QuoteMeta``: only RE2's special characters are escaped.
    """
    return _RE2_SPECIAL.sub(r"\\\1", value)


@dataclass(frozen=True)
class Regex:
    """A ``=~`` matcher; the pattern is RE2 and fully anchored by Prometheus."""

    pattern: str


@dataclass(frozen=True)
class NotRegex:
    """A ``!~`` matcher."""

    pattern: str


@dataclass(frozen=True)
class NotEqual:
    """A ``!=`` matcher."""

    value: str


@dataclass(frozen=True)
class OneOf:
    """Match any of several literal values (``=~"a|b"``, each value escaped)."""

    values: tuple[str, ...]

    def __init__(self, values: Iterable[str]):
        values = tuple(values)
        if not values:
            raise InvalidArgument("OneOf needs at least one value")
        object.__setattr__(self, "values", values)


MatchValue = Union[str, Regex, NotRegex, NotEqual, OneOf, None]


@dataclass(frozen=True)
class Matcher:
    """One label matcher, e.g. ``namespace="shop"``; ``str()`` renders it safely."""

    label: str
    op: str
    value: str

    def __str__(self) -> str:
        return f"{label_name(self.label)}{self.op}{quote(self.value)}"

    @classmethod
    def of(cls, label: str, value: MatchValue) -> Matcher | None:
        """Build a matcher from a plain value or a Regex/NotRegex/NotEqual/OneOf; None gives None."""
        label_name(label)
        if value is None:
            return None
        if isinstance(value, str):
            return cls(label, "=", value)
        if isinstance(value, NotEqual):
            return cls(label, "!=", value.value)
        if isinstance(value, Regex):
            return cls(label, "=~", value.pattern)
        if isinstance(value, NotRegex):
            return cls(label, "!~", value.pattern)
        if isinstance(value, OneOf):
            return cls(label, "=~", "|".join(re_escape(v) for v in value.values))
        raise InvalidArgument(
            f"matcher value for {label!r} must be a str, Regex, NotRegex, NotEqual, OneOf or None, "
            f"got {type(value).__name__}: {value!r}"
        )


def selector(metric: str | None = None, labels: Mapping[str, MatchValue] | None = None, /,
             **matchers: MatchValue) -> str:
    """Build a PromQL series selector with every value escaped.

    Parameters
    ----------
    metric : str, optional
        The metric name. Omit it to select by labels only.
    labels : mapping, optional
        Matchers given as a dict, for label names that are Python keywords (``class``).
    **matchers
        ``label=value``. A ``str`` is an exact match; :class:`Regex`, :class:`NotRegex`,
        :class:`NotEqual` and :class:`OneOf` give the other operators; ``None`` leaves the
        label unconstrained, so optional filters can be passed straight through.

    Returns
    -------
    str
        For example ``'response_total{direction="inbound",namespace="shop"}'``.

    Raises
    ------
    InvalidArgument
        For an invalid metric or label name, a non-string value, or an empty selector.
    """
    items = dict(labels or {})
    overlap = set(items) & set(matchers)
    if overlap:
        raise InvalidArgument(f"labels given twice: {sorted(overlap)}")
    items.update(matchers)
    built = [m for m in (Matcher.of(k, v) for k, v in items.items()) if m is not None]
    if metric is None and not built:
        raise InvalidArgument("a selector needs a metric name or at least one label matcher")
    body = "{" + ",".join(str(m) for m in built) + "}" if built else ""
    return (metric_name(metric) if metric is not None else "") + body


def by(*labels: str) -> str:
    """Return a validated grouping clause, e.g. ``by (namespace, pod)``."""
    return "by (" + ", ".join(label_name(name) for name in labels) + ")"
