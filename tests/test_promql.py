from __future__ import annotations

import pytest

from meshlab.errors import InvalidArgument
from meshlab.prometheus.promql import NotEqual, NotRegex, OneOf, Regex, by, quote, re_escape, selector

from . import testdata
from .test_source import T0


def test_selector_forms():
    assert selector("up") == "up"
    assert selector("up", job="a", instance=None) == 'up{job="a"}'
    assert selector(None, {"class": "x"}, job=NotEqual("")) == '{class="x",job!=""}'
    assert selector("x", code=Regex("5.."), path=NotRegex("/health.*")) == 'x{code=~"5..",path!~"/health.*"}'
    assert selector("x", ns=OneOf(["a.b", "c|d"])) == r'x{ns=~"a\\.b|c\\|d"}'


@pytest.mark.parametrize(("value", "literal"), [
    ('say "hi"', r'"say \"hi\""'), ("back\\slash", r'"back\\slash"'), ("new\nline", r'"new\nline"'),
    ("tab\t", r'"tab\t"'), ("bell\x07", r'"bell\x07"'), ("ünï 😀", '"ünï 😀"'),
])
def test_quote(value, literal):
    assert quote(value) == literal


def test_re_escape_is_go_quotemeta():
    assert re_escape(r"a.b*c+d?e(f)g|h[i]j{k}l^m$n\o") == r"a\.b\*c\+d\?e\(f\)g\|h\[i\]j\{k\}l\^m\$n\\o"
    assert re_escape("plain-text_ok /:") == "plain-text_ok /:"


@pytest.mark.parametrize(("call", "message"), [
    (lambda: selector("bad-name"), "not a valid Prometheus metric name"),
    (lambda: selector("up", **{"bad-label": "x"}), "not a valid Prometheus label name"),
    (lambda: selector("up", job=3), "must be a str"),
    (lambda: selector(), "needs a metric name or at least one label matcher"),
    (lambda: selector(None, job=None), "needs a metric name"),
    (lambda: selector("up", {"job": "a"}, job="b"), "labels given twice"),
    (lambda: OneOf([]), "at least one value"),
    (lambda: by("ok", "not ok"), "not a valid Prometheus label name"),
])
def test_bad_input_is_refused(call, message):
    with pytest.raises(InvalidArgument, match=message):
        call()


@pytest.mark.parametrize("value", testdata.ODD_VALUES)
def test_selector_matches_exactly_one_odd_series_on_a_real_server(server, value):
    frame = server.client.query(selector("test_odd", odd=value), time=T0 + 60)
    assert frame["odd"].tolist() == [value]


def test_one_of_matches_exactly_its_values_on_a_real_server(server):
    chosen = testdata.ODD_VALUES[-4:]  # regex metacharacters, braces and JSON-looking text
    frame = server.client.query(selector("test_odd", odd=OneOf(chosen)), time=T0 + 60)
    assert sorted(frame["odd"].tolist()) == sorted(chosen)
