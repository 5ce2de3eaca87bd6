"""The API's documentation as a page (/api/docs), written from its OpenAPI schema.

Swagger UI and ReDoc are JavaScript from a CDN, which the pages' Content-Security-Policy
(and a closed network) would not load; this page is the same schema read on the server:
each operation with its method, path, summary, parameters, body and answers, then each
schema with its fields, types and limits.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup

from digest.mail.render import announcement_html

Schema = dict[str, Any]
METHODS = ("get", "post", "put", "patch", "delete")
CONSTRAINTS = (
    ("minLength", "min. {} tegn"),
    ("maxLength", "maks. {} tegn"),
    ("minItems", "min. {} elementer"),
    ("maxItems", "maks. {} elementer"),
    ("minimum", "≥ {}"),
    ("maximum", "≤ {}"),
    ("pattern", "mønster {}"),
)


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


def _type(schema: Schema) -> str:
    if "$ref" in schema:
        return _ref_name(schema)
    if "anyOf" in schema:
        return " | ".join(_type(part) for part in schema["anyOf"])
    if schema.get("type") == "array":
        return f"liste av {_type(schema.get('items', {}))}"
    if "enum" in schema:
        return " | ".join(str(v) for v in schema["enum"])
    kind = str(schema.get("type", "alt"))
    return f"{kind} ({schema['format']})" if "format" in schema else kind


def _first_ref(schema: Schema) -> str:
    if "$ref" in schema:
        return _ref_name(schema)
    for part in schema.get("anyOf", []):
        if found := _first_ref(part):
            return found
    return _first_ref(schema["items"]) if "items" in schema else ""


def _limits(schema: Schema) -> str:
    found: list[str] = []
    for part in (schema, *schema.get("anyOf", []), schema.get("items", {})):
        for key, text in CONSTRAINTS:
            if key not in part:
                continue
            value = part[key]
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if text.format(value) not in found:
                found.append(text.format(value))
    return ", ".join(found)


def _field(name: str, schema: Schema, required: bool, description: str = "") -> Field:
    return Field(
        name=name,
        type=_type(schema),
        ref=_first_ref(schema),
        required=required,
        limits=_limits(schema),
        description=description or str(schema.get("description", "")),
        default=json.dumps(schema["default"]) if "default" in schema and not required else "",
    )


def _json_schema(content: Schema | None) -> Schema:
    return ((content or {}).get("application/json") or {}).get("schema") or {}


def operations(openapi: Schema) -> list[Operation]:
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
                    summary=str(op.get("summary", "")),
                    description=str(op.get("description", "")),
                    parameters=[
                        _field(
                            f"{p['name']} ({p['in']})",
                            p.get("schema", {}),
                            bool(p.get("required")),
                            str(p.get("description", "")),
                        )
                        for p in op.get("parameters", [])
                    ],
                    body=_first_ref(_json_schema(body.get("content"))),
                    body_required=bool(body.get("required")),
                    answers=[
                        Answer(
                            status=str(status),
                            description=str(answer.get("description", "")),
                            schema=_first_ref(_json_schema(answer.get("content"))),
                        )
                        for status, answer in sorted(op.get("responses", {}).items())
                    ],
                    secured=bool(op.get("security")),
                )
            )
    return found


def schemas(openapi: Schema) -> list[SchemaDoc]:
    found = []
    for name, schema in sorted(openapi.get("components", {}).get("schemas", {}).items()):
        required = set(schema.get("required", []))
        found.append(
            SchemaDoc(
                name=name,
                description=str(schema.get("description", "")),
                fields=[
                    _field(prop, sub, prop in required)
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
