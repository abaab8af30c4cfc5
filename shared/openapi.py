"""What every service's OpenAPI document starts with: the bearer scheme, its answer
schemas (the problem+json one included), and the health probes."""

from __future__ import annotations

from collections.abc import Iterable

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin


def base_spec(title: str, description: str, schemas: Iterable[type],
              ready: str = "database and broker reachable") -> APISpec:
    """An OpenAPI 3.0.3 document for ``Guichet — <title>`` with ``schemas`` as named
    components, the ``bearer`` JWT scheme, and ``/healthz`` and ``/readyz``."""
    spec = APISpec(
        title=f"Guichet — {title}",
        version="1.0.0",
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": description},
    )
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    for schema in schemas:
        spec.components.schema(schema.__name__, schema=schema)
    spec.path("/healthz", operations={"get": {"summary": "alive", "responses": {"200": {"description": "ok"}}}})
    spec.path("/readyz", operations={"get": {"summary": ready, "responses": {
        "200": {"description": "ready"}, "503": {"description": "not ready"}}}})
    return spec
