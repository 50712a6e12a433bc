"""Fuzz the API from its own OpenAPI schema (schemathesis, in-process ASGI): never a 5xx, and every
response is documented (status code, content type, body schema)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service.app import create_app
from service.settings import Settings

_STATE_DIR = tempfile.TemporaryDirectory(prefix="moralscope-fuzz-")  # removed when the session ends
_STATE = Path(_STATE_DIR.name)
APP = create_app(
    Settings(store_path=_STATE / "jobs.sqlite3", results_uri=str(_STATE / "results"), download=False),
    run_jobs=False,  # jobs are stored, never run: the fuzzer submits hundreds of specs
)
SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", APP)


@SCHEMA.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_never_fails_and_matches_its_schema(case: schemathesis.Case) -> None:
    case.call_and_validate(
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    )
