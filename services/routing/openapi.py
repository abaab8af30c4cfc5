"""The OpenAPI document of the routing HTTP API, generated from the same marshmallow
schemas that validate requests."""

from __future__ import annotations

from functools import cache
from typing import Any

from services.routing import schemas
from shared.openapi import BEARER, base_spec, problems
from shared.openapi import json_content as _json

CATEGORY_ID = {"name": "category_id", "in": "path", "required": True,
               "schema": {"type": "string", "minLength": 1, "maxLength": 100}}
DEPARTMENT_ID = {"name": "department_id", "in": "path", "required": True,
                 "schema": {"type": "string", "minLength": 1, "maxLength": 100}}
ACCEPT_LANGUAGE = {"name": "Accept-Language", "in": "header", "required": False, "schema": {"type": "string"},
                   "description": "labels in English with en (French where there is no English text)"}


def _errors(*codes: int) -> dict[str, Any]:
    return problems(401, *codes)


def _body_errors(*codes: int) -> dict[str, Any]:
    return _errors(400, 413, 415, 422, *codes)


def _answer(status: int, description: str, schema: str, many: bool = False) -> dict[str, Any]:
    return {str(status): {"description": description, "content": _json(schema, many)}}


@cache
def openapi_document() -> dict[str, Any]:
    spec = base_spec(
        "routing",
        "Categories, their FAQ, departments and their managers."
                             " Errors are application/problem+json (RFC 9457).",
        (schemas.CategoryOut, schemas.CategoryDetail, schemas.CategoryForm, schemas.DepartmentOut,
                   schemas.Problem),
    )
    spec.path("/api/v1/categories", operations={
        "get": {
            "summary": "the category tree, with each category's FAQ",
            "description": "With q, only the categories whose label holds its words, and the path to each.",
            "security": BEARER,
            "parameters": [{"in": "query", "schema": schemas.CategoryListQuery}, ACCEPT_LANGUAGE],
            "responses": {**_answer(200, "the top-level categories", "CategoryOut", many=True), **_errors(422)},
        },
        "post": {
            "summary": "admin: add a category",
            "security": BEARER,
            "requestBody": {"required": True, "content": _json(schemas.NewCategory)},
            "responses": {**_answer(201, "the category, in both languages", "CategoryForm"),
                          **_body_errors(403, 409)},
        },
    })
    spec.path("/api/v1/categories/{category_id}", operations={
        "get": {
            "summary": "one category with its FAQ and sub-categories",
            "security": BEARER,
            "parameters": [CATEGORY_ID, ACCEPT_LANGUAGE],
            "responses": {**_answer(200, "the category", "CategoryDetail"), **_errors(400, 404)},
        },
        "put": {
            "summary": "admin: change a category",
            "security": BEARER,
            "parameters": [CATEGORY_ID],
            "requestBody": {"required": True, "content": _json(schemas.CategoryUpdate)},
            "responses": {**_answer(200, "the category, in both languages", "CategoryForm"),
                          **_body_errors(403, 404, 409)},
        },
        "delete": {
            "summary": "admin: delete a category without sub-categories",
            "security": BEARER,
            "parameters": [CATEGORY_ID],
            "responses": {"204": {"description": "deleted"}, **_body_errors(403, 404, 409)},
        },
    })
    spec.path("/api/v1/departments", operations={
        "get": {
            "summary": "admin: every department; a manager: the departments they manage",
            "security": BEARER,
            "responses": {**_answer(200, "departments", "DepartmentOut", many=True), **_errors(403, 422)},
        },
        "post": {
            "summary": "admin: add a department",
            "security": BEARER,
            "requestBody": {"required": True, "content": _json(schemas.NewDepartment)},
            "responses": {**_answer(201, "the department", "DepartmentOut"), **_body_errors(403, 409)},
        },
    })
    spec.path("/api/v1/departments/{department_id}", operations={
        "get": {
            "summary": "one department (admins, and its managers)",
            "security": BEARER,
            "parameters": [DEPARTMENT_ID],
            "responses": {**_answer(200, "the department", "DepartmentOut"), **_errors(400, 403, 404)},
        },
        "put": {
            "summary": "admin: change a department, its policy and its managers",
            "security": BEARER,
            "parameters": [DEPARTMENT_ID],
            "requestBody": {"required": True, "content": _json(schemas.DepartmentUpdate)},
            "responses": {**_answer(200, "the department", "DepartmentOut"), **_body_errors(403, 404, 409)},
        },
    })
    spec.path("/api/v1/departments/{department_id}/managers/me/availability", operations={
        "put": {
            "summary": "a manager: available for new tickets of this department, or not",
            "description": "In every establishment team of the department the caller belongs to.",
            "security": BEARER,
            "parameters": [DEPARTMENT_ID],
            "requestBody": {"required": True, "content": _json(schemas.Availability)},
            "responses": {**_answer(200, "the department", "DepartmentOut"), **_body_errors(404, 409)},
        },
    })
    return spec.to_dict()
