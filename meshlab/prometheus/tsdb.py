"""Prometheus TSDB blocks on disk: move them in time, and prove a copy is intact.

A sandbox caches its run as TSDB blocks and serves the same run ending at any time, so
the blocks are moved in time rather than written again. In a block (format v1 with index
v2, as Prometheus 2.x and 3.x write) only three things hold absolute times:

- ``meta.json``: ``minTime`` and ``maxTime``;
- each series in ``index``: the first chunk's ``MinTime`` (a zigzag varint; the rest are deltas),
  followed by the series' CRC32C;
- each XOR chunk in ``chunks/``: its first sample's timestamp (a zigzag varint after the
  2-byte sample count; the rest are deltas), followed by the chunk's CRC32C.

Rewriting those varints in place keeps every offset valid when their length does not change,
which holds for any two times between 2005 and 2039 (2^41 to 2^42 ms after zigzag).
:func:`shift_blocks` refuses anything else (native histograms, another format) before it
writes, so the caller can load the run the slow way instead.

Reference: ``tsdb/docs/format/{index,chunks}.md`` and ``tsdb/index/index.go`` in
prometheus/prometheus.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any

from .._files import atomic_write

__all__ = ["MANIFEST", "ManifestError", "can_shift", "read_manifest", "shift_blocks", "verify_manifest",
           "write_manifest"]

#: The file a cache entry's manifest lives in.
MANIFEST = "manifest.json"

_XOR = 1
_SERIES_ALIGN = 16
_TOC_BYTES = 6 * 8 + 4


class ManifestError(Exception):
    """A stored copy differs from its manifest (or has none); the message says how."""


def _uvarint(buf: bytes | bytearray | memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _varint(buf: bytes | bytearray | memoryview, pos: int) -> tuple[int, int]:
    raw, end = _uvarint(buf, pos)
    return (raw >> 1) ^ -(raw & 1), end


def _put_varint(value: int) -> bytes:
    raw = (value << 1) ^ (value >> 63)  # zigzag, as Go's binary.PutVarint
    raw &= (1 << 64) - 1
    out = bytearray()
    while raw > 0x7F:
        out.append((raw & 0x7F) | 0x80)
        raw >>= 7
    out.append(raw)
    return bytes(out)


def _block_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / "meta.json").is_file())


def _times_shiftable(min_ms: int, max_ms: int, delta_ms: int) -> bool:
    lengths = {len(_put_varint(t)) for t in (min_ms, max_ms, min_ms + delta_ms, max_ms + delta_ms)}
    return len(lengths) == 1


def _shift_varints(data: bytearray, positions: list[int], width: int, delta_ms: int) -> None:
    """Add ``delta_ms`` to the zigzag varints of ``width`` bytes at ``positions``, whole arrays at a time."""
    import numpy as np

    if not positions:
        return
    buf = np.frombuffer(data, dtype=np.uint8)
    at = np.asarray(positions, dtype=np.int64)[:, None] + np.arange(width)[None, :]
    raw = buf[at].astype(np.uint64)
    continued = np.ones(width, dtype=bool)
    continued[-1] = False
    if not ((raw >= 0x80) == continued[None, :]).all():
        raise ValueError(f"a stored time is not a {width}-byte varint")
    shifts = (np.arange(width, dtype=np.uint64) * np.uint64(7))[None, :]
    value = ((raw & np.uint64(0x7F)) << shifts).sum(axis=1)
    times = (value >> np.uint64(1)).astype(np.int64) ^ -(value & np.uint64(1)).astype(np.int64)
    moved = times + delta_ms
    zigzag = ((moved << 1) ^ (moved >> 63)).astype(np.uint64)
    groups = (zigzag[:, None] >> shifts) & np.uint64(0x7F)
    if (zigzag >> np.uint64(7 * width)).any() or not (groups[:, -1] > 0).all():
        raise ValueError("a shifted time needs a varint of another length")
    out = groups.astype(np.uint8) | (continued[None, :].astype(np.uint8) << 7)
    buf.setflags(write=True)
    buf[at] = out


def _put_crcs(data: bytearray, spans: list[tuple[int, int]], crc: Any) -> None:
    """Write the big-endian CRC32C of ``data[a:b]`` at ``b`` for every span."""
    pack = struct.Struct(">I").pack_into
    view = memoryview(data)
    try:
        for a, b in spans:
            pack(data, b, crc(view[a:b]))
    finally:
        view.release()


def _shift_index(path: Path, delta_ms: int, width: int, crc: Any) -> None:
    import numpy as np

    data = bytearray(path.read_bytes())
    if len(data) < 5 + _TOC_BYTES or data[:4] != b"\xba\xaa\xd7\x00" or data[4] != 2:
        raise ValueError(f"{path} is not a version 2 index")
    toc = struct.unpack(">6Q", data[-_TOC_BYTES:-4])
    start = toc[1]
    end = min((offset for offset in toc if offset > start), default=len(data) - _TOC_BYTES)
    # Where every varint ends (its last byte is below 0x80): skipping n varints is one lookup.
    ends = (np.flatnonzero(np.frombuffer(data, dtype=np.uint8)[start:end] < 0x80) + start).tolist()
    find = bisect.bisect_left
    times, spans = [], []
    pos = start
    while True:
        pos += -pos % _SERIES_ALIGN  # every series starts 16-byte aligned, the first one too
        if pos >= end:
            break
        length, body = _uvarint(data, pos)
        if length == 0:
            break
        labels, p = (data[body], body + 1) if data[body] < 0x80 else _uvarint(data, body)
        if labels:
            p = ends[find(ends, p) + 2 * labels - 1] + 1  # past the label references
        if data[p]:  # the number of chunks, a varint: only whether it is zero matters
            p = ends[find(ends, p)] + 1
            times.append(p)
        spans.append((body, body + length))
        pos = body + length + 4
    _shift_varints(data, times, width, delta_ms)
    _put_crcs(data, spans, crc)
    path.write_bytes(data)


def _shift_chunks(path: Path, delta_ms: int, width: int, crc: Any) -> None:
    data = bytearray(path.read_bytes())
    size = len(data)
    times, spans = [], []
    pos = 8  # magic (4), version (1), padding (3)
    while pos < size:
        length = data[pos]
        if length < 0x80:
            pos += 1
        elif data[pos + 1] < 0x80:  # chunks of up to 16 KiB: two bytes, inlined as this loop is hot
            length = (length & 0x7F) | (data[pos + 1] << 7)
            pos += 2
        else:
            length, pos = _uvarint(data, pos)
        if length == 0:
            break
        if data[pos] != _XOR:
            raise ValueError(f"chunk encoding {data[pos]} (not XOR floats) cannot be shifted")
        if length > 2:  # a chunk holding samples: its first timestamp follows the 2-byte sample count
            times.append(pos + 3)
        end = pos + 1 + length
        spans.append((pos, end))  # the CRC covers the encoding byte and the data
        pos = end + 4
    _shift_varints(data, times, width, delta_ms)
    _put_crcs(data, spans, crc)
    path.write_bytes(data)


def shift_blocks(root: str | os.PathLike[str], delta_ms: int) -> bool:
    """Move every TSDB block under ``root`` by ``delta_ms`` milliseconds, in place.

    Parameters
    ----------
    root : path-like
        A TSDB data directory (or a snapshot) holding block directories.
    delta_ms : int
        How far to move them; negative moves them back.

    Returns
    -------
    bool
        ``False`` (nothing written) when the blocks cannot be moved in place: times whose
        varints would change length, or a block format this does not know.
    """
    import crc32c

    if delta_ms == 0:
        return True
    blocks = _block_dirs(Path(root))
    metas = {b: json.loads((b / "meta.json").read_text()) for b in blocks}
    for block, meta in metas.items():
        if meta.get("version") != 1 or not _times_shiftable(int(meta["minTime"]), int(meta["maxTime"]), delta_ms):
            return False
        if any(p.name != "000001" and not p.name.isdigit() for p in (block / "chunks").iterdir()):
            return False
    try:
        for block, meta in metas.items():
            width = len(_put_varint(int(meta["minTime"])))
            for segment in sorted((block / "chunks").iterdir()):
                _shift_chunks(segment, delta_ms, width, crc32c.crc32c)
            _shift_index(block / "index", delta_ms, width, crc32c.crc32c)
            meta["minTime"] = int(meta["minTime"]) + delta_ms
            meta["maxTime"] = int(meta["maxTime"]) + delta_ms
            (block / "meta.json").write_text(json.dumps(meta, indent="\t"))
    except (ValueError, IndexError, struct.error) as exc:
        raise ValueError(f"could not move the blocks in {str(root)!r} in time: {exc}") from exc
    return True


def _digest(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        for piece in iter(lambda: handle.read(1 << 20), b""):
            digest.update(piece)
    return digest.hexdigest()


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST and not p.name.startswith("."))


def write_manifest(root: str | os.PathLike[str], **extra: Any) -> dict[str, Any]:
    """Record the size and checksum (BLAKE2b) of every file under ``root`` in ``root/manifest.json``.

    ``extra`` (plain JSON values) is stored alongside, e.g. the time range the blocks hold.
    """
    base = Path(root)
    manifest = {**extra, "files": {str(p.relative_to(base)): {"size": p.stat().st_size, "blake2b": _digest(p)}
                                   for p in _files(base)}}
    with atomic_write(base / MANIFEST, "w") as handle:
        handle.write(json.dumps(manifest, indent=1, sort_keys=True))
    return manifest


def read_manifest(root: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of ``root``; :class:`ManifestError` when it is missing or unreadable."""
    path = Path(root) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise ManifestError(f"{path} is missing") from None
    except (OSError, ValueError) as exc:
        raise ManifestError(f"{path} is unreadable ({exc})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise ManifestError(f"{path} has no file list")
    return manifest


def verify_manifest(root: str | os.PathLike[str], *, checksums: bool = True) -> dict[str, Any]:
    """Check that ``root`` holds exactly the files of its manifest, with their sizes (and checksums).

    Returns
    -------
    dict
        The manifest.

    Raises
    ------
    ManifestError
        Naming the first file missing, extra, of another size or with another checksum.
    """
    base = Path(root)
    if not base.is_dir():
        raise ManifestError(f"{base} is not a directory")
    manifest = read_manifest(base)
    expected: dict[str, Any] = manifest["files"]
    present = {str(p.relative_to(base)): p for p in _files(base)}
    for name in sorted(expected.keys() - present.keys()):
        raise ManifestError(f"{base / name} is missing")
    for name in sorted(present.keys() - expected.keys()):
        raise ManifestError(f"{base / name} is not in the manifest")
    for name, entry in expected.items():
        size = present[name].stat().st_size
        if size != entry.get("size"):
            raise ManifestError(f"{base / name} has {size} bytes, the manifest says {entry.get('size')}")
    if checksums:
        for name, entry in expected.items():
            if _digest(present[name]) != entry.get("blake2b"):
                raise ManifestError(f"{base / name} has changed (its checksum differs from the manifest's)")
    return manifest


def can_shift(min_ms: int, max_ms: int, delta_ms: int) -> bool:
    """Whether blocks holding ``min_ms`` to ``max_ms`` can be moved by ``delta_ms`` in place."""
    return _times_shiftable(int(min_ms), int(max_ms), int(delta_ms))
