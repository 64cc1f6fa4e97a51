"""Schemathesis against /openapi.json, in process, over every HTTP surface: JSON-RPC, blocks,
committee evidence, data API, dashboard, health and metrics of the engine, and the signer's
routes. Generated valid and invalid requests must never get a 5xx, must be answered as each
operation's schema says, and every refusal has the stable-code shape (the websocket is not HTTP
and is fuzzed elsewhere)."""

from __future__ import annotations

import tempfile
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from api.data import MAX_EXPORT_SPAN, MAX_STATS_SPAN
from committee import threshold
from committee.member import Member
from committee.protection import ProtectionStore
from committee.signer import compute_member_config, create_signer_app
from node.settings import Settings
from tests.data.slots import app_with_history

# Loaded at collection (schemathesis' lazy fixture loader does not run under pytest 9).
engine_schema = schemathesis.openapi.from_asgi("/openapi.json", app_with_history())


def _signer_app():  # type: ignore[no-untyped-def]
    committee, shares = threshold.deal(4, 3, bytes(range(32)))
    folder = Path(tempfile.mkdtemp(prefix="blockspace-schema-"))
    member = Member(shares[0], compute_member_config(Settings(), committee, 1),
                    ProtectionStore(folder / "member-1.protection.sqlite3"))
    return create_signer_app(member)


signer_schema = schemathesis.openapi.from_asgi("/openapi.json", _signer_app())

RPC_PATHS = ("/", "/rollup/{chain_id}")
STABLE_SHAPE = {"code", "message", "data"}


def _int(value: object) -> int | None:
    # As the app reads it: "4000" and "4000.0" are both 4000
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return int(number) if number.is_finite() and number == number.to_integral_value() else None


def _breaks_a_cross_parameter_rule(path: str, query: dict[str, object]) -> bool:
    """The rules JSON Schema cannot state (each documented on its operation): a reversed or
    too-wide slot range, and a bids query without any filter."""
    lo, hi = _int(query.get("from_slot")), _int(query.get("to_slot"))
    if lo is not None and hi is not None:
        if lo > hi:
            return True
        span = MAX_STATS_SPAN if path.endswith("/stats") else MAX_EXPORT_SPAN
        if (path.endswith("/stats") or "/export/" in path) and hi - lo + 1 > span:
            return True
    filters = ("rollup", "slot", "searcher", "outcome")
    return path == "/v1/data/bids" and all(query.get(k) is None for k in filters)


@schemathesis.check
def valid_parameters_accepted(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """positive_data_acceptance, minus the cross-parameter rules: a schema-valid request is never
    refused with a 400 unless it breaks one of them."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 400:
        return None
    if case.operation.path in ("/v1/sign", "/v1/stream", "/v1/release"):  # any bytes fit
        return None
    if case.operation.path == "/v1/evidence":  # any body fits the schema; few are evidence
        return None
    if _breaks_a_cross_parameter_rule(case.operation.path, dict(case.query or {})):
        return None
    raise AssertionError(f"schema-valid request refused: {response.text}")


@schemathesis.check
def refusals_have_the_stable_shape(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """Every 4xx is {"code", "message", "data"?} with a stable code (FastAPI's 422 never shows),
    except JSON-RPC's 413, a JSON-RPC error object like its other errors."""
    if not 400 <= response.status_code < 500:
        return None
    if response.status_code in (405, 499):  # a method the route lacks; a coordinator gone
        return None
    body = response.json()
    if case.operation.path in RPC_PATHS and response.status_code == 413:
        assert body["error"]["data"]["code"] == "request_too_large", body
        return None
    assert isinstance(body, dict) and {"code", "message"} <= set(body) <= STABLE_SHAPE, body
    assert isinstance(body["code"], str) and body["code"].islower(), body
    return None


@schemathesis.check
def json_rpc_errors_carry_a_stable_code(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """JSON-RPC answers (HTTP 200) name a stable code in every error, never internal_error."""
    if case.operation.path not in RPC_PATHS or response.status_code != 200:
        return None
    body = response.json()
    for answer in body if isinstance(body, list) else [body]:
        if "error" in answer:
            assert answer["error"]["data"]["code"] != "internal_error", answer
    return None


# JSON-RPC answers a request the schema does not allow (a wrong method, jsonrpc "1.0", …) with a
# JSON-RPC error and HTTP 200, as Flashbots clients expect (docs/protocol.md): no 4xx there.
_RPC_EXCLUDED = [schemathesis.checks.positive_data_acceptance,
                 schemathesis.checks.negative_data_rejection]
_EXCLUDED = [schemathesis.checks.positive_data_acceptance]
_CHECKS = [valid_parameters_accepted, refusals_have_the_stable_shape,
           json_rpc_errors_carry_a_stable_code]
_SETTINGS = dict(deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def _check(case: schemathesis.Case) -> None:
    rpc = case.operation.path in RPC_PATHS
    case.call_and_validate(excluded_checks=_RPC_EXCLUDED if rpc else _EXCLUDED,
                           additional_checks=_CHECKS)


@engine_schema.parametrize()
@settings(max_examples=40, **_SETTINGS)  # type: ignore[arg-type]
def test_engine_http_conforms_to_its_schema(case: schemathesis.Case) -> None:
    _check(case)


@signer_schema.parametrize()
@settings(max_examples=40, **_SETTINGS)  # type: ignore[arg-type]
def test_signer_http_conforms_to_its_schema(case: schemathesis.Case) -> None:
    _check(case)


@pytest.mark.slow
@engine_schema.parametrize()
@settings(max_examples=400, **_SETTINGS)  # type: ignore[arg-type]
def test_engine_http_conforms_to_its_schema_deeply(case: schemathesis.Case) -> None:
    _check(case)
