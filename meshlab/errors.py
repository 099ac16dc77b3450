"""Exceptions and warnings raised by meshlab.

Every error meshlab raises derives from :class:`MeshlabError`, so a notebook can catch
them all at once. Errors about bad arguments also derive from :class:`ValueError`.
"""

from __future__ import annotations

__all__ = [
    "BinaryNotFoundError",
    "InvalidArgument",
    "MeshlabError",
    "MeshlabWarning",
    "PluginWarning",
    "PrometheusError",
    "PrometheusUnavailable",
    "PrometheusWarning",
    "QueryError",
    "ResponseError",
    "SchemaError",
    "ShortWindowWarning",
    "SourcesFailed",
    "SourcesFailedWarning",
]


class MeshlabError(Exception):
    """Base class of every error meshlab raises."""


class InvalidArgument(MeshlabError, ValueError):
    """An argument has the wrong type or form (a time, a duration, a label name...)."""


class SchemaError(MeshlabError, ValueError):
    """A frame does not follow the tidy frame contract in :mod:`meshlab.schema`."""


class PrometheusError(MeshlabError):
    """Talking to a Prometheus-compatible server failed."""


class PrometheusUnavailable(PrometheusError):
    """The server could not be reached, or did not answer in time, after retries."""


class ResponseError(PrometheusError):
    """The server answered with something that is not a Prometheus API response."""


class QueryError(PrometheusError):
    """The server rejected or failed a query.

    Attributes
    ----------
    error_type : str
        Prometheus' ``errorType`` (``bad_data``, ``execution``, ``timeout``...).
    message : str
        The server's own error message.
    query : str
        The PromQL that failed.
    status : int or None
        The HTTP status code of the response.
    """

    def __init__(self, error_type: str, message: str, query: str, status: int | None = None):
        self.error_type = error_type
        self.message = message
        self.query = query
        self.status = status
        super().__init__(f"Prometheus rejected the query ({error_type}): {message}\n  query: {query}")

    def __reduce__(self) -> tuple[type, tuple[str, str, str, int | None]]:
        return (type(self), (self.error_type, self.message, self.query, self.status))


class BinaryNotFoundError(MeshlabError, FileNotFoundError):
    """A server binary (``prometheus``, ``promtool``, ``victoria-metrics``) is not on PATH."""


class PrometheusWarning(UserWarning):
    """A warning or info annotation returned by the server with a query result."""


class SourcesFailed(MeshlabError):
    """Some (or all) of several sources failed; ``frame`` holds what the others returned.

    Attributes
    ----------
    frame : pandas.DataFrame or None
        The rows of the sources that succeeded (None when none did).
    errors : dict of str to str
        Each failed source's name and what went wrong.
    """

    def __init__(self, errors: dict[str, str], frame: object = None):
        self.errors = dict(errors)
        self.frame = frame
        listed = "; ".join(f"{name}: {message}" for name, message in self.errors.items())
        super().__init__(f"{len(self.errors)} source(s) failed: {listed}")

    def __reduce__(self) -> tuple[type, tuple[dict[str, str], object]]:
        return (type(self), (self.errors, self.frame))


class SourcesFailedWarning(UserWarning):
    """Some sources failed and the frame holds only the others' rows (see ``frame.attrs``)."""


class MeshlabWarning(UserWarning):
    """Base class of meshlab's own warnings about a result that may mislead."""


class ShortWindowWarning(MeshlabWarning):
    """A ``window`` shorter than two scrape intervals: ``rate()`` finds too few samples and rows go missing."""


class PluginWarning(UserWarning):
    """A plugin (an entry point) was skipped: it failed to load, or its name is taken."""
