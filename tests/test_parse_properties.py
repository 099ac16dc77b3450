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


# -- hostile bodies: both paths must agree on every input -------------------------------------

# Spellings a server (or a broken proxy) might put where a number belongs.
odd_numbers = st.sampled_from([
    "1", "-1", "+1", "1.", ".5", "01", "-0", "1e5", "1E+5", "1.e5", "1_000", " 1", "1 ", "0x10", "NaN", "nan",
    "-NaN", "Inf", "+Inf", "-inf", "Infinity", "INF", "", "-", ".", "1e", "true", "1,2", '1"', "\\u0031", "１",
])
json_scalars = (st.integers(-(10**20), 10**20) | st.floats(allow_nan=False, allow_infinity=False)
                | st.booleans() | st.none() | odd_numbers | st.text(max_size=4))


@st.composite
def hostile_points(draw):
    """A point as JSON text: usually well formed, often not (wrong arity, types, spellings)."""
    shape = draw(st.sampled_from(["ok", "ok", "raw_time", "value", "arity", "any"]))
    t = draw(st.integers(-2_000_000_000_000, 4_000_000_000_000))
    ok_time = go_time(t) if t >= 0 else "-" + go_time(-t)
    if shape == "ok":
        return f'[{ok_time},"{go_float(draw(floats), "repr")}"]'
    if shape == "raw_time":  # a timestamp as any JSON number, or a JSON string
        number = st.sampled_from(["1.7e12", "1e17", "-1e300", "0.5", "1E5", "-0", "1e400", "0.0001", "-1.5e3"])
        return f'[{draw(number | odd_numbers.map(json.dumps))},"1"]'
    if shape == "value":
        return f"[{ok_time},{json.dumps(draw(json_scalars))}]" if draw(st.booleans()) else \
            f'[{ok_time},"{draw(odd_numbers)}"]'
    if shape == "arity":
        return json.dumps(draw(st.lists(st.just("1"), max_size=4)))
    return json.dumps(draw(st.lists(json_scalars, max_size=3)))


@st.composite
def hostile_bodies(draw):
    series = []
    for i in range(draw(st.integers(1, 3))):
        metric = draw(st.sampled_from([f'{{"a":"{i}"}}', f'{{"a":"{i}"}}', '["a"]', '{"a":1}', "null"]))
        points = ",".join(draw(st.lists(hostile_points(), min_size=1, max_size=4)))
        extra = draw(st.sampled_from(["", "", ',"histograms":[[1,{"count":"1"}]]']))
        series.append(f'{{"metric":{metric},"values":[{points}]{extra}}}')
    notes = draw(st.sampled_from(["", ',"warnings":["w"]', ',"warnings":"careful"']))
    return ('{"status":"success","data":{"resultType":"matrix","result":[' + ",".join(series) + "]}"
            + notes + "}").encode()


def _outcome(body: bytes, fast: bool):
    try:
        parsed = parse.parse_response(bytearray(body), fast=fast)
    except parse.ResponseError as exc:  # the only way to refuse; anything else is a raw exception
        return ("refused", type(exc).__name__)
    return ("parsed", parse.frame_from_block(parsed.block), parsed.warnings)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_bodies())
def test_fast_and_exact_paths_agree_on_hostile_bodies(body):
    # Every body is JSON: what a server's encoder writes, however wrong its content.
    fast, exact = _outcome(body, True), _outcome(body, False)
    assert fast[0] == exact[0], (body, fast[0], exact[0])
    if fast[0] == "parsed":
        tm.assert_frame_equal(fast[1], exact[1])
        assert fast[2] == exact[2]


@pytest.mark.parametrize(("point", "message"), [
    ('[1700000000000,"1"]', "milliseconds as seconds"),      # 1.7e12 s: ms sent as seconds
    ('[1e17,"1"]', "outside the years 1677 to 2262"),
    ('[1,true]', "not a number in a string"),
    ('[1,1]', "not a number in a string"),
    ('[1,"1_000"]', "not a number in a string"),
    ('[1," 1"]', "not a number in a string"),
    ('[1,"2","3"]', "not a \\[timestamp"),
    ('["1","2"]', "not a number of unix seconds"),
])
@pytest.mark.parametrize("fast", [True, False])
def test_malformed_points_are_refused_by_both_paths(point, message, fast):
    body = ('{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"b"},"values":['
            + point + ']}]}}').encode()
    with pytest.raises(parse.ResponseError, match=message):
        parse.parse_response(bytearray(body), fast=fast)


@pytest.mark.parametrize("metric", ['["a"]', '"a"', '{"a":1}', "null"])
@pytest.mark.parametrize("kind", ["matrix", "vector"])
def test_labels_that_are_not_an_object_of_strings_are_a_response_error(metric, kind):
    key, points = ("values", '[[1,"2"]]') if kind == "matrix" else ("value", '[1,"2"]')
    body = (f'{{"status":"success","data":{{"resultType":"{kind}","result":[{{"metric":{metric},'
            f'"{key}":{points}}}]}}}}').encode()
    for fast in (True, False):
        with pytest.raises(parse.ResponseError, match="label"):
            parse.parse_response(bytearray(body), fast=fast)


@pytest.mark.parametrize("fast", [True, False])
def test_native_histograms_beside_values_are_refused_not_dropped(fast):
    body = (b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"b"},'
            b'"values":[[1,"2"]],"histograms":[[1,{"count":"3","sum":"4","buckets":[]}]]}]}}')
    with pytest.raises(parse.ResponseError, match="native histograms"):
        parse.parse_response(bytearray(body), fast=fast)


@pytest.mark.parametrize(("notes", "expected"), [
    ('"careful"', ["careful"]), ('["a","b"]', ["a", "b"]), ("[]", []), ("null", []), ('[{"x":1}]', ['{"x":1}']),
])
def test_warnings_given_as_a_string_are_one_warning(notes, expected):
    body = ('{"status":"success","data":{"resultType":"vector","result":[]},"warnings":' + notes
            + ',"infos":' + notes + "}").encode()
    parsed = parse.parse_response(body)
    assert parsed.warnings == expected and parsed.infos == expected
