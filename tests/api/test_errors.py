"""node/errors.py: every error becomes a wire error that any JSON encoder writes."""

from __future__ import annotations

import orjson

from api.rpc import encode_message
from auction.errors import InvalidParams
from node import errors as wire
from node.metrics import Metrics


class _Opaque:
    def __str__(self) -> str:
        return "opaque"


HOSTILE = {"chain_id": 2**100, "low": -(2**64), "edge": 2**64 - 1, "raw": b"\x01\xff",
           "thing": _Opaque(), "nested": [2**70, {"gas": 2**200}, (1, 2)], "code": "spoofed"}


def test_error_data_of_any_value_serialises_in_json_rpc_and_http():
    exc = InvalidParams("bad", **HOSTILE)
    rpc = orjson.loads(orjson.dumps(wire.jsonrpc_error(1, exc)))
    data = rpc["error"]["data"]
    assert data["code"] == "invalid_params"  # data never overrides the stable code
    assert data["chain_id"] == str(2**100) and data["low"] == str(-(2**64))
    assert data["edge"] == 2**64 - 1  # still a JSON number where every encoder can write it
    assert data["raw"] == "0x01ff" and data["thing"] == "opaque"
    assert data["nested"] == [str(2**70), {"gas": str(2**200)}, [1, 2]]
    http = orjson.loads(orjson.dumps(wire.http_error_body(exc)))
    assert http["code"] == "invalid_params" and http["data"]["chain_id"] == str(2**100)


def test_a_message_that_cannot_be_encoded_becomes_an_internal_error_with_its_id():
    metrics = Metrics()
    out = orjson.loads(encode_message(metrics, {"jsonrpc": "2.0", "id": 4, "result": 2**100}))
    assert out == wire.internal_jsonrpc_error(4)
    out = orjson.loads(encode_message(metrics, [{"result": object()}]))
    assert out == wire.internal_jsonrpc_error(None)
    assert metrics.system_faults.labels("encode")._value.get() == 2
