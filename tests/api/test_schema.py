"""Schemathesis over /openapi.json, authenticated as admin, every route: no 5xx and no
response that violates the documented schema, status codes or content types."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.specs.openapi.checks import positive_data_acceptance

from cascade.api.app import create_app
from cascade.services import Services, initialize
from tests.conftest import ADMIN_PASSWORD, make_settings


def _app() -> object:
    import tempfile

    data_dir = Path(tempfile.mkdtemp(prefix="cascade-schema-"))
    services = Services(make_settings(data_dir))
    initialize(services, ADMIN_PASSWORD)
    return create_app(services)


APP = _app()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module")
def admin_token() -> Iterator[str]:
    from fastapi.testclient import TestClient

    from tests.conftest import login

    with TestClient(APP) as client:  # type: ignore[arg-type]
        yield login(client, "admin", ADMIN_PASSWORD, "admin")


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case: Case, admin_token: str) -> None:
    # Schema-valid requests may still break business rules (duplicate names, wrong password),
    # which are 4xx by design; every other check runs, negative data rejection included.
    case.call_and_validate(
        headers={"X-Auth-Token": admin_token}, excluded_checks=[positive_data_acceptance]
    )
