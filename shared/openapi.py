"""What every service's OpenAPI document starts with: the bearer scheme, its answer
schemas (the problem+json one included), and the health probes; and the pieces their
operations share."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

PROBLEM = {"application/problem+json": {"schema": "Problem"}}
BEARER: list[dict[str, list[str]]] = [{"bearer": []}]


def problems(*codes: int) -> dict[str, Any]:
    """The responses of ``codes``, each with an ``application/problem+json`` body."""
    return {str(c): {"description": "problem", "content": PROBLEM} for c in codes}


def json_content(schema: str | type, many: bool = False) -> dict[str, Any]:
    """An ``application/json`` content of ``schema`` (a component's name or a schema
    class), or of an array of them."""
    ref: Any = {"$ref": f"#/components/schemas/{schema}"} if isinstance(schema, str) else schema
    return {"application/json": {"schema": {"type": "array", "items": ref} if many else ref}}


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
