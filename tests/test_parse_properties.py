"""Property-based tests of the response parser against the slow reference conversion.

Random label sets and values (NaN, infinities, empty strings, any unicode) are encoded
the way Prometheus (Go's 'f' float format, HTML-safe escapes) or VictoriaMetrics
(exponent floats) would, then decoded by both of meshlab's paths.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal

import numpy as np
import pandas.testing as tm
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshlab.prometheus import parse

from .reference import reference_frame

label_names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,8}", fullmatch=True).filter(lambda n: not n.startswith("__"))
label_values = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)  # "" included
label_sets = st.dictionaries(label_names, label_values, max_size=4)
floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, -0.0, 5e-324, 1e21, 1e-7])


def go_float(value: float, style: str) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if style == "positional":  # Prometheus: strconv.FormatFloat(v, 'f', -1, 64)
        return np.format_float_positional(value, unique=True, trim="-")
    return repr(value)  # VictoriaMetrics-like: shortest, with exponents


def go_time(ms: int) -> str:
    whole, frac = divmod(ms, 1000)
    return f"{whole}.{frac:03d}".rstrip("0").rstrip(".")


@st.composite
def matrices(draw):
    n_series = draw(st.integers(0, 5))
    style = draw(st.sampled_from(["positional", "repr"]))
    result = []
    seen = set()
    for _ in range(n_series):
        labels = draw(label_sets)
        if draw(st.booleans()):
            labels["__name__"] = draw(st.from_regex(r"[a-z_:][a-z0-9_:]{0,10}", fullmatch=True))
        key = tuple(sorted(labels.items()))
        if key in seen:
            continue
        seen.add(key)
        times = sorted(draw(st.sets(st.integers(0, 4_000_000_000_000), min_size=1, max_size=6)))
        points = [[go_time(t), go_float(draw(floats), style)] for t in times]
        result.append({"metric": labels, "values": points})
    warnings = draw(st.lists(label_values, max_size=2))
    return result, warnings, draw(st.booleans())


def encode(result, warnings, ascii_only: bool) -> bytes:
    # Timestamps are JSON numbers and values JSON strings, exactly as in the real API.
    series = []
    for s in result:
        points = ",".join(f'[{t},"{v}"]' for t, v in s["values"])
        labels = json.dumps(s["metric"], ensure_ascii=ascii_only, separators=(",", ":"))
        series.append('{"metric":' + labels + ',"values":[' + points + "]}")
    body = '{"status":"success","data":{"resultType":"matrix","result":[' + ",".join(series) + "]}"
    if warnings:
        body += ',"warnings":' + json.dumps(warnings, ensure_ascii=ascii_only)
    return (body + "}").encode()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(matrices())
def test_both_paths_equal_the_reference(case):
    result, warnings, ascii_only = case
    body = encode(result, warnings, ascii_only)
    expected = reference_frame(json.loads(body, parse_float=Decimal))
    for fast in (True, False):
        parsed = parse.parse_response(bytearray(body), fast=fast)
        assert parsed.result_type == "matrix" and parsed.warnings == [str(w) for w in warnings]
        frame = parse.frame_from_block(parsed.block)
        tm.assert_frame_equal(frame, expected, check_categorical=True)
        # -0.0 and 0.0 compare equal; the sign must survive too.
        signs = np.signbit(frame["value"].to_numpy()), np.signbit(expected["value"].to_numpy())
        np.testing.assert_array_equal(*signs)


@settings(max_examples=100, deadline=None)
@given(matrices())
def test_vectors_equal_the_reference(case):
    result, _, ascii_only = case
    series = [{"metric": s["metric"], "value": s["values"][0]} for s in result]
    body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": s["metric"], "value": [float(Decimal(s["value"][0])), s["value"][1]]} for s in series
    ]}}, ensure_ascii=ascii_only).encode()
    expected = reference_frame(json.loads(body, parse_float=Decimal))
    tm.assert_frame_equal(parse.frame_from_block(parse.parse_response(body).block), expected)


@pytest.mark.parametrize("body", [
    # keys in another order, spaces, pretty-printing: the fast path must step aside
    b'{"status":"success","data":{"resultType":"matrix","result":[{"values":[[1,"2"]],"metric":{"a":"b"}}]}}',
    b'{"status": "success", "data": {"resultType": "matrix", '
    b'"result": [{"metric": {"a": "b"}, "values": [[1, "2"]]}]}}',
    b'{\n "status":"success",\n "data":{"resultType":"matrix","result":[\n'
    b'  {"metric":{"a":"b"},"values":[[1,"2"]]}\n ]}\n}',
])
def test_unusual_layouts_fall_back_to_the_exact_decoder(body):
    expected = reference_frame(json.loads(body, parse_float=Decimal))
    tm.assert_frame_equal(parse.frame_from_block(parse.parse_response(bytearray(body), fast=True).block), expected)
