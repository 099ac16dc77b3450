"""Atomic writes: one helper for every file and folder meshlab writes.

A reader sees the old file (or none) until the new one is complete, then the new one; never
half of one. The bytes go to a temporary file beside the destination, which is renamed over
it. Every temporary holds an exclusive ``flock`` while its writer lives; the kernel drops the
lock when the writer dies (even by SIGKILL), so the next write to the folder removes the
temporaries of dead writers and leaves live ones alone.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from .errors import InvalidArgument

try:
    import fcntl
except ImportError:  # Windows: no flock; temporaries of killed writers stay behind
    fcntl = None  # type: ignore[assignment]

__all__ = ["TMP_SUFFIX", "atomic_folder", "atomic_write", "remove_stale_temporaries"]

#: The suffix of every temporary file or folder; they also start with a dot.
TMP_SUFFIX = ".meshlab-tmp"


def _umask() -> int:
    """The process's umask, read without changing it where Linux allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: the classic read-by-setting, restored at once
    os.umask(mask)
    return mask


def _try_lock(fd: int) -> bool:
    if fcntl is None:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _lock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX)


def remove_stale_temporaries(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files and folders of meshlab writes that were killed midway.

    A temporary whose ``flock`` can be taken belongs to no live writer and is removed.

    Parameters
    ----------
    folder : path-like

    Returns
    -------
    list of Path
        What was removed.
    """
    removed = []
    for path in Path(folder).glob(f".*{TMP_SUFFIX}"):
        try:
            fd = os.open(path, os.O_RDONLY)  # a directory opens read-only too, and flock works on it
        except (FileNotFoundError, PermissionError):
            continue
        try:
            if not _try_lock(fd):
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        finally:
            os.close(fd)
        removed.append(path)
    return removed


def destination(path: str | os.PathLike[str]) -> Path:
    """Where the bytes of a write to ``path`` go: a symlink is written through (its target replaced)."""
    given = Path(path)
    try:
        target = given.resolve()  # follows every link in the chain; strict=False: the file may be new
    except (OSError, RuntimeError) as error:  # a symlink loop
        raise InvalidArgument(f"cannot write {given}: {error}") from None
    if target.is_dir():
        raise InvalidArgument(f"cannot write {given}: it is a directory; give a file name such as "
                              f"{given / 'out.csv'}")
    return target


def _locked_temporary(folder: Path, name: str, mode: int) -> tuple[int, str]:
    """A new temporary file beside the destination, with its lock held and its final mode."""
    while True:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=TMP_SUFFIX, dir=folder)
        _lock(fd)
        try:  # a cleaner may have taken the lock first and removed the file: start again
            if os.stat(tmp).st_ino == os.fstat(fd).st_ino:
                os.chmod(tmp, mode)
                return fd, tmp
        except FileNotFoundError:
            pass
        os.close(fd)


def _locked_tempdir(folder: Path, name: str) -> tuple[Path, int]:
    """A new temporary folder beside the destination, with its lock held (on the folder itself)."""
    while True:
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=TMP_SUFFIX, dir=folder))
        try:
            fd = os.open(staging, os.O_RDONLY)
        except FileNotFoundError:  # a cleaner took it before we could lock it: start again
            continue
        _lock(fd)
        try:
            if os.stat(staging).st_ino == os.fstat(fd).st_ino:
                return staging, fd
        except FileNotFoundError:
            pass
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "w", *, encoding: str | None = "utf-8",
                 newline: str | None = None, durable: bool = True) -> Iterator[IO[Any]]:
    """Open a file for writing that appears at ``path`` whole, or not at all.

    Used as ``with atomic_write(path) as handle: handle.write(...)``. If the block raises, the
    temporary file is removed and ``path`` keeps its old content (or stays absent). Concurrent
    writers each write their own temporary: the last rename wins, and the file is always one
    writer's whole output. A new file gets the permissions the umask gives (``0644`` under the
    usual ``022``); an existing one keeps its own. ``path`` may be a symlink: its target is
    replaced and the link kept. Parent folders are created.

    Parameters
    ----------
    path : path-like
        The destination.
    mode : {"w", "wb"}
        Text or binary.
    encoding, newline : str, optional
        For text mode, as :func:`open` takes them (default UTF-8).
    durable : bool
        ``fsync`` the file before the rename, so a power cut leaves the old or the new file
        (default True; temporary outputs may skip it).

    Yields
    ------
    file object

    Raises
    ------
    InvalidArgument
        If ``path`` is a directory or a symlink loop, or ``mode`` is not ``"w"`` or ``"wb"``.
    """
    if mode not in ("w", "wb"):
        raise InvalidArgument(f"mode: atomic_write writes whole files, 'w' or 'wb', not {mode!r}")
    target = destination(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target.parent)
    try:
        file_mode = target.stat().st_mode & 0o7777
    except FileNotFoundError:
        file_mode = 0o666 & ~_umask()
    fd, tmp = _locked_temporary(target.parent, target.name, file_mode)
    try:
        kwargs: dict[str, Any] = {} if mode == "wb" else {"encoding": encoding, "newline": newline}
        with os.fdopen(os.dup(fd), mode, **kwargs) as handle:
            yield handle
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)  # releases the lock


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2``); False where the system cannot."""
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):  # a filesystem without it
        return False
    raise OSError(code, os.strerror(code), str(a), None, str(b))


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike[str], *, replace: bool = True) -> Iterator[Path]:
    """Build a folder that appears at ``path`` whole, or not at all.

    Used as ``with atomic_folder(path) as staging: ...write files into staging...``. The
    files go to a temporary sibling folder (locked while it is built, so a killed build is
    removed by the next one); on success it takes ``path``'s place. An existing folder is
    swapped out in one step where the system can (Linux), else moved aside first, so ``path``
    holds the old folder, or briefly none, then the new one. If the block raises, the old
    folder is left as it was.

    Parameters
    ----------
    path : path-like
        The folder to build.
    replace : bool
        Replace an existing folder (default). The caller decides whether the folder there is
        one it may replace.

    Yields
    ------
    pathlib.Path
        The staging folder to fill.
    """
    target = Path(path).absolute()
    if target.is_symlink():
        target = target.resolve()
    if target.exists() and not target.is_dir():
        raise InvalidArgument(f"cannot write the folder {path}: a file is there")
    if target.exists() and not replace:
        raise InvalidArgument(f"cannot write the folder {path}: it exists")
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target.parent)
    staging, fd = _locked_tempdir(target.parent, target.name)
    try:
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes 0700; a report is shared like any folder
        yield staging
        if not target.exists():
            os.rename(staging, target)
        elif _exchange(staging, target):
            shutil.rmtree(staging, ignore_errors=True)  # holds the old folder now
        else:
            aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old" + TMP_SUFFIX,
                                          dir=target.parent))
            os.replace(target, aside)  # an empty directory may be replaced by a directory
            os.rename(staging, target)
            shutil.rmtree(aside, ignore_errors=True)
    finally:
        os.close(fd)
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
