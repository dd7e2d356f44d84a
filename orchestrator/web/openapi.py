"""The OpenAPI 3.1 document of ``/api/v1``, written by hand so each operation says what a
workflow tool (n8n, Make, Zapier) needs to set up its HTTP node.

A test checks that its paths and methods are exactly the Flask routes under ``/api/v1`` and
that it validates against the OpenAPI 3.1 schema. This module must not read settings.
"""

from __future__ import annotations

from typing import Any

from orchestrator.store.journal import EntryState

_ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    texts = {
        400: "The request cannot be used as it is (see `hint`).",
        401: "No valid API key.",
        404: "Not found.",
        409: "Conflicts with what is stored (see `code`).",
        413: "Too large.",
        415: "Unsupported Content-Type.",
        422: "Invalid: `problems` lists every problem.",
        502: "TikTok answered with an error or could not be reached.",
        503: "Not available now.",
    }
    return {str(status): _json(_ERROR, texts[status]) for status in statuses}


_OPEN_ID = {
    "name": "open_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "The account's TikTok open_id.",
}
_POST_ID = {"name": "post_id", "in": "path", "required": True, "schema": {"type": "string"}}
_RUN_ID = {"name": "run_id", "in": "path", "required": True, "schema": {"type": "string"}}
_IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "maxLength": 255},
    "description": "A retried request with the same key answers the same post (never a second "
    "post); the same key with a different body is a 409. Without it, the entry's `id` is used.",
}
_ACCEPTED_POST = {
    "description": "Queued (or, for a retried key, the post made before).",
    "headers": {"Location": {"schema": {"type": "string"}}},
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Post"}}},
}


