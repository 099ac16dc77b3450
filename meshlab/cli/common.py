"""What several commands share: the output and debug options, and reaching Prometheus."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import click

from ..errors import InvalidArgument, PrometheusUnavailable
from .core import DEBUG
from .output import FORMATS

if TYPE_CHECKING:
    from ..prometheus.client import Prometheus

F = TypeVar("F", bound=Callable[..., Any])


def _debug(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        DEBUG["on"] = True
    return value


def debug_option(f: F) -> F:
    return click.option("--debug", is_flag=True, expose_value=False, callback=_debug,
                        help="On an error, show the traceback too.")(f)


def output_option(f: F) -> F:
    return click.option("-o", "--output", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
                        help="table: for a terminal; wide: every column; json or csv: raw values.")(f)


def check_out(out: str, option: str = "-o") -> None:
    """Refuse an output path that cannot be written before doing the work."""
    path = Path(out)
    if path.is_dir():
        raise InvalidArgument(f"{option} {out}: that is a directory; give a file name such as {path / 'out.csv'}")
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise InvalidArgument(f"{option} {out}: {parent} is a file, not a directory")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise InvalidArgument(f"{option} {out}: cannot create files in {parent} (permission denied)")
            return


def _loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def refuse_unreachable(url: str, timeout: float) -> None:
    """Fail at once, before pandas and the HTTP stack load, when nothing listens at a loopback URL.

    Only a refused connection to a loopback address (``kubectl port-forward``'s) is decided
    here, as the client decides it (no retry: nothing listens there); anything else is left to
    the client, its retries and its messages.
    """
    parts = urlsplit(url)
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host or not _loopback(host):
        return
    from urllib.request import getproxies, proxy_bypass  # http.client and email: not for --help

    if getproxies().get(parts.scheme) and not proxy_bypass(host):
        return  # the client would go through the proxy
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return  # a bad port: the client says so
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except ConnectionRefusedError:
        where = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"  # no credentials in messages
        raise PrometheusUnavailable(
            f"could not connect to Prometheus at {where}: connection refused; is the server running "
            "(or the port-forward) and the URL right?") from None
    except OSError:
        return  # a timeout or another failure: the client retries and explains


def prometheus(url: str, timeout: float = 30.0) -> Prometheus:
    """A client for ``url``, after :func:`refuse_unreachable`."""
    refuse_unreachable(url, timeout)
    from ..prometheus.client import Prometheus

    return Prometheus(url, timeout=timeout)
