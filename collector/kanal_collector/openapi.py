"""The OpenAPI 3.1 document of the ingest API (served at /openapi.json)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from .ingest.body import MAX_BATCH_EVENTS

_ID = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[^\\u0000]*$"}
"""Ids are columns of the log: no NUL character (PostgreSQL's text can't hold one)."""
_EVENT_NAME = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"
"""An event name: a character that is not a space, and no NUL."""
_OBJECT = {"type": "object"}
_TIME = {"type": "string", "format": "date-time"}


def _message(kind: str, fields: dict[str, Any], required: list[str]) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "type": {"const": kind},
        "userId": _ID,
        "anonymousId": _ID,
        "messageId": _ID,
        "timestamp": _TIME,
        "originalTimestamp": _TIME,
        "sentAt": _TIME,
        "context": {"$ref": "#/components/schemas/Context"},
        "integrations": _OBJECT,
        "writeKey": {"type": "string"},
        **fields,
    }
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": True,
        "anyOf": [{"required": ["userId"]}, {"required": ["anonymousId"]}],
    }
    if required:
        schema["required"] = required
    return schema


_NAMES = {"track": "Track", "identify": "Identify", "page": "Page", "screen": "Screen",
          "group": "Group", "alias": "Alias"}


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    """The document (built once)."""
    name = {"type": "string", "maxLength": 255}
    schemas: dict[str, Any] = {
        "Context": {
            "type": "object",
            "description": "Segment context: library, page, campaign, userAgent, ip, "
                           "locale, timezone, app, device, os. `userHash` (hex "
                           "HMAC-SHA256 of userId under a secret key) verifies a browser "
                           "identify.",
            "properties": {"userHash": {"type": "string"}},
            "additionalProperties": True,
        },
        # Ingest refuses a name of only white space: the document says so too.
        "Track": _message("track", {"event": {**name, "minLength": 1, "pattern": _EVENT_NAME},
                                    "properties": _OBJECT}, ["event"]),
        "Identify": _message("identify", {"traits": _OBJECT}, []),
        "Page": _message("page", {"name": name, "category": name,
                                  "properties": _OBJECT}, []),
        "Screen": _message("screen", {"name": name, "category": name,
                                      "properties": _OBJECT}, []),
        "Group": _message("group", {"groupId": _ID, "traits": _OBJECT}, ["groupId"]),
        "Alias": _message("alias", {"previousId": _ID}, ["previousId", "userId"]),
        "Batch": {
            "type": "object",
            "required": ["batch"],
            "properties": {
                "batch": {
                    "type": "array",
                    "maxItems": MAX_BATCH_EVENTS,
                    "items": {"oneOf": [{"$ref": f"#/components/schemas/{n}"}
                                        for n in _NAMES.values()]},
                },
                "context": {"$ref": "#/components/schemas/Context"},
                "integrations": _OBJECT,
                "sentAt": _TIME,
                "writeKey": {"type": "string"},
            },
        },
        "Success": {
            "type": "object",
            "required": ["success"],
            "properties": {"success": {"const": True}, "stored": {"type": "integer"},
                           "duplicates": {"type": "integer"}, "failed": {"type": "integer"}},
        },
        "Error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        },
    }

    def error(description: str) -> dict[str, Any]:
        return {"description": description, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Error"}}}}

    responses = {
        "200": {"description": "Stored (committed) or already stored.",
                "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Success"}}}},
        "400": error("Invalid JSON or message; kept in the failed-events table."),
        "401": error("Missing, unknown or revoked write key."),
        "413": error("Body over 32 KB (one message) or 500 KB (batch), or over 2,500 "
                     "messages."),
        "429": error("Rate limited; see Retry-After."),
        "503": error("The database can't be written; retry later."),
    }
    paths: dict[str, Any] = {}
    for route, schema in [*[(k, v) for k, v in _NAMES.items()], ("batch", "Batch")]:
        body = {"required": True, "content": {
            media: {"schema": {"$ref": f"#/components/schemas/{schema}"}}
            for media in ("application/json", "text/plain")}}
        paths[f"/v1/{route}"] = {"post": {
            "operationId": route, "summary": f"Send {schema.lower()} message(s).",
            "requestBody": body, "responses": responses,
            "security": [{"basicAuth": []}, {}],
        }}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Kanal ingest API", "version": "1",
                  "description": "The Segment HTTP Tracking API, as Kanal serves it. The "
                                "write key goes in HTTP Basic auth (as the user, empty "
                                "password) or as `writeKey` in the JSON body."},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "basicAuth": {"type": "http", "scheme": "basic",
                              "description": "Write key as the user, empty password."},
            },
        },
    }