def openapi_document() -> dict[str, Any]:
    """The document served at ``/api/v1/openapi.json``."""
    secured: list[dict[str, list[str]]] = [{"apiKey": []}]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tiktok-orchestrator HTTP API",
            "version": "1",
            "description": "Post to TikTok through the orchestrator's journal and scheduler. "
            "Every operation but healthz and this document needs `Authorization: Bearer "
            "<API key>` (`tiktok-orchestrator api-key create`). Errors are "
            '`{"code", "message", "hint"}`.',
        },
        "servers": [{"url": "/api/v1"}],
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["code", "message", "hint"],
                    "properties": {
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                        "hint": {"type": ["string", "null"]},
                        "problems": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "location": {"type": "string"},
                                    "message": {"type": "string"},
                                    "fix": {"type": ["string", "null"]},
                                },
                            },
                        },
                    },
                },
                "Account": {
                    "type": "object",
                    "properties": {
                        "open_id": {"type": "string"},
                        "display_name": {"type": ["string", "null"]},
                        "scopes": {"type": "array", "items": {"type": "string"}},
                        "token_state": {"type": "string"},
                        "access_expires_at": {"type": "number"},
                        "refresh_expires_at": {"type": "number"},
                        "login_reason": {"type": ["string", "null"]},
                    },
                },
                "Entry": {
                    "type": "object",
                    "description": "One manifest entry (the manifest schema's entry fields): "
                    "user_id, mode (direct|inbox), privacy_level, publish_at, description, "
                    "tags, and one of video_path (under the server's upload roots), "
                    "video_url or photo_urls.",
                    "required": ["user_id"],
                    "additionalProperties": True,
                },
                "Post": {
                    "type": "object",
                    "required": ["id", "state"],
                    "properties": {
                        "id": {"type": "string"},
                        "user_id": {"type": ["string", "null"]},
                        "mode": {"type": "string"},
                        "state": {
                            "type": "string",
                            # Before the journal has the post, then the journal's states.
                            "enum": ["queued", "cancelled", *(s.value for s in EntryState)],
                        },
                        "publish_id": {"type": ["string", "null"]},
                        "bytes_sent": {"type": "integer"},
                        "bytes_total": {"type": ["integer", "null"]},
                        "post_ids": {"type": "array", "items": {"type": "string"}},
                        "deferred_until": {"type": ["number", "null"]},
                        "consent": {
                            "type": ["object", "null"],
                            "description": "The creator's confirmation on the review page "
                            "(review: creator): open_id, at, media_digest, settings, declaration.",
                        },
                        "error": {
                            "type": "object",
                            "properties": {
                                "code": {"type": ["string", "null"]},
                                "message": {"type": ["string", "null"]},
                                "log_id": {"type": ["string", "null"]},
                                "retryable": {"type": ["boolean", "null"]},
                                "hint": {"type": ["string", "null"]},
                            },
                        },
                    },
                },
            },
        },
        "paths": {
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "summary": "Store reachable, worker alive, queue depth (no auth).",
                    "security": [],
                    "responses": {
                        "200": _json({"type": "object"}, "Healthy."),
                        "503": _json({"type": "object"}, "Unhealthy."),
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document (no auth).",
                    "security": [],
                    "responses": {"200": _json({"type": "object"}, "The document.")},
                }
            },
            "/accounts": {
                "get": {
                    "operationId": "listAccounts",
                    "summary": "Connected accounts and their token health.",
                    "security": secured,
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "accounts": {
                                        "type": "array",
                                        "items": {"$ref": "#/components/schemas/Account"},
                                    }
                                },
                            },
                            "The accounts.",
                        ),
                        **_errors(401),
                    },
                }
            },
            "/accounts/{open_id}": {
                "get": {
                    "operationId": "getAccount",
                    "summary": "One connected account.",
                    "security": secured,
                    "parameters": [_OPEN_ID],
                    "responses": {
                        "200": _json({"$ref": "#/components/schemas/Account"}, "The account."),
                        **_errors(401, 404),
                    },
                }
            },
            "/accounts/{open_id}/creator-info": {
                "get": {
                    "operationId": "getCreatorInfo",
                    "summary": "TikTok's creator_info for the account, asked now.",
                    "security": secured,
                    "parameters": [_OPEN_ID],
                    "responses": {
                        "200": _json({"type": "object"}, "What the creator may post now."),
                        **_errors(401, 404, 409, 502, 503),
                    },
                }
            },
            "/posts": {
                "post": {
                    "operationId": "createPost",
                    "summary": "Queue one post: an entry as JSON, or multipart with the video.",
                    "security": secured,
                    "parameters": [_IDEMPOTENCY],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Entry"}},
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "required": ["video"],
                                    "properties": {
                                        "entry": {
                                            "type": "string",
                                            "description": "The entry as JSON, without media.",
                                        },
                                        "video": {
                                            "type": "string",
                                            "contentMediaType": "application/octet-stream",
                                            "description": "MP4, MOV or WebM, up to 4 GB.",
                                        },
                                    },
                                }
                            },
                        },
                    },
                    "responses": {
                        "202": _ACCEPTED_POST,
                        **_errors(400, 401, 409, 413, 415, 422),
                    },
                }
            },
            "/reviews": {
                "post": {
                    "operationId": "createReviewLink",
                    "summary": "A review link for a creator's posts awaiting review (shown "
                    "once; it opens once and expires).",
                    "security": secured,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["user_id"],
                                    "properties": {"user_id": {"type": "string"}},
                                }
                            }
                        },
                    },
                    "responses": {
                        "201": _json(
                            {
                                "type": "object",
                                "required": ["review_url", "user_id", "expires_at", "posts"],
                                "properties": {
                                    "review_url": {"type": "string"},
                                    "user_id": {"type": "string"},
                                    "expires_at": {"type": "number"},
                                    "posts": {"type": "array", "items": {"type": "string"}},
                                },
                            },
                            "The link.",
                        ),
                        **_errors(400, 401, 409),
                    },
                }
            },
            "/posts/{post_id}": {
                "get": {
                    "operationId": "getPost",
                    "summary": "Where the post stands, from the journal.",
                    "security": secured,
                    "parameters": [_POST_ID],
                    "responses": {
                        "200": _json({"$ref": "#/components/schemas/Post"}, "The post."),
                        **_errors(401, 404),
                    },
                },
                "delete": {
                    "operationId": "cancelPost",
                    "summary": "Cancel a post that has not started.",
                    "security": secured,
                    "parameters": [_POST_ID],
                    "responses": {
                        "200": _json({"$ref": "#/components/schemas/Post"}, "Cancelled."),
                        **_errors(401, 404, 409),
                    },
                },
            },
            "/runs": {
                "post": {
                    "operationId": "createRun",
                    "summary": "Queue a whole manifest (JSON or YAML).",
                    "security": secured,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"type": ["object", "array"]}},
                            "application/yaml": {"schema": {"type": "string"}},
                        },
                    },
                    "responses": {
                        "202": {
                            "description": "Queued.",
                            "headers": {"Location": {"schema": {"type": "string"}}},
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        **_errors(400, 401, 413, 415, 422),
                    },
                }
            },
            "/runs/{run_id}": {
                "get": {
                    "operationId": "getRun",
                    "summary": "The run's report (as `run --report` writes it) once it ran.",
                    "security": secured,
                    "parameters": [_RUN_ID],
                    "responses": {
                        "200": _json({"type": "object"}, "The report."),
                        "202": _json({"type": "object"}, "Queued, not run yet."),
                        **_errors(401, 404),
                    },
                }
            },
        },
    }
