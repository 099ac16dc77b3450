"""The SMI server's paths and arguments: what a request asks for, checked before anything reaches PromQL."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import InvalidArgument
from ._spec import _KINDS, API_GROUP, VERSIONS

if TYPE_CHECKING:

    pass


#: the longest ``?t=`` accepted: a day of rate() per request is already a heavy query
MAX_WINDOW_S = 86400.0
#: the shortest: rate() needs two samples, and Prometheus scrapes every few seconds at best
MIN_WINDOW_S = 1.0
#: how long /readyz waits for Prometheus
READY_TIMEOUT_S = 5.0
_NS = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")  # DNS-1123 label: a namespace
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")  # DNS-1123 subdomain
_PLURAL_KIND = {plural: kind for kind, (_, plural) in _KINDS.items()}
_STATUS_ANNOTATION = "meshlab/status"
_MESSAGE_ANNOTATION = "meshlab/message"


def _short(value: str, limit: int = 60) -> str:
    """A name for a message: hostile input may be kilobytes long."""
    return repr(value if len(value) <= limit else value[:limit] + "...") + (
        f" ({len(value)} characters)" if len(value) > limit else "")


class _Reply(Exception):
    """A Kubernetes ``Status`` answer, raised from anywhere in a request."""

    def __init__(self, code: int, reason: str, message: str, details: Mapping[str, Any] | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                "message": self.message, "reason": self.reason, "code": self.code}
        if self.details:
            body["details"] = dict(self.details)
        return body


def check_name(value: str, what: str, *, namespace: bool = False) -> str:
    """``value`` if it is a Kubernetes name (a DNS-1123 label for a namespace, else a subdomain); else a 400."""
    limit, pattern = (63, _NS) if namespace else (253, _SUBDOMAIN)
    if len(value) > limit or not pattern.match(value):
        rule = ("a DNS-1123 label: at most 63 lower-case letters, digits and '-', alphanumeric at both ends"
                if namespace else "a DNS-1123 subdomain: at most 253 lower-case letters, digits, '-' and '.', "
                                  "alphanumeric at both ends of each dot-separated part")
        raise _Reply(400, "BadRequest", f"invalid {what} {_short(value)}: a Kubernetes {what} is {rule}")
    return value


def parse_window(text: str) -> int:
    """Nanoseconds of a ``?t=`` window (Go ``1m30s`` or Prometheus ``5m``, ``1h``); else a 400 saying why."""
    from ..timeutil import to_timedelta
    from ._wire import parse_go_duration

    shown = _short(text, 40)
    nanos = parse_go_duration(text) if len(text) <= 40 else None
    if nanos is None and len(text) <= 40:
        try:
            nanos = to_timedelta(text, name="t").value
        except (InvalidArgument, ValueError, OverflowError):
            nanos = None
    if nanos is None:
        raise _Reply(400, "BadRequest", f"invalid window t={shown}: give a duration such as 30s, 1m30s or 5m "
                                        "(Go or Prometheus syntax)")
    if not MIN_WINDOW_S * 1e9 <= nanos <= MAX_WINDOW_S * 1e9:
        raise _Reply(400, "BadRequest", f"invalid window t={shown}: it must be between {MIN_WINDOW_S:g}s and "
                                        f"{MAX_WINDOW_S / 3600:g}h")
    if nanos % 1_000_000:
        raise _Reply(400, "BadRequest", f"invalid window t={shown}: Prometheus ranges are whole milliseconds")
    return nanos


@dataclass(frozen=True)
class _Request:
    version: str
    plural: str
    namespace: str | None  # the path's namespace (for kind "namespace": None)
    name: str | None
    edges: bool
    template: str


def route(path: str) -> _Request | str:
    """What an API path asks for, or the name of a fixed endpoint (``"apis"``, ``"group"``, ``"resources:V"``)."""
    parts = path.strip("/").split("/")
    if parts == ["apis"]:
        return "apis"
    if parts[:2] != ["apis", API_GROUP]:
        raise _Reply(404, "NotFound", "the server could not find the requested resource")
    if len(parts) == 2:
        return "group"
    version = parts[2]
    if version not in VERSIONS:
        raise _Reply(404, "NotFound", f"the server could not find the requested resource: {API_GROUP} "
                                      f"version {_short(version, 20)} is not served (served: {', '.join(VERSIONS)})")
    rest, base = parts[3:], f"/apis/{API_GROUP}/{{version}}"
    if not rest:
        return f"resources:{version}"
    if rest[0] != "namespaces" or len(rest) > 5:
        raise _Reply(404, "NotFound", "the server could not find the requested resource: paths are "
                                      "namespaces[/NS[/edges]] and namespaces/NS/KIND[/NAME[/edges]]")
    if len(rest) == 1:
        return _Request(version, "namespaces", None, None, False, f"{base}/namespaces")
    ns = check_name(rest[1], "namespace", namespace=True)
    if len(rest) == 2:
        return _Request(version, "namespaces", None, ns, False, f"{base}/namespaces/{{name}}")
    if len(rest) == 3 and rest[2] == "edges":
        return _Request(version, "namespaces", None, ns, True, f"{base}/namespaces/{{name}}/edges")
    plural = rest[2]
    if plural not in _PLURAL_KIND or plural == "namespaces":
        raise _Reply(404, "NotFound", f"the server could not find the requested resource: no kind "
                                      f"{_short(plural, 40)} in {API_GROUP} (kinds: "
                                      f"{', '.join(p for p in _PLURAL_KIND if p != 'namespaces')})")
    if len(rest) == 3:
        return _Request(version, plural, ns, None, False, f"{base}/namespaces/{{namespace}}/{{kind}}")
    name = check_name(rest[3], "name")
    if len(rest) == 4:
        return _Request(version, plural, ns, name, False, f"{base}/namespaces/{{namespace}}/{{kind}}/{{name}}")
    if rest[4] != "edges":
        raise _Reply(404, "NotFound", "the server could not find the requested resource: after a name only "
                                      "/edges is served")
    return _Request(version, plural, ns, name, True, f"{base}/namespaces/{{namespace}}/{{kind}}/{{name}}/edges")


def _warning(message: str) -> str:
    """An RFC 7234 ``Warning`` header (299), which kubectl and client-go show to the user."""
    text = message.encode("ascii", "replace").decode().replace("\\", "\\\\").replace('"', '\\"')
    return f'299 - "{text}"'
