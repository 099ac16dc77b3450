"""Kubernetes wire types: quantities, Go durations and RFC 3339 times, written and read exactly."""

from __future__ import annotations

import functools
import math
import re
import reprlib
from decimal import ROUND_HALF_EVEN, Context, Decimal, DecimalException
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InvalidArgument
from ..timeutil import to_timedelta

# -- Kubernetes quantities ---------------------------------------------------------------------
#
# kubernetes.utils.quantity would do for parsing, but importing it loads the whole Kubernetes
# client (about half a second), it accepts strings the Go parser rejects ("1K", " 1", "nan"),
# and its format_quantity needs the suffix chosen by the caller rather than writing the
# canonical form. Both directions are a few lines of exact Decimal arithmetic.

_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_SUFFIX_OF_EXPONENT = {exponent: suffix for suffix, exponent in _DECIMAL_SUFFIXES.items()}
# apimachinery's grammar: a signed decimal number, then a binary or decimal SI suffix or an exponent.
_QUANTITY = re.compile(r"([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?[0-9]+|[numkMGTPE])?")
_NANO = Decimal("1e-9")
_EXACT = Context(prec=400)  # enough digits for any float, so no step below rounds by accident


def format_quantity(value: float | int | Decimal) -> str:
    """Write a number as a canonical Kubernetes quantity (the form ``resource.Quantity`` emits).

    The mantissa is an integer and the suffix the largest power of 1000 that keeps it one:
    integers are plain (or ``k``, ``M``...), fractions use ``m``, ``u`` or ``n``. A quantity
    keeps nothing finer than the nano-unit, so a float is first rounded to it (half to even).
    A float is read as the shortest decimal that round-trips (``repr``), so 0.1 is ``100m``.

    Parameters
    ----------
    value : float, int or decimal.Decimal
        A finite number.

    Returns
    -------
    str

    Raises
    ------
    InvalidArgument
        For NaN, infinities and non-numbers: a quantity cannot express them.

    Examples
    --------
    >>> format_quantity(296.875), format_quantity(1008.1), format_quantity(368.0), format_quantity(0)
    ('296875m', '1008100m', '368', '0')
    >>> format_quantity(1500), format_quantity(2000), format_quantity(0.000_002_5)
    ('1500', '2k', '2500n')
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal, np.integer, np.floating)):
        raise InvalidArgument(f"a quantity must be a number, not {value!r} ({type(value).__name__})")
    if isinstance(value, (int, np.integer)):
        return _canonical(Decimal(int(value)))
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise InvalidArgument(f"a Kubernetes quantity cannot express {value}")
        return _canonical(value)
    number = float(value)
    if not math.isfinite(number):
        raise InvalidArgument(f"a Kubernetes quantity cannot express {number}")
    return _format_float(number)


def _format_float(number: float) -> str:
    """:func:`format_quantity` of a finite float, with fast paths for what frames hold."""
    if number.is_integer() and abs(number) < 2**53:  # counts
        return _scaled(int(number), 0)
    if abs(number) < 1e15:  # in nano-units the value is an integer of at most 24 digits
        nanos = Decimal(repr(number)).scaleb(9).to_integral_value(rounding=ROUND_HALF_EVEN)
        return _scaled(int(nanos), -9)
    return _canonical(Decimal(repr(number)))


def _scaled(mantissa: int, exponent: int) -> str:
    """Canonical form of ``mantissa * 10**exponent`` (``exponent`` a multiple of 3, at least -9)."""
    if mantissa == 0:
        return "0"
    while mantissa % 1000 == 0 and exponent < 18:
        mantissa //= 1000
        exponent += 3
    return f"{mantissa}{_SUFFIX_OF_EXPONENT[exponent]}"


def _canonical(value: Decimal) -> str:
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # the value is finite
    if exponent < -9:
        value = value.quantize(_NANO, rounding=ROUND_HALF_EVEN, context=_EXACT)
    if value.is_zero():
        return "0"
    sign, digits, exponent = value.normalize(_EXACT).as_tuple()
    mantissa = int("".join(map(str, digits)))
    assert isinstance(exponent, int)
    while exponent % 3:
        mantissa *= 10
        exponent -= 1
    if exponent > 18:  # past exa there is no suffix: a longer mantissa in E
        mantissa, exponent = mantissa * 10 ** (exponent - 18), 18
    return f"{'-' if sign else ''}{mantissa}{_SUFFIX_OF_EXPONENT[exponent]}"


def parse_quantity(text: str) -> Decimal:
    """Read a Kubernetes quantity string exactly.

    Accepts everything apimachinery's ``ParseQuantity`` does: an optional sign, a decimal
    number (``1``, ``1.5``, ``.5``, ``1.``), then a decimal SI suffix (``n u m k M G T P E``),
    a binary one (``Ki Mi Gi Ti Pi Ei``) or an exponent (``e3``, ``E-6``). The value is
    exact: Kubernetes would round anything finer than ``1n`` up to it.

    Parameters
    ----------
    text : str

    Returns
    -------
    decimal.Decimal

    Raises
    ------
    InvalidArgument
        If ``text`` is not a quantity.

    Examples
    --------
    >>> parse_quantity("296875m"), parse_quantity("1Ki"), parse_quantity("1.5e3")
    (Decimal('296.875'), Decimal('1024'), Decimal('1.5E+3'))
    """
    if not isinstance(text, str):
        raise InvalidArgument(f"a quantity must be a string such as '296875m', not {text!r}")
    match = _QUANTITY.fullmatch(text)
    if match is None:
        raise InvalidArgument(
            f"{text!r} is not a Kubernetes quantity: a number with an optional suffix "
            "(n, u, m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei) or exponent (e3), such as '296875m'"
        )
    number, suffix = Decimal(match[1]), match[2] or ""
    context = _EXACT if len(text) < 300 else Context(prec=len(text) + 40)
    try:
        if suffix in _BINARY_SUFFIXES:
            return context.multiply(number, Decimal(2 ** _BINARY_SUFFIXES[suffix]))
        if suffix[:1] in ("e", "E") and len(suffix) > 1:
            return number.scaleb(int(suffix[1:]), context)
        return number.scaleb(_DECIMAL_SUFFIXES[suffix], context)
    except DecimalException:
        raise InvalidArgument(f"the quantity {text!r} is out of range") from None


_SHOW = reprlib.Repr()
_SHOW.maxstring = _SHOW.maxother = 80
_SHOW.maxlevel = 3


def _show(value: Any) -> str:
    """A short repr for messages: input can be huge or nested thousands deep."""
    return _SHOW.repr(value)


# -- Go durations and RFC 3339 times -----------------------------------------------------------

_GO_UNITS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9,
             "h": 3600 * 10**9}
_GO_TERM = re.compile(r"([0-9]*(?:\.[0-9]*)?)([^0-9.]+)")
_MAX_NANOS = 2**63 - 1
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})")


def format_go_duration(nanos: int) -> str:
    """What Go's ``time.Duration.String`` writes: ``30s``, ``1m0s``, ``1h0m0s``, ``1.5s``, ``500ms``."""
    if nanos == 0:
        return "0s"
    sign, u = ("-" if nanos < 0 else ""), abs(nanos)

    def fraction(value: int, scale: int) -> str:
        whole, rest = divmod(value, scale)
        digits = len(str(scale)) - 1
        return f"{whole}" + (f".{rest:0{digits}d}".rstrip("0") if rest else "")

    if u < 10**3:
        return f"{sign}{u}ns"
    if u < 10**6:
        return f"{sign}{fraction(u, 10**3)}µs"
    if u < 10**9:
        return f"{sign}{fraction(u, 10**6)}ms"
    seconds, nano_part = divmod(u, 10**9)
    text = fraction((seconds % 60) * 10**9 + nano_part, 10**9) + "s"
    minutes = seconds // 60
    if minutes:
        text = f"{minutes % 60}m{text}"
        if minutes // 60:
            text = f"{minutes // 60}h{text}"
    return sign + text


