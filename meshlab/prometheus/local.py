"""Real Prometheus and VictoriaMetrics servers on loopback, for tests, notebooks and demos.

Both start from a binary on PATH, listen on a free ``127.0.0.1`` port, keep their data
in a temporary directory, and are stopped by PID when the ``with`` block ends (or when
the object is garbage-collected, or at interpreter exit, whichever comes first).

Examples
--------
>>> with LocalPrometheus(openmetrics="data.om") as server:   # doctest: +SKIP
...     server.client.query("up")
"""

from __future__ import annotations

import functools
import json
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
from ..openmetrics import seconds_to_millis_lines
from .client import Prometheus

__all__ = ["LocalPrometheus", "LocalVictoriaMetrics", "find_binary", "flock", "locked_tempdir", "remove_stale_dirs",
           "remove_stale_workdirs"]

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


class LocalPrometheus(_LocalServer):
    """A real ``prometheus`` with a temporary TSDB, optionally backfilled from OpenMetrics.

    Parameters
    ----------
    openmetrics : path-like or sequence of path-like, optional
        OpenMetrics files to backfill with ``promtool tsdb create-blocks-from openmetrics``
        before the server starts (several at once, one per CPU).
    blocks : path-like, optional
        A directory of TSDB blocks to start from (copied, never modified).
    shift_ms : int
        Move the copied blocks this many milliseconds in time before starting
        (:func:`meshlab.prometheus.tsdb.shift_blocks`).
    config : str, optional
        The ``prometheus.yml`` text; by default an empty config with no scrape jobs.
    remote_write : bool
        Accept remote write on ``/api/v1/write`` (for :func:`meshlab.sim.push_backfill`) and
        enable the admin API for :meth:`snapshot`.
    extra_args : sequence of str
        More command-line flags for ``prometheus``.
    workdir : path-like, optional
        Where to keep the TSDB; a temporary directory (removed on stop) by default.
    keep : bool
        Keep the temporary directory after stopping, for debugging.

    Notes
    -----
    Retention is set to 100 years so that backfilled history is never deleted.
    The binaries are found on PATH, or from ``$MESHLAB_PROMETHEUS`` / ``$MESHLAB_PROMTOOL``.
    """

    name = "prometheus"
    ready_path = "/-/ready"

    def __init__(self, openmetrics: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
                 *, config: str | None = None, extra_args: Sequence[str] = (),
                 workdir: str | os.PathLike[str] | None = None, keep: bool = False,
                 blocks: str | os.PathLike[str] | None = None, remote_write: bool = False, shift_ms: int = 0):
        self.binary = find_binary("prometheus", env="MESHLAB_PROMETHEUS")
        self.remote_write = remote_write
        self.blocks = Path(blocks) if blocks is not None else None
        self.shift_ms = int(shift_ms)
        files = _existing_files(openmetrics)
        self.promtool = find_binary("promtool", env="MESHLAB_PROMTOOL") if files else None
        super().__init__(workdir=workdir, keep=keep)
        self.openmetrics = files
        self.config = config if config is not None else "global:\n  scrape_interval: 15s\nscrape_configs: []\n"
        self.extra_args = list(extra_args)

    def _prepare(self) -> None:
        data = self.workdir / "data"
        if self.blocks is not None:
            from .tsdb import MANIFEST, shift_blocks

            shutil.copytree(self.blocks, data, dirs_exist_ok=True, ignore=shutil.ignore_patterns(MANIFEST, ".*"))
            try:
                moved = not self.shift_ms or shift_blocks(data, self.shift_ms)
            except (ValueError, KeyError) as exc:  # damaged blocks
                raise MeshlabError(f"the blocks in {str(self.blocks)!r} are damaged: {exc}") from None
            if not moved:
                raise MeshlabError(f"the blocks in {str(self.blocks)!r} cannot be moved by {self.shift_ms} ms "
                                   "(times outside 2005-2039, or a block format meshlab does not know)")
        data.mkdir(exist_ok=True)
        (self.workdir / "prometheus.yml").write_text(self.config)
        backfill(self.openmetrics, data, promtool=self.promtool)

    def _command(self, port: int) -> list[str]:
        return [
            self.binary,
            f"--config.file={self.workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=100y",
            "--log.level=warn",
            *(["--web.enable-remote-write-receiver", "--web.enable-admin-api"] if self.remote_write else []),
            *self.extra_args,
        ]

    def snapshot(self, destination: str | os.PathLike[str]) -> Path:
        """Write everything the server holds, in-memory head included, as TSDB blocks.

        Uses the admin API's snapshot (needs ``remote_write=True``) and moves the blocks into
        ``destination`` (created if missing; it must be empty). The result can start another
        server (``LocalPrometheus(blocks=destination)``) without replaying a write-ahead log.
        """
        if not self.remote_write:
            raise MeshlabError("snapshot() needs the admin API; start the server with "
                               "LocalPrometheus(remote_write=True)")
        target = Path(destination)
        target.mkdir(parents=True, exist_ok=True)
        if any(target.iterdir()):
            raise MeshlabError(f"cannot snapshot into {str(target)!r}: the directory is not empty")
        status, text = self.client.post_bytes("/api/v1/admin/tsdb/snapshot?skip_head=false", b"", {})
        if status != 200:
            raise MeshlabError(f"prometheus could not snapshot its TSDB (HTTP {status}): {text.strip()[:300]}")
        made = self.workdir / "data" / "snapshots" / json.loads(text)["data"]["name"]
        for block in made.iterdir():
            shutil.move(block, target / block.name)
        made.rmdir()
        return target


