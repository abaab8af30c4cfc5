"""The routing HTTP API (API.md, "Categories, departments, FAQ").

Each handler authenticates the caller, checks their role, validates the body with a
schema of ``services.routing.schemas`` and reads or changes the catalogue through
``services.routing.admin``. Errors become problem+json through the table in
``RoutingApiHandler``.
"""

from __future__ import annotations

from typing import Any

from nameko import config
from werkzeug.wrappers import Request, Response

from services.routing import admin, schemas
from services.routing.openapi import openapi_document
from shared.auth import Identity, TokenVerifier
from shared.config import Settings
from shared.idempotency import Responses
from shared.web import (
    ApiHandler,
    HttpProblem,
    ServiceProbes,
    json_response,
    load_query,
    problem,
    read_json,
    readiness,
)


class RoutingApiHandler(ApiHandler):
    errors = (
        (admin.NotFound, 404),
        (admin.Conflict, 409),
        (admin.InvalidChange, 422),
    )

    def response_from_exception(self, exc: BaseException) -> Response:
        if isinstance(exc, admin.InvalidChange):
            return problem(422, str(exc), exc.errors)
        return super().response_from_exception(exc)


http = RoutingApiHandler.decorator


class RoutingBackend:
    """What the routing service's workers get: the database pool, identity and the
    catalogue editor."""

    def __init__(self, pool: Any, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self.pool = pool
        self.verifier = TokenVerifier(self.settings)
        self.catalogue = admin.CatalogueEditor(pool)
        self.responses = Responses(pool, "routing")

    def identity(self, request: Request) -> Identity:
        return self.verifier.verify(request.headers.get("Authorization"))

    def admin(self, request: Request) -> Identity:
        """The caller, who must be an admin (401 without identity, 403 otherwise)."""
        identity = self.identity(request)
        if not identity.is_admin:
            raise HttpProblem(403, "only an admin may change categories and departments")
        return identity

    def ready(self) -> dict[str, str]:
        checks = readiness(self.pool, config.get("AMQP_URI") or self.settings.amqp_uri)
        return checks


def _language(request: Request) -> str:
    """French unless the caller prefers English (``Accept-Language``)."""
    return request.accept_languages.best_match(admin.LANGUAGES, default="fr")


class RoutingHttp(ServiceProbes):
    """HTTP entrypoints of the routing service (mixed into ``RoutingService``; their
    names must not clash with its other methods)."""

    backend: RoutingBackend

    openapi_document = staticmethod(openapi_document)

    # -- categories and FAQ

    @http("GET", "/api/v1/categories")
    def list_categories(self, request: Request) -> Response:
        self.backend.identity(request)
        query = load_query(schemas.CategoryListQuery(), request.args.to_dict())
        tree = admin.category_tree(self.backend.catalogue.read(), _language(request), query["q"])
        return json_response(tree, headers={"Vary": "Accept-Language"})

    @http("GET", "/api/v1/categories/<category_id>")
    def get_category(self, request: Request, category_id: str) -> Response:
        self.backend.identity(request)
        category = admin.category_detail(self.backend.catalogue.read(), category_id, _language(request))
        return json_response(category, headers={"Vary": "Accept-Language"})

    @http("POST", "/api/v1/categories")
    def create_category(self, request: Request) -> Response:
        identity = self.backend.admin(request)
        body = read_json(request, schemas.NewCategory())

        def create() -> Response:
            catalogue = self.backend.catalogue.change(lambda c: admin.add_category(c, body))
            return json_response(admin.category_form(catalogue.categories[body["id"]]), 201,
                                 {"Location": f"/api/v1/categories/{body['id']}"})

        return self.backend.responses.run(request, identity.login, "create_category", None, body, create)

    @http("PUT", "/api/v1/categories/<category_id>")
    def update_category(self, request: Request, category_id: str) -> Response:
        identity = self.backend.admin(request)
        body = read_json(request, schemas.CategoryUpdate())

        def update() -> Response:
            catalogue = self.backend.catalogue.change(lambda c: admin.update_category(c, category_id, body))
            return json_response(admin.category_form(catalogue.categories[category_id]))

        return self.backend.responses.run(request, identity.login, "update_category", category_id, body, update)

    @http("DELETE", "/api/v1/categories/<category_id>")
    def delete_category(self, request: Request, category_id: str) -> Response:
        self.backend.admin(request)
        read_json(request, schemas.Empty())  # no body, or an empty JSON object
        self.backend.catalogue.change(lambda c: admin.remove_category(c, category_id),
                                      admin.no_open_tickets(category_id))
        return Response(status=204)

    # -- departments and their managers

    @http("GET", "/api/v1/departments")
    def list_departments(self, request: Request) -> Response:
        identity = self.backend.identity(request)
        load_query(schemas.Empty(), request.args.to_dict())
        catalogue = self.backend.catalogue.read()
        if identity.is_admin:
            departments = list(catalogue.departments.values())
        else:
            departments = admin.managed_by(catalogue, identity.login)
            if not departments:
                raise HttpProblem(403, "only admins and department managers may read departments")
        return json_response([admin.department_view(d) for d in departments])

    @http("GET", "/api/v1/departments/<department_id>")
    def get_department(self, request: Request, department_id: str) -> Response:
        identity = self.backend.identity(request)
        department = self.backend.catalogue.read().departments.get(department_id)
        if department is None:
            raise admin.NotFound(f"no department {department_id!r}")
        if not identity.is_admin and not any(m.user_id == identity.login for m in department.managers):
            raise HttpProblem(403, "only admins and the department's managers may read it")
        return json_response(admin.department_view(department))

    @http("POST", "/api/v1/departments")
    def create_department(self, request: Request) -> Response:
        identity = self.backend.admin(request)
        body = read_json(request, schemas.NewDepartment())

        def create() -> Response:
            catalogue = self.backend.catalogue.change(lambda c: admin.add_department(c, body))
            return json_response(admin.department_view(catalogue.departments[body["id"]]), 201,
                                 {"Location": f"/api/v1/departments/{body['id']}"})

        return self.backend.responses.run(request, identity.login, "create_department", None, body, create)

    @http("PUT", "/api/v1/departments/<department_id>")
    def update_department(self, request: Request, department_id: str) -> Response:
        identity = self.backend.admin(request)
        body = read_json(request, schemas.DepartmentUpdate())

        def update() -> Response:
            catalogue = self.backend.catalogue.change(lambda c: admin.update_department(c, department_id, body))
            return json_response(admin.department_view(catalogue.departments[department_id]))

        return self.backend.responses.run(request, identity.login, "update_department", department_id, body, update)

    @http("PUT", "/api/v1/departments/<department_id>/managers/me/availability")
    def set_my_availability(self, request: Request, department_id: str) -> Response:
        identity = self.backend.identity(request)
        body = read_json(request, schemas.Availability())

        def set_availability() -> Response:
            catalogue = self.backend.catalogue.change(
                lambda c: admin.set_availability(c, department_id, identity.login, body["available"])
            )
            return json_response(admin.department_view(catalogue.departments[department_id]))

        return self.backend.responses.run(request, identity.login, "set_availability", department_id, body,
                                          set_availability)