def parse_go_duration(text: str) -> int | None:
    """Nanoseconds of a Go duration (``time.ParseDuration``'s grammar), or None if it is not one."""
    body, sign = text, 1
    if body[:1] in ("+", "-"):
        sign, body = (-1 if body[0] == "-" else 1), body[1:]
    if body == "0":
        return 0
    if not body:
        return None
    total, position = Decimal(0), 0
    while position < len(body):
        term = _GO_TERM.match(body, position)
        if term is None or term[1] in ("", ".") or term[2] not in _GO_UNITS:
            return None
        total += Decimal(term[1]) * _GO_UNITS[term[2]]
        position = term.end()
    return sign * int(total.to_integral_value())


def _read_window(value: Any, where: str) -> pd.Timedelta:
    if not isinstance(value, str):
        raise InvalidArgument(f"{where}.window must be a duration string such as '30s', not {_show(value)}")
    nanos = parse_go_duration(value)
    if nanos is None:
        try:  # not Go's grammar; meshlab's own (Prometheus-style, e.g. '1d') is read too
            nanos = to_timedelta(value, name=f"{where}.window").value
        except InvalidArgument:
            raise InvalidArgument(f"{where}.window {_show(value)} is not a duration such as '30s' or '1m0s'") from None
        except (ValueError, OverflowError):  # pandas' limits: about 292 years
            raise InvalidArgument(f"{where}.window {_show(value)} is out of range: at most 2562047h47m16s") from None
    if nanos <= 0:
        raise InvalidArgument(f"{where}.window must be positive, got {_show(value)}")
    if nanos > _MAX_NANOS:  # Go's time.Duration and pandas both stop at about 292 years
        raise InvalidArgument(f"{where}.window {_show(value)} is out of range: at most 2562047h47m16s")
    return pd.Timedelta(nanos, unit="ns")


def _format_time(ts: pd.Timestamp) -> str:
    """RFC 3339 in UTC, to the second like ``metav1.Time``, with a fraction only when there is one."""
    ts = ts.tz_convert("UTC")
    nanos = ts.value % 10**9
    return ts.strftime("%Y-%m-%dT%H:%M:%S") + (f".{nanos:09d}".rstrip("0") if nanos else "") + "Z"


def _read_time(value: Any, where: str) -> pd.Timestamp:
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise InvalidArgument(f"{where}.timestamp must be an RFC 3339 time such as '2019-06-17T14:26:22Z', "
                              f"not {_show(value)}")
    try:
        return _parse_rfc3339(value)
    except (ValueError, OverflowError) as error:  # 2024-02-30, hour 25, or past pandas' 1677-2262
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise InvalidArgument(f"{where}.timestamp {value!r} is not a valid time ({reason})") from None


@functools.lru_cache(maxsize=4096)  # a list repeats each step's timestamp once per workload
def _parse_rfc3339(text: str) -> pd.Timestamp:
    return pd.Timestamp(text).tz_convert("UTC").as_unit("ns")
