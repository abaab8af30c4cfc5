"""What the routing HTTP API accepts and answers (``API.md``, "Categories, departments,
FAQ"), as marshmallow schemas: they validate requests and generate the OpenAPI document.

Every text has a length limit; ids a client creates are short slugs (no ``:``, which
separates a department from an establishment in a team id).
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from services.routing.catalogue import POLICIES

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
NEW_ID = [
    validate.Length(1, 100),
    validate.Regexp(ID_PATTERN, error="letters, digits, '-', '_' and '.' only, starting with a letter or digit"),
]
REFERENCE = validate.Length(1, 100)
LABEL = validate.Length(1, 200)
QUESTION = validate.Length(1, 500)
ANSWER = validate.Length(1, 20_000)
NO_SPACE = validate.Regexp(r"^\S+$", error="may not contain spaces")
LOGIN = [validate.Length(1, 200), NO_SPACE]
ESTABLISHMENT = [validate.Length(1, 20), NO_SPACE]
POLICY = validate.OneOf(POLICIES)
DAYS = validate.Range(1, 3650)
MAX_FAQ = validate.Length(max=100)
MAX_MANAGERS = validate.Length(max=2000)


class StrictBool(fields.Bool):
    """A JSON true or false; not "yes", "true" or 1."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


def _boolean(**kwargs: Any) -> fields.Bool:
    return StrictBool(**kwargs)


