"""Offline rendering: PNG and SVG through vl-convert, HTML with the Vega JavaScript inlined."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import InvalidArgument

__all__ = ["FORMATS", "save", "to_html"]

#: What :func:`save` writes, by file suffix.
FORMATS = ("png", "svg", "html", "json")


def _spec(chart: Any) -> dict[str, Any]:
    to_dict = getattr(chart, "to_dict", None)
    if not callable(to_dict):
        raise InvalidArgument(f"chart: expected an Altair chart (from meshlab.charts), got {type(chart).__name__}")
    spec = to_dict()
    if not isinstance(spec, dict):
        raise InvalidArgument(f"chart: to_dict() returned {type(spec).__name__}, not a Vega-Lite spec")
    return spec


def _vl_version() -> str:
    import altair as alt

    major, minor = alt.SCHEMA_VERSION.lstrip("v").split(".")[:2]
    return f"{major}.{minor}"


def to_html(chart: Any, *, title: str | None = None) -> str:
    """A standalone HTML page for a chart with Vega, Vega-Lite and vega-embed inlined: no network needed."""
    import vl_convert

    html: str = vl_convert.vegalite_to_html(_spec(chart), vl_version=_vl_version(), bundle=True)
    if title:
        from html import escape

        html = html.replace("<head>", f"<head>\n<title>{escape(title)}</title>", 1)
    return html


def save(chart: Any, path: str | os.PathLike[str], *, format: str | None = None, scale: float = 2.0) -> Path:
    """Write a chart to a file, offline, atomically.

    Parameters
    ----------
    chart : altair.Chart
        Any chart, e.g. from :mod:`meshlab.charts`.
    path : str or os.PathLike
        Where to write; the directory must exist. A failed render leaves any earlier file intact.
    format : {"png", "svg", "html", "json"}, optional
        Default: from the suffix of ``path``. ``html`` is a standalone page with the Vega
        JavaScript inlined (no CDN); ``json`` is the Vega-Lite spec.
    scale : float
        Pixel density of PNGs (2 gives sharp images on high-DPI screens).

    Returns
    -------
    pathlib.Path
        The path written.
    """
    target = Path(path)
    fmt = (format or target.suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise InvalidArgument(f"format: cannot save {str(target)!r} as {fmt or '(no suffix)'!r}; "
                              f"use a path ending in one of {['.' + f for f in FORMATS]} or pass format=")
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not 0 < scale <= 10:
        raise InvalidArgument(f"scale: must be a number in (0, 10], got {scale!r}")
    if not target.parent.is_dir():
        raise InvalidArgument(f"path: the directory {str(target.parent)!r} does not exist")
    spec = _spec(chart)
    import vl_convert

    payload: bytes
    try:
        if fmt == "png":
            payload = vl_convert.vegalite_to_png(spec, vl_version=_vl_version(), scale=float(scale))
        elif fmt == "svg":
            payload = vl_convert.vegalite_to_svg(spec, vl_version=_vl_version()).encode()
        elif fmt == "html":
            payload = to_html(chart).encode()
        else:
            payload = json.dumps(spec, indent=1).encode()
    except ValueError as exc:  # vl-convert reports a spec it cannot render as ValueError
        first = str(exc).strip().splitlines()
        detail = " ".join(first[:2]) if first else type(exc).__name__
        raise InvalidArgument(f"chart: vl-convert could not render it as {fmt}: {detail}") from exc
    from .._files import atomic_write

    with atomic_write(target, "wb") as handle:
        handle.write(payload)
    return target

