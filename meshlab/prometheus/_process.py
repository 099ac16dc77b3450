"""Starting and stopping local server processes: finding binaries, free ports, work folders, file locks.

Shared by :mod:`meshlab.prometheus.local` (Prometheus), :mod:`meshlab.prometheus.victoriametrics` and
:mod:`meshlab.prometheus.vmagent`: each server is a ``_LocalServer`` that listens on ``127.0.0.1``,
keeps its data in a locked temporary folder and is stopped by PID (and dies with its parent).
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import requests

from ..errors import BinaryNotFoundError, MeshlabError
from .client import Prometheus

INSTALL_HINTS = {
    "prometheus": "install it with `apt-get install --no-install-recommends prometheus` (Debian/Ubuntu) "
    "or `conda install -c conda-forge prometheus`",
    "victoria-metrics": "install it with `apt-get install --no-install-recommends victoria-metrics` "
    "(Debian/Ubuntu) or download victoria-metrics-prod from the VictoriaMetrics releases",
}
INSTALL_HINTS["vmagent"] = ("install it with `apt-get install --no-install-recommends victoria-metrics` (Debian ships "
                            "vmagent in it) or download vmagent-prod from the VictoriaMetrics releases")
INSTALL_HINTS["promtool"] = INSTALL_HINTS["prometheus"] + " (promtool ships with it)"
INSTALL_HINTS["chromium"] = "install it with `apt-get install --no-install-recommends chromium` (Debian/Ubuntu)"
INSTALL_HINTS["kubectl"] = "install it with `apt-get install --no-install-recommends kubernetes-client` (Debian/Ubuntu)"


def find_binary(name: str, *alternatives: str, env: str | None = None) -> str:
    """Return the path of a server binary, or raise with instructions to install it.

    Parameters
    ----------
    name : str
        ``prometheus``, ``promtool`` or ``victoria-metrics``.
    *alternatives : str
        Other names to try, e.g. ``victoria-metrics-prod``.
    env : str, optional
        An environment variable that may hold an explicit path, e.g. ``MESHLAB_PROMETHEUS``.
    """
    explicit = os.environ.get(env) if env else None
    if explicit:
        if os.access(explicit, os.X_OK):
            return explicit
        raise BinaryNotFoundError(f"${env}={explicit!r} is not an executable file")
    for candidate in (name, *alternatives):
        found = shutil.which(candidate)
        if found:
            return found
    hint = INSTALL_HINTS.get(name, "install it and put it on PATH")
    raise BinaryNotFoundError(f"`{name}` was not found on PATH; {hint}")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent(parent: int | None = None) -> None:  # pragma: no cover - runs in the child before exec
    # Linux: stop the child (a server, a promtool) if the Python process that started it is
    # killed outright (SIGKILL, a crashed kernel), when no finalizer can run.
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if parent is not None and os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _child_dies_with_us() -> Callable[[], None] | None:
    """A ``preexec_fn`` tying a child's life to this process (Linux only; elsewhere None)."""
    if not sys.platform.startswith("linux"):
        return None
    return functools.partial(_die_with_parent, os.getpid())


def _existing_files(openmetrics: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None) -> list[Path]:
    """One path or many, as a list; each must exist."""
    if openmetrics is None:
        return []
    files = [Path(openmetrics)] if isinstance(openmetrics, (str, os.PathLike)) else [Path(p) for p in openmetrics]
    for path in files:
        if not path.is_file():
            raise FileNotFoundError(f"OpenMetrics file {str(path)!r} does not exist")
    return files


def _terminate(process: subprocess.Popen[bytes], workdir: str | None) -> None:
    if process.poll() is None:
        try:
            os.kill(process.pid, signal.SIGTERM)
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=15)
        except ProcessLookupError:
            pass
    if workdir:
        shutil.rmtree(workdir, ignore_errors=True)


def remove_stale_workdirs(name: str, tmp: str | os.PathLike[str] | None = None) -> list[Path]:
    """Remove the temporary work directories of ``name`` servers whose owner has died.

    A SIGKILLed Python cannot clean up: its server stops with it (PDEATHSIG), but the data
    stays in ``$TMPDIR/meshlab-<name>-*``. Each owner holds an exclusive ``flock`` on the
    directory's ``.lock`` while it lives, which the kernel releases when it dies, so a
    directory whose lock can be taken is stale. Directories kept on purpose (``keep=True``,
    marked ``.keep``) and ones without a lock file are left alone.

    Parameters
    ----------
    name : str
        The server kind, ``"prometheus"`` or ``"victoria-metrics"``.
    tmp : path-like, optional
        Where to look; the system's temporary directory by default.

    Returns
    -------
    list of Path
        The directories removed.
    """
    return remove_stale_dirs(Path(tmp or tempfile.gettempdir()), f"meshlab-{name}-*")


def flock(file: IO[bytes], *, shared: bool = False, wait: bool = False) -> None:
    """Lock ``file`` with ``flock``: exclusive (or ``shared``), failing at once unless ``wait``.

    POSIX only: ``fcntl`` is imported here, at use, so ``import meshlab`` and the modules that
    lock still import on Windows and fail only when a lock is taken.

    Raises
    ------
    BlockingIOError
        When not ``wait`` and another process holds the lock.
    MeshlabError
        On a platform without ``fcntl`` (Windows), saying so.
    """
    try:
        import fcntl
    except ModuleNotFoundError:  # Windows
        raise MeshlabError("meshlab's local servers and sandbox cache lock files with POSIX flock, which this "
                           "platform lacks; run them on Linux or macOS (on Windows, under WSL)") from None
    fcntl.flock(file, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB))


