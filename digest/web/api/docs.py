"""The API's documentation as a page (/api/docs), written from its OpenAPI schema.

Swagger UI and ReDoc are JavaScript from a CDN, which the pages' Content-Security-Policy
(and a closed network) would not load; this page is the same schema read on the server:
each operation with its method, path, summary, parameters, body and answers, then each
schema with its fields, types and limits. The page is in the reader's language: the
schema's own texts (bokmål, marked in `routes` and `schemas`) are translated as shown.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup

from digest.core.i18n import N_, translate
from digest.mail.render import announcement_html

Schema = dict[str, Any]
METHODS = ("get", "post", "put", "patch", "delete")
CONSTRAINTS = (
    ("minLength", N_("min. %(value)s tegn")),
    ("maxLength", N_("maks. %(value)s tegn")),
    ("minItems", N_("min. %(value)s elementer")),
    ("maxItems", N_("maks. %(value)s elementer")),
    ("minimum", "≥ %(value)s"),
    ("maximum", "≤ %(value)s"),
    ("pattern", N_("mønster %(value)s")),
)
# FastAPI's own texts in the schema, by the bokmål the page shows for them.
FASTAPI_TEXTS = {
    "Successful Response": N_("Vellykket svar"),
    "Validation Error": N_("Feil i forespørselen"),
}


def text_in(lang: str, text: object) -> str:
    """A text of the schema in `lang` (ours are bokmål messages; FastAPI's are English)."""
    text = str(text)
    return translate(lang, FASTAPI_TEXTS.get(text, text)) if text else ""


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    type: str
    ref: str  # the schema `type` names, to link to, or ""
    required: bool
    limits: str
    description: str
    default: str


@dataclass(frozen=True, slots=True)
class Answer:
    status: str
    description: str
    schema: str


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str
    summary: str
    description: str
    parameters: list[Field]
    body: str  # the request body's schema name, or ""
    body_required: bool
    answers: list[Answer]
    secured: bool


@dataclass(frozen=True, slots=True)
class SchemaDoc:
    name: str
    description: str
    fields: list[Field] = field(default_factory=list)
    values: list[str] = field(default_factory=list)  # an enum's


def _ref_name(schema: Schema) -> str:
    ref = schema.get("$ref", "")
    return ref.rsplit("/", 1)[-1] if isinstance(ref, str) else ""


def _type(schema: Schema, lang: str) -> str:
    if "$ref" in schema:
        return _ref_name(schema)
    if "anyOf" in schema:
        return " | ".join(_type(part, lang) for part in schema["anyOf"])
    if schema.get("type") == "array":
        return translate(lang, "liste av %(type)s") % {"type": _type(schema.get("items", {}), lang)}
    if "enum" in schema:
        return " | ".join(str(v) for v in schema["enum"])
    kind = str(schema.get("type", translate(lang, "alt")))
    return f"{kind} ({schema['format']})" if "format" in schema else kind


def _first_ref(schema: Schema) -> str:
    if "$ref" in schema:
        return _ref_name(schema)
    for part in schema.get("anyOf", []):
        if found := _first_ref(part):
            return found
    return _first_ref(schema["items"]) if "items" in schema else ""


def _limits(schema: Schema, lang: str) -> str:
    found: list[str] = []
    for part in (schema, *schema.get("anyOf", []), schema.get("items", {})):
        for key, text in CONSTRAINTS:
            if key not in part:
                continue
            value = part[key]
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            shown = translate(lang, text) % {"value": value}
            if shown not in found:
                found.append(shown)
    return ", ".join(found)


def _field(name: str, schema: Schema, required: bool, lang: str, description: str = "") -> Field:
    return Field(
        name=name,
        type=_type(schema, lang),
        ref=_first_ref(schema),
        required=required,
        limits=_limits(schema, lang),
        description=text_in(lang, description or schema.get("description", "")),
        default=json.dumps(schema["default"]) if "default" in schema and not required else "",
    )


def _json_schema(content: Schema | None) -> Schema:
    return ((content or {}).get("application/json") or {}).get("schema") or {}


def operations(openapi: Schema, lang: str) -> list[Operation]:
    found = []
    for path, item in openapi.get("paths", {}).items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            body = op.get("requestBody") or {}
            found.append(
                Operation(
                    method=method.upper(),
                    path=path,
                    summary=text_in(lang, op.get("summary", "")),
                    description=text_in(lang, op.get("description", "")),
                    parameters=[
                        _field(
                            f"{p['name']} ({p['in']})",
                            p.get("schema", {}),
                            bool(p.get("required")),
                            lang,
                            str(p.get("description", "")),
                        )
                        for p in op.get("parameters", [])
                    ],
                    body=_first_ref(_json_schema(body.get("content"))),
                    body_required=bool(body.get("required")),
                    answers=[
                        Answer(
                            status=str(status),
                            description=text_in(lang, answer.get("description", "")),
                            schema=_first_ref(_json_schema(answer.get("content"))),
                        )
                        for status, answer in sorted(op.get("responses", {}).items())
                    ],
                    secured=bool(op.get("security")),
                )
            )
    return found


def schemas(openapi: Schema, lang: str) -> list[SchemaDoc]:
    found = []
    for name, schema in sorted(openapi.get("components", {}).get("schemas", {}).items()):
        required = set(schema.get("required", []))
        found.append(
            SchemaDoc(
                name=name,
                description=text_in(lang, schema.get("description", "")),
                fields=[
                    _field(prop, sub, prop in required, lang)
                    for prop, sub in schema.get("properties", {}).items()
                ],
                values=[str(v) for v in schema.get("enum", [])],
            )
        )
    return found


def markdown(text: str) -> Markup:
    """The schema's descriptions (our own text) as HTML; raw HTML stays text (rendered as
    announcements are)."""
    return announcement_html(text)