class Translated(fields.Field):
    """A text in French, optionally in English too: ``"texte"`` or ``{"fr": "texte",
    "en": "text"}``; loads as ``{"fr": str, "en": str | None}`` (trimmed)."""

    def __init__(self, length: validate.Length, **kwargs: Any) -> None:
        self.length = length
        text = {"type": "string", "minLength": length.min, "maxLength": length.max}
        one_of = [
            {**text, "description": "in French"},
            {
                "type": "object",
                "properties": {"fr": text, "en": {**text, "nullable": True}},
                "required": ["fr"],
                "additionalProperties": False,
            },
        ]
        super().__init__(metadata={"oneOf": one_of, **kwargs.pop("metadata", {})}, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict[str, str | None]:
        if isinstance(value, str):
            return {"fr": self._text(value, "fr"), "en": None}
        if not isinstance(value, dict):
            raise ValidationError('must be a text, or an object {"fr": ..., "en": ...}')
        errors: dict[str, list[str]] = {}
        for key in value:
            if key not in ("fr", "en"):
                errors[str(key)] = ["unknown language: only fr and en"]
        texts: dict[str, str | None] = {"fr": None, "en": None}
        for language in ("fr", "en"):
            raw = value.get(language)
            if raw is None:
                if language == "fr":
                    errors["fr"] = ["the French text is required"]
                continue
            try:
                texts[language] = self._text(raw, language)
            except ValidationError as exc:
                errors[language] = exc.messages if isinstance(exc.messages, list) else [str(exc.messages)]
        if errors:
            raise ValidationError(errors)
        return texts

    def _text(self, raw: Any, language: str) -> str:
        if not isinstance(raw, str):
            raise ValidationError("not a valid text")
        text = raw.strip()
        if not text:
            raise ValidationError("may not be blank")
        self.length(text)
        return text


# -- categories and their FAQ ------------------------------------------------------------


class FaqIn(Schema):
    id = fields.Str(required=True, validate=NEW_ID)
    question = Translated(QUESTION, required=True)
    answer = Translated(ANSWER, required=True)


class CategoryFields(Schema):
    """One category as an admin writes it (``API.md``: the category without ``children``)."""

    label = Translated(LABEL, required=True)
    parent_id = fields.Str(load_default=None, allow_none=True, validate=REFERENCE,
                           metadata={"description": "null: a top-level category"})
    department_id = fields.Str(load_default=None, allow_none=True, validate=REFERENCE,
                               metadata={"description": "null: inherited from the parent"})
    faq = fields.List(fields.Nested(FaqIn), load_default=list, validate=MAX_FAQ)
    assignment_policy = fields.Str(load_default=None, allow_none=True, validate=POLICY,
                                   metadata={"description": "null: the department's"})
    closure_expiry_days = fields.Int(load_default=None, allow_none=True, strict=True, validate=DAYS,
                                     metadata={"description": "null: the parent's, else the department's"})


class NewCategory(CategoryFields):
    id = fields.Str(required=True, validate=NEW_ID)


class CategoryUpdate(CategoryFields):
    id = fields.Str(load_default=None, allow_none=True, validate=REFERENCE,
                    metadata={"description": "if given, the id in the path (a category cannot be renamed)"})


class CategoryListQuery(Schema):
    q = fields.Str(load_default=None, validate=validate.Length(max=200),
                   metadata={"description": "words the label contains (accents and case ignored)"})


# -- departments and their managers ------------------------------------------------------


class ManagerIn(Schema):
    user = fields.Str(required=True, validate=LOGIN, metadata={"description": "the ENT login"})
    name = fields.Str(load_default=None, allow_none=True, validate=validate.Length(1, 200))
    email = fields.Email(load_default=None, allow_none=True, validate=validate.Length(3, 320))
    establishment = fields.Str(load_default=None, allow_none=True, validate=ESTABLISHMENT,
                               metadata={"description": "the UAI; only (and always) in a per-establishment department"})
    available = _boolean(load_default=True)


class DepartmentFields(Schema):
    label = Translated(LABEL, required=True)
    per_establishment = _boolean(load_default=False)
    assignment_policy = fields.Str(load_default="none", validate=POLICY)
    closure_expiry_days = fields.Int(load_default=None, allow_none=True, strict=True, validate=DAYS)
    escalation_enabled = _boolean(load_default=False)
    managers = fields.List(fields.Nested(ManagerIn), load_default=list, validate=MAX_MANAGERS)


class NewDepartment(DepartmentFields):
    id = fields.Str(required=True, validate=NEW_ID)


class DepartmentUpdate(DepartmentFields):
    id = fields.Str(load_default=None, allow_none=True, validate=REFERENCE,
                    metadata={"description": "if given, the id in the path (a department cannot be renamed)"})


class Availability(Schema):
    available = _boolean(required=True)


class Empty(Schema):
    pass


# -- answers (documentation only) --------------------------------------------------------


class FaqOut(Schema):
    id = fields.Str(required=True)
    question = fields.Str(required=True)
    answer = fields.Str(required=True)
    inherited_from = fields.Str(metadata={
        "description": "the ancestor category the entry belongs to; absent for the category's own entries,"
                       " which come first"})


class CategoryOut(Schema):
    """A category in the caller's language, with its sub-categories."""

    id = fields.Str(required=True)
    label = fields.Str(required=True)
    parent_id = fields.Str(required=True, allow_none=True)
    department_id = fields.Str(required=True, allow_none=True, metadata={"description": "null: inherited"})
    children = fields.List(fields.Nested(lambda: CategoryOut()), required=True)
    faq = fields.List(fields.Nested(FaqOut), required=True)


class CategoryDetail(CategoryOut):
    """One category: also its own policy and expiry delay (null: inherited)."""

    assignment_policy = fields.Str(required=True, allow_none=True, validate=POLICY)
    closure_expiry_days = fields.Int(required=True, allow_none=True)


class TranslatedOut(Schema):
    fr = fields.Str(required=True)
    en = fields.Str(required=True, allow_none=True)


class FaqForm(Schema):
    id = fields.Str(required=True)
    question = fields.Nested(TranslatedOut, required=True)
    answer = fields.Nested(TranslatedOut, required=True)


class CategoryForm(Schema):
    """A category as stored, in both languages: what a write answers."""

    id = fields.Str(required=True)
    label = fields.Nested(TranslatedOut, required=True)
    parent_id = fields.Str(required=True, allow_none=True)
    department_id = fields.Str(required=True, allow_none=True)
    faq = fields.List(fields.Nested(FaqForm), required=True)
    assignment_policy = fields.Str(required=True, allow_none=True, validate=POLICY)
    closure_expiry_days = fields.Int(required=True, allow_none=True)


class ManagerOut(Schema):
    user = fields.Str(required=True)
    name = fields.Str(required=True, allow_none=True)
    email = fields.Str(required=True, allow_none=True)
    establishment = fields.Str(required=True, allow_none=True)
    available = fields.Bool(required=True)


class DepartmentOut(Schema):
    id = fields.Str(required=True)
    label = fields.Nested(TranslatedOut, required=True)
    per_establishment = fields.Bool(required=True)
    assignment_policy = fields.Str(required=True, validate=POLICY)
    closure_expiry_days = fields.Int(required=True, allow_none=True)
    escalation_enabled = fields.Bool(required=True)
    managers = fields.List(fields.Nested(ManagerOut), required=True)


class Problem(Schema):
    type = fields.Str(required=True)
    title = fields.Str(required=True)
    status = fields.Int(required=True)
    detail = fields.Str(required=True)
    errors = fields.Dict(keys=fields.Str(), values=fields.List(fields.Str()))
