"""A local port forwarded to a pod's port through the apiserver (``kubectl port-forward``).

Each local TCP connection gets its own port-forward websocket (the kubernetes client's
``portforward`` stream), piped both ways by one thread.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import select
import socket
import threading
from typing import Any

from . import _client
from .errors import PortForwardError

__all__ = ["PortForward"]

log = logging.getLogger("meshlab.k8s")


class PortForward:
    """Forward ``127.0.0.1:local_port`` to ``port`` of pod ``namespace/pod``.

    The first stream is opened at once, so a refused port-forward (RBAC, a missing pod, an
    apiserver without websockets) is an error here rather than at the first query. Use as a
    context manager, or call :meth:`close`.
    """

    def __init__(self, cluster: _client.Cluster, namespace: str, pod: str, port: int, *, local_port: int = 0,
                 timeout: float = 30.0):
        self.cluster, self.namespace, self.pod, self.port = cluster, namespace, pod, int(port)
        self.timeout = timeout  #: seconds to wait for the apiserver to open a stream
        self.errors: list[str] = []  #: what the apiserver or kubelet said on the error channel
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[Any] = set()
        self._threads: list[threading.Thread] = []
        self._open_stream().close()  # fail now, not at the first request
        self._listener = socket.create_server(("127.0.0.1", local_port))
        self.local_port: int = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept, name=f"meshlab port-forward {self}", daemon=True)
        self._acceptor.start()

    def __repr__(self) -> str:
        return f"PortForward(127.0.0.1:{getattr(self, 'local_port', '?')} -> {self.namespace}/{self.pod}:{self.port})"

    def __enter__(self) -> PortForward:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def close(self) -> None:
        """Stop listening and close every forwarded connection."""
        if self._closed.is_set():
            return
        self._closed.set()
        with contextlib.suppress(OSError):  # wakes accept(); close() alone leaves the port listening until then
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for s in sockets:
            _close(s)
        self._acceptor.join(5)
        for t in list(self._threads):
            t.join(5)

    def _open_stream(self) -> Any:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException
        from kubernetes.stream import portforward

        core = client.CoreV1Api(self.cluster.api)
        done: dict[str, Any] = {}

        def open_() -> None:
            try:
                done["stream"] = portforward(core.connect_get_namespaced_pod_portforward, self.pod, self.namespace,
                                             ports=str(self.port))
            except BaseException as exc:
                done["error"] = exc

        # The client's websocket handshake has no timeout of its own; a silent apiserver must not hang us.
        opener = threading.Thread(target=open_, name=f"meshlab port-forward open {self.namespace}/{self.pod}",
                                  daemon=True)
        opener.start()
        opener.join(self.timeout)
        if opener.is_alive():
            raise PortForwardError(
                f"the apiserver of context {self.cluster.context!r} did not open a port-forward to pod "
                f"{self.namespace}/{self.pod} port {self.port} within {self.timeout:g} s; check it with `kubectl "
                f"--context {self.cluster.context} -n {self.namespace} port-forward pod/{self.pod} {self.port}`")
        error = done.get("error")
        if isinstance(error, ApiException):
            raise self._refused(str(error.reason)) from None
        if error is not None:
            raise error
        return done["stream"]

    def _refused(self, reason: str) -> Exception:
        # websocket-client reports a refused upgrade as "Handshake status 403 Forbidden -+-+- {headers} -+-+- body"
        match = re.search(r"Handshake status (\d+)\s*([^-]*)", reason)
        if match:
            body = reason.rsplit("-+-+-", 1)[-1].strip()
            return _client.error_for(int(match.group(1)), match.group(2).strip(), body, self.cluster,
                                     verb="create", resource="pods/portforward", namespace=self.namespace)
        return PortForwardError(
            f"the port-forward to pod {self.namespace}/{self.pod} port {self.port} was refused: {reason}; "
            f"try `kubectl --context {self.cluster.context} -n {self.namespace} port-forward pod/{self.pod} "
            f"{self.port}` to see why")

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._pipe, args=(conn,), name=f"meshlab {self}", daemon=True)
            with self._lock:
                self._threads = [t for t in self._threads if t.is_alive()]
                self._threads.append(thread)
                self._sockets.add(conn)
            thread.start()

    def _pipe(self, conn: socket.socket) -> None:
        try:
            stream = self._open_stream()
        except Exception as exc:  # the local client sees a closed connection; the error is kept
            self._note(str(exc))
            self._forget(conn)
            return
        remote = stream.socket(self.port)
        with self._lock:
            self._sockets.add(remote)
        try:
            _shuttle(conn, remote, self._closed)
        finally:
            self._forget(conn)
            self._forget(remote)
            error = _wait_error(stream, self.port)
            if error:
                self._note(error)

    def _note(self, error: str) -> None:
        log.debug("port-forward %s: %s", self, error)
        with self._lock:
            self.errors.append(error)

    def _forget(self, s: Any) -> None:
        with self._lock:
            self._sockets.discard(s)
        _close(s)


def _shuttle(a: Any, b: Any, stop: threading.Event) -> None:
    """Copy bytes both ways until either side closes."""
    while not stop.is_set():
        try:
            ready, _, _ = select.select([a, b], [], [], 0.5)
        except (OSError, ValueError):
            return
        for s in ready:
            try:
                data = s.recv(65536)
            except OSError:
                return
            if not data:
                return
            try:
                (b if s is a else a).sendall(data)
            except OSError:
                return


def _wait_error(stream: Any, port: int) -> str | None:
    # The error channel's text arrives just before the websocket closes.
    for _ in range(20):
        error = stream.error(port)
        if error or not stream.connected:
            break
        threading.Event().wait(0.01)
    error = stream.error(port)
    with contextlib.suppress(OSError):
        stream.close()
    if not error:
        return None
    try:  # v5 servers send a Status object; v4 ones plain text
        decoded = json.loads(error)
        return str(decoded.get("message", error)) if isinstance(decoded, dict) else error
    except ValueError:
        return str(error)


def _close(s: Any) -> None:
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        s.close()
