"""One reader per benchmark source format (pvlib iotools style): each turns a parsed
document or table into rows of the ``benchmark`` frame."""

from __future__ import annotations

__all__ = ["fortio", "istio_csv", "smp", "table"]
