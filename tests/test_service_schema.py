"""schemathesis against the OpenAPI schema (tiny models): no 5xx, every response as documented, from the
single-process service and from the same app on Ray Serve (conftest's ``ray_service``)."""

import pytest
import schemathesis
from schemathesis.specs.openapi.checks import positive_data_acceptance
from hypothesis import HealthCheck, settings
from test_service import _pmg

from helpers import tiny_pipeline
from pmg.service import ServiceConfig, create_app

app = create_app(_pmg(tiny_pipeline(0)), ServiceConfig(timeout_s=30, queue_size=64))
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.fixture(scope="module", autouse=True)
def _running():
    from fastapi.testclient import TestClient

    with TestClient(app):  # runs the start-up (models, worker)
        yield


SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


def _conforms(case) -> None:
    response = case.call()
    # every check (no 5xx, documented status codes and content types, responses match their schemas) but
    # "schema-valid data is accepted": some rules are not in the schema (a movie user needs a target
    # item; an image must decode) and are refused with a documented 422 naming the field
    case.validate_response(response, excluded_checks=[positive_data_acceptance])
    assert response.status_code < 500


@schema.parametrize()
@SETTINGS
def test_api_conforms(case):
    _conforms(case)


def test_api_on_ray_serve_conforms(ray_service):
    """The same checks, each operation in turn, against the app on Ray Serve (2 replicas)."""
    from hypothesis import given

    for operation in schemathesis.openapi.from_url(ray_service.url + "/openapi.json").get_all_operations():
        @SETTINGS
        @given(case=operation.ok().as_strategy())
        def conforms(case):
            _conforms(case)

        conforms()
