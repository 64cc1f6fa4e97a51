"""Schemathesis against /openapi.json, in process: every data API and dashboard operation, with
generated valid and invalid parameters, must answer without a 5xx and as its schema says."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from api.data import MAX_EXPORT_SPAN, MAX_STATS_SPAN
from tests.data.slots import app_with_history

# Loaded at collection (schemathesis' lazy fixture loader does not run under pytest 9).
schema = schemathesis.openapi.from_asgi("/openapi.json", app_with_history()).include(
    path_regex=r"^/(v1/data|dashboard)"
)


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
    if _breaks_a_cross_parameter_rule(case.operation.path, dict(case.query or {})):
        return None
    raise AssertionError(f"schema-valid request refused: {response.text}")


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_data_api_conforms_to_its_schema(case: schemathesis.Case) -> None:
    case.call_and_validate(
        excluded_checks=[schemathesis.checks.positive_data_acceptance],
        additional_checks=[valid_parameters_accepted],
    )
