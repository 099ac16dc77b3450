"""``meshlab serve-smi``: the SMI Traffic Metrics API from any mesh adapter (:mod:`meshlab.smi.server`)."""

from __future__ import annotations

import click

from ..errors import InvalidArgument
from .common import debug_option, refuse_unreachable
from .core import PORT, Command, duration_type, positive, time_type

_HELP = """Serve meshes' golden signals in Prometheus as the SMI Traffic Metrics API
(/apis/metrics.smi-spec.io/v1alpha1 and v1alpha2), for kubectl get --raw, an APIService or any HTTP
client. Also /healthz, /readyz and /metrics. Runs until Ctrl-C or SIGTERM."""


@click.command("serve-smi", cls=Command, help=_HELP, short_help="Serve the SMI Traffic Metrics API.")
@click.option("--prometheus", "url", envvar="MESHLAB_PROMETHEUS_URL", metavar="URL", required=True,
              help="Prometheus base URL, e.g. http://127.0.0.1:9090 (or $MESHLAB_PROMETHEUS_URL).")
@click.option("--mesh", "meshes", multiple=True, metavar="NAME",
              help="A mesh to serve (repeat for several; default: every mesh with data in Prometheus).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0 in a pod).")
@click.option("--port", type=PORT, default=8443, show_default=True)
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), default=None,
              help="PEM certificate (chain): serve HTTPS, as an APIService's backend must. Needs --tls-key.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), default=None, help="PEM private key.")
@click.option("--window", type=duration_type("--window"), default="30s", show_default=True,
              help="The window when a request gives no ?t=.")
@click.option("--at", type=time_type("--at"), default=None, help="Answer for this instant instead of now "
                                                                 "(a recorded run).")
@click.option("--max-queries", type=positive(int, "queries"), default=4, show_default=True,
              help="PromQL requests in flight at once, at most.")
@click.option("--cache-ttl", type=click.FloatRange(0, 3600), default=5.0, show_default=True,
              help="Seconds an answer is reused for the same window, mesh, kind and namespace.")
@click.option("--timeout", type=positive(float, "seconds"), default=10.0, show_default=True,
              help="Seconds per Prometheus request.")
@debug_option
def serve_smi(url: str, meshes: tuple[str, ...], host: str, port: int, tls_cert: str | None, tls_key: str | None,
              window: str, at: str | None, max_queries: int, cache_ttl: float, timeout: float) -> int:
    if (tls_cert is None) != (tls_key is None):
        raise InvalidArgument("--tls-cert and --tls-key go together: give both (PEM files) or neither")
    for name in meshes:
        if not name.strip():
            raise InvalidArgument("--mesh needs a mesh name such as linkerd")
    if meshes:  # a typo is reported before the network is tried
        from ..meshes.registry import get_mesh

        for name in meshes:
            get_mesh(name.strip())
    refuse_unreachable(url, timeout)
    import socket

    from ..prometheus.client import Prometheus
    from ..smi.server import SMIServer, SMIService

    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise InvalidArgument(f"cannot listen on {host}:{port}: {exc.strerror or exc}; --host must be a local "
                              "address such as 127.0.0.1") from None
    prom = Prometheus(url, timeout=timeout, retries=1)
    service = SMIService(prom, list(meshes) or "auto", window=window, at=at, max_queries=max_queries,
                         cache_ttl=cache_ttl)
    from .sim import _stop_on_sigterm, _wait_forever

    with _stop_on_sigterm(), SMIServer(service, host=host, port=port, tls_cert=tls_cert, tls_key=tls_key) as server:
        print(f"serving the SMI metrics API for {', '.join(service.adapters)} at {server.url}"
              f"/apis/metrics.smi-spec.io/v1alpha1 from {prom.url}; Ctrl-C to stop", flush=True)
        try:
            _wait_forever()
        except KeyboardInterrupt:
            return 0
    return 0  # pragma: no cover