def remove_stale_dirs(parent: str | os.PathLike[str], pattern: str) -> list[Path]:
    """Remove the directories matching ``pattern`` in ``parent`` whose owner has died.

    The rule of :func:`remove_stale_workdirs`: a directory with a ``.lock`` file whose
    exclusive ``flock`` can be taken is stale; one marked ``.keep``, or without a lock file,
    is left alone.
    """
    removed = []
    for path in Path(parent).glob(pattern):
        lock_path = path / ".lock"
        if not lock_path.is_file() or (path / ".keep").exists():
            continue
        try:
            with open(lock_path, "rb") as lock:
                flock(lock)  # fails while the owner lives
                shutil.rmtree(path, ignore_errors=True)
        except (BlockingIOError, FileNotFoundError):
            continue
        removed.append(path)
    return removed


@contextmanager
def locked_tempdir(prefix: str, parent: str | os.PathLike[str] | None = None) -> Iterator[Path]:
    """A temporary directory that :func:`remove_stale_dirs` removes if this process is killed.

    It holds a ``.lock`` file, locked exclusively while the ``with`` block runs (the kernel
    releases the lock when the process dies, however it dies); removed on exit.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        with open(path / ".lock", "wb") as lock:
            flock(lock)
            yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class _LocalServer:
    """Start a server process on a free port, wait until it is ready, stop it by PID."""

    name = "server"
    ready_path = "/"
    start_timeout = 60.0

    def __init__(self, *, workdir: str | os.PathLike[str] | None = None, keep: bool = False):
        self._own_workdir = workdir is None
        self._lock: IO[bytes] | None = None
        self.keep = keep
        self.workdir = self._make_workdir() if workdir is None else Path(workdir)
        self.port: int | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize | None = None
        self._log: IO[bytes] | None = None
        self._client: Prometheus | None = None

    def _make_workdir(self) -> Path:
        workdir = Path(tempfile.mkdtemp(prefix=f"meshlab-{self.name}-"))
        # held while this process lives: a later server removes the directory if we are killed
        self._lock = open(workdir / ".lock", "wb")  # noqa: SIM115 - open for the object's life
        flock(self._lock)
        if self.keep:
            (workdir / ".keep").touch()
        return workdir

    # Subclasses fill these in.
    def _prepare(self) -> None:
        """Work done before the process starts (e.g. a backfill)."""

    def _command(self, port: int) -> list[str]:
        raise NotImplementedError

    def _after_start(self) -> None:
        """Work done once the server answers (e.g. an import)."""

    @property
    def url(self) -> str:
        """The server's base URL, e.g. ``http://127.0.0.1:40123``."""
        if self.port is None:
            raise MeshlabError(f"the {self.name} server is not running; use it in a `with` block or call start()")
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The server's process ID while it runs."""
        return self.process.pid if self.process is not None and self.process.poll() is None else None

    @property
    def client(self) -> Prometheus:
        """A :class:`meshlab.Prometheus` client for this server."""
        if self._client is None:
            self._client = Prometheus(self.url)
        return self._client

    def log_tail(self, lines: int = 20) -> str:
        """The last lines the server wrote to its log."""
        path = self.workdir / f"{self.name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def start(self) -> _LocalServer:
        """Prepare the data, start the process on a free port and wait until it is ready."""
        if self.process is not None:
            return self
        remove_stale_workdirs(self.name)
        if self._own_workdir and not self.workdir.is_dir():
            self.workdir = self._make_workdir()  # an earlier start failed and removed it
        try:
            self._start()
        except BaseException:
            self.stop()  # no process, and no copy of the data, left behind
            raise
        return self

    def _start(self) -> None:
        self._prepare()
        for _attempt in range(3):
            port = free_port()
            self._log = open(self.workdir / f"{self.name}.log", "ab")  # noqa: SIM115 - open while it runs
            self.process = subprocess.Popen(
                self._command(port), stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.workdir, start_new_session=True,
                preexec_fn=_child_dies_with_us(),
            )
            self._finalizer = weakref.finalize(
                self, _terminate, self.process, str(self.workdir) if self._own_workdir and not self.keep else None
            )
            self.port = port
            if self._wait_ready():
                break
            self._finalizer.detach()
            self._finalizer = None
            _terminate(self.process, None)
            self._log.close()
            self.process = None
            self.port = None
            if "address already in use" not in self.log_tail(5):
                raise MeshlabError(f"{self.name} did not start; its log ends with:\n{self.log_tail()}")
        else:
            raise MeshlabError(f"{self.name} could not find a free port after 3 attempts")
        self._after_start()

    def _wait_ready(self) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                if requests.get(self.url + self.ready_path, timeout=2).status_code == 200:
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise MeshlabError(
            f"{self.name} did not become ready within {self.start_timeout:g} s; log:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        """Stop the server by its PID and remove its temporary data."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._finalizer is not None:
            self._finalizer()  # terminates the process and removes the workdir, once
            self._finalizer = None
        elif self._own_workdir and not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None
        self.process = None
        self.port = None

    def __enter__(self) -> Any:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid={self.pid} url={self.url}" if self.pid else "stopped"
        return f"<{type(self).__name__} {state}>"
