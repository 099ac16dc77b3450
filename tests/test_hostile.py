"""A table of hostile servers: every fault ends in the right data or a clean MeshlabError, in time.

Each case is a script for the local fault server of test_faults.py. A case either
recovers (retries, a same-origin redirect) and must return exactly the served sample, or is
refused with a MeshlabError subclass; a raw exception or a call past its deadline fails.
"""

from __future__ import annotations

import json
import time

import pytest

from meshlab import Prometheus
from meshlab.errors import MeshlabError

from .test_faults import (
    OK,
    ScriptedServer,
    drip_reply,
    json_reply,
    raw_reply,
    redirect_reply,
    slow_reply,
    stall_reply,
)

BODY = json.dumps(OK).encode()
BUSY = {"status": "error", "errorType": "unavailable", "error": "busy"}


def body(text: str, status: int = 200) -> object:
    return raw_reply(status, text.encode(), "application/json")


def vector_point(point: str) -> object:
    return body('{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"b"},"value":'
                + point + "}]}}")


CASES = {
    # recovered: the answer after the fault is the served sample
    "503 then ok": ("recovered", [json_reply(BUSY, 503), json_reply(OK)]),
    "502 html then ok": ("recovered", [raw_reply(502, b"<html>bad gateway</html>", "text/html"), json_reply(OK)]),
    "429 retry-after 0 then ok": ("recovered", [json_reply(BUSY, 429, {"Retry-After": "0"}), json_reply(OK)]),
    "429 retry-after http-date then ok": ("recovered", [
        json_reply(BUSY, 429, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}), json_reply(OK)]),
    "503 retry-after X then ok": ("recovered", [json_reply(BUSY, 503, {"Retry-After": "X"}), json_reply(OK)]),
    "slow once then ok": ("recovered", [slow_reply(1.5), json_reply(OK)]),
    "same-origin 301": ("recovered", [redirect_reply(301, "/p/api/v1/query?query=up"), json_reply(OK)]),
    "same-origin 308": ("recovered", [redirect_reply(308, "/p/api/v1/query?query=up"), json_reply(OK)]),
    # refused: a MeshlabError naming the server and what to do
    "cross-origin 302": ("refused", [redirect_reply(302, "http://127.0.0.2:1/api/v1/query")]),
    "cross-scheme 307": ("refused", [redirect_reply(307, "https://127.0.0.1:1/api/v1/query")]),
    "redirect loop": ("refused", [redirect_reply(302, "/api/v1/query?query=up")]),
    "redirect without location": ("refused", [raw_reply(302, b"", "text/plain")]),
    "429 retry-after 3600": ("refused", [json_reply(BUSY, 429, {"Retry-After": "3600"})]),
    "503 forever": ("refused", [json_reply(BUSY, 503)]),
    "429 html forever": ("refused", [raw_reply(429, b"<html>slow down</html>", "text/html")]),
    "always slow": ("refused", [slow_reply(5)]),
    "drip 1 byte/s": ("refused", [drip_reply(BODY, 1.0)]),
    "stall after 30 bytes": ("refused", [stall_reply(BODY, 30, 5)]),
    "cut off": ("refused", [raw_reply(200, BODY[:30], "application/json", length=len(BODY))]),
    "login page": ("refused", [raw_reply(200, b"<html><form>login</form></html>", "text/html")]),
    "empty 200": ("refused", [raw_reply(200, b"", "application/json")]),
    "not json": ("refused", [body("{nope")]),
    "json array": ("refused", [body("[1,2]")]),
    "no status": ("refused", [body('{"data":{}}')]),
    "error without type": ("refused", [body('{"status":"error"}', 422)]),
    "no resultType": ("refused", [body('{"status":"success","data":{}}')]),
    "data a string": ("refused", [body('{"status":"success","data":"x"}')]),
    "unknown resultType": ("refused", [body('{"status":"success","data":{"resultType":"blob","result":[]}}')]),
    "result an object": ("refused", [body('{"status":"success","data":{"resultType":"vector","result":{}}}')]),
    "series a string": ("refused", [body('{"status":"success","data":{"resultType":"vector","result":["x"]}}')]),
    "labels a list": ("refused", [body('{"status":"success","data":{"resultType":"vector","result":'
                                       '[{"metric":["a"],"value":[1,"1"]}]}}')]),
    "label value a number": ("refused", [body('{"status":"success","data":{"resultType":"vector","result":'
                                              '[{"metric":{"a":1},"value":[1,"1"]}]}}')]),
    "value true": ("refused", [vector_point("[1,true]")]),
    "value a number": ("refused", [vector_point("[1,1]")]),
    "value 1_000": ("refused", [vector_point('[1,"1_000"]')]),
    "three-element point": ("refused", [vector_point('[1,"1","2"]')]),
    "point an object": ("refused", [vector_point('{"t":1}')]),
    "timestamp in ms": ("refused", [vector_point('[1700000000000,"1"]')]),
    "timestamp 1e17": ("refused", [vector_point('[1e17,"1"]')]),
    "timestamp a string": ("refused", [vector_point('["1","1"]')]),
    "native histogram only": ("refused", [body('{"status":"success","data":{"resultType":"vector","result":'
                                               '[{"metric":{},"histogram":[1,{"count":"1"}]}]}}')]),
    "scalar malformed": ("refused", [body('{"status":"success","data":{"resultType":"scalar","result":[1]}}')]),
}


@pytest.fixture(scope="module")
def server():
    fake = ScriptedServer()
    yield fake
    fake.close()


@pytest.mark.parametrize("case", list(CASES))
def test_every_hostile_server_gives_the_data_or_a_clean_error_in_time(server, case):
    expect, script = CASES[case]
    server.script = list(script)
    prom = Prometheus(server.url, timeout=1, retries=1, backoff=0)
    began = time.monotonic()
    try:
        frame = prom.query("up")
    except MeshlabError as exc:
        outcome, detail = "refused", str(exc)
    else:
        outcome, detail = "recovered", frame[["value", "job"]].to_dict("list")
    elapsed = time.monotonic() - began
    assert elapsed < prom.deadline + 1, f"{case}: {elapsed:.1f} s"
    assert outcome == expect, (case, detail)
    if outcome == "recovered":
        assert detail == {"value": [1.0], "job": ["a"]}  # exactly what was served
    else:
        # It says who answered or what in the answer was wrong (a QueryError quotes the query).
        words = (server.url, "rejected the query", "timestamp", "label", "value", "histogram", "response",
                 "result", "point")
        assert any(w in detail for w in words), detail