def backfill(openmetrics: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
             data_dir: str | os.PathLike[str], *, promtool: str | None = None) -> None:
    """Turn OpenMetrics files into TSDB blocks with ``promtool tsdb create-blocks-from openmetrics``.

    Files are backfilled concurrently, one promtool per CPU. promtool re-reads a file once
    for every 2-hour block it spans, so files that each hold one 2-hour range are fastest.

    Raises
    ------
    MeshlabError
        With promtool's own message for every file it rejects.
    """
    from concurrent.futures import ThreadPoolExecutor

    files = [openmetrics] if isinstance(openmetrics, (str, os.PathLike)) else list(openmetrics)
    if not files:
        return
    tool = promtool or find_binary("promtool", env="MESHLAB_PROMTOOL")
    workers = min(len(files), os.cpu_count() or 1)
    env = dict(os.environ)
    if workers > 1:
        # One Go thread per promtool when they run side by side: measured 11.2 s against 13.3 s
        # for 2 M samples on a 2-core machine, where the runtimes otherwise contend.
        env.setdefault("GOMAXPROCS", "1")

    def run(path: str | os.PathLike[str]) -> str | None:
        result = subprocess.run(
            [tool, "tsdb", "create-blocks-from", "openmetrics", "--quiet", str(path), str(data_dir)],
            capture_output=True, text=True, env=env, preexec_fn=_child_dies_with_us(),
        )
        if result.returncode == 0:
            return None
        detail = (result.stderr or result.stdout).strip().splitlines()[-10:]
        return f"promtool could not backfill {str(path)!r}:\n" + "\n".join(detail)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        failures = [f for f in pool.map(run, files) if f]
    if failures:
        raise MeshlabError("\n".join(failures))


class LocalVictoriaMetrics(_LocalServer):
    """A real single-node VictoriaMetrics, loaded through ``/api/v1/import/prometheus``.

    It stands in for the scale-out Prometheus-compatible engines (VictoriaMetrics
    cluster, Thanos, Mimir). OpenMetrics files are streamed to the import endpoint with
    their timestamps rewritten to milliseconds, then flushed so they are searchable.

    Parameters
    ----------
    openmetrics : path-like or sequence of path-like, optional
        Files to import once the server is up.
    extra_args : sequence of str
        More command-line flags for ``victoria-metrics``.

    Notes
    -----
    Two behaviours differ from Prometheus and are not hidden: range queries are aligned to
    multiples of ``step`` unless ``nocache=1`` is sent (``client`` sends it), and ``rate``
    does not extrapolate to the window edges, so its values differ by a few percent.
    """

    name = "victoria-metrics"
    ready_path = "/health"

    def __init__(self, openmetrics: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
                 *, extra_args: Sequence[str] = (), workdir: str | os.PathLike[str] | None = None,
                 keep: bool = False):
        self.binary = find_binary("victoria-metrics", "victoria-metrics-prod", env="MESHLAB_VICTORIA_METRICS")
        files = _existing_files(openmetrics)
        super().__init__(workdir=workdir, keep=keep)
        self.openmetrics = files
        self.extra_args = list(extra_args)

    @property
    def client(self) -> Prometheus:
        if self._client is None:
            self._client = Prometheus(self.url, params={"nocache": "1"})
        return self._client

    def _command(self, port: int) -> list[str]:
        return [
            self.binary,
            f"-httpListenAddr=127.0.0.1:{port}",
            f"-storageDataPath={self.workdir / 'data'}",
            "-retentionPeriod=100y",
            "-search.latencyOffset=0s",
            "-loggerLevel=WARN",
            *self.extra_args,
        ]

    def _after_start(self) -> None:
        for path in self.openmetrics:
            self.import_openmetrics(path)

    def import_openmetrics(self, path: str | os.PathLike[str]) -> None:
        """Stream one OpenMetrics file into the server and flush it to search."""
        with open(path, "rb") as handle:
            response = requests.post(self.url + "/api/v1/import/prometheus",
                                     data=_batched(seconds_to_millis_lines(handle)), timeout=600)
        if response.status_code >= 300:
            raise MeshlabError(
                f"VictoriaMetrics refused {str(path)!r}: HTTP {response.status_code} {response.text[:300]}"
            )
        self.force_flush()

    def force_flush(self) -> None:
        """Make everything written so far searchable (imports and remote writes are buffered)."""
        requests.get(self.url + "/internal/force_flush", timeout=60).raise_for_status()


def _batched(lines: Iterator[bytes], size: int = 1 << 20) -> Iterator[bytes]:
    batch: list[bytes] = []
    held = 0
    for line in lines:
        batch.append(line)
        held += len(line)
        if held >= size:
            yield b"".join(batch)
            batch, held = [], 0
    if batch:
        yield b"".join(batch)
