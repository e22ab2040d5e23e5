"""The OpenAPI 3.1 description of the control API, served at ``/api/openapi.json``.

Written by hand next to ``api.py`` (a test checks every route is described,
and that the answers of a running daemon carry the documented fields).
"""

from __future__ import annotations

from typing import Any

from calsync.sync import MODES

_STR = {"type": "string"}
_INT = {"type": "integer"}
_BOOL = {"type": "boolean"}
_TIME = {"type": ["string", "null"], "format": "date-time"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS = {
    "400": _json(_ref("Error"), "bad request (the message says what)"),
    "401": _json(_ref("Error"), "missing or wrong bearer token"),
    "403": _json(_ref("Error"), "from another machine, without [server] api_remote = true"),
    "429": _json(_ref("Error"), "too many wrong tokens from this address (see Retry-After)"),
}

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": _STR}},
    "PairRequest": {
        "type": "object",
        "properties": {
            "account": {**_STR, "description": "default: the only account there is"},
            "device": {**_STR, "description": "default: phone, phone-2, ..."},
            "secure": {**_BOOL, "description": "an https URL instead of plain HTTP"},
        },
    },
    "PairingOffer": {
        "type": "object",
        "required": ["url", "expires", "device", "account", "qr_svg", "qr_text", "ca_fingerprint"],
        "properties": {
            "url": {**_STR, "description": "the one-time pairing URL"},
            "expires": {"type": "number", "description": "Unix time"},
            "device": _STR,
            "account": _STR,
            "qr_svg": {**_STR, "description": "the URL as a QR code, an <svg> element"},
            "qr_text": {**_STR, "description": "the URL as a QR code for a terminal"},
            "ca_fingerprint": {
                "type": ["string", "null"],
                "description": "SHA-256 of the CA certificate (null: the user's own certificate)",
            },
        },
    },
    "PairedDevice": {
        "type": "object",
        "required": ["name", "account", "created"],
        "properties": {"name": _STR, "account": _STR, "created": {"type": "number"}},
    },
    "ItemError": {
        "type": "object",
        "properties": {
            "store": _STR,
            "side": {"enum": ["a", "b"]},
            "id": {"type": ["string", "null"]},
            "uid": {"type": ["string", "null"]},
            "message": _STR,
        },
    },
    "SyncCounts": {
        "type": "object",
        "description": "one pair's outcome, as in `calsync sync --json`",
        "required": [
            "added_a",
            "added_b",
            "updated_a",
            "updated_b",
            "deleted_a",
            "deleted_b",
            "conflicts",
            "errors",
        ],
        "properties": {
            **{
                f"{what}_{side}": _INT
                for what in ("added", "updated", "deleted")
                for side in ("a", "b")
            },
            "conflicts": _INT,
            "errors": {"type": "array", "items": _ref("ItemError")},
            "stopped": {"type": "string", "description": "why the pair did not (fully) sync"},
        },
    },
    "Schedule": {
        "type": "object",
        "description": "what the daemon does with the pair",
        "properties": {
            "running": _BOOL,
            "queued": _BOOL,
            "next_run": _TIME,
            "next_run_in": {"type": ["number", "null"]},
            "interval": {"type": "number"},
            "failures": {"type": "integer", "description": "failed runs in a row (backoff)"},
            "last_error": {"type": ["string", "null"]},
            "last_trigger": {"type": ["string", "null"]},
            "last_started": _TIME,
            "last_finished": _TIME,
            "last_seconds": {"type": ["number", "null"]},
            "runs": _INT,
        },
    },
    "PairStatus": {
        "type": "object",
        "description": "as in `calsync status --json`, plus `daemon`",
        "required": ["a", "b", "items", "last_run", "last_result", "queued", "daemon"],
        "properties": {
            "a": _STR,
            "b": _STR,
            "items": _INT,
            "last_run": _TIME,
            "last_result": {"oneOf": [_ref("SyncCounts"), {"type": "null"}]},
            "queued": {
                "type": "object",
                "description": "store -> changes waiting (e.g. for Thunderbird to quit)",
            },
            "daemon": _ref("Schedule"),
        },
    },
    "Device": {
        "type": "object",
        "properties": {
            "account": _STR,
            "device": _STR,
            "datastore": _STR,
            "last_sync": _TIME,
            "last_result": {"type": ["string", "null"]},
            "items": _INT,
            "protocol": {"const": "syncml"},
            "stores": {"type": "array", "items": _STR, "description": "the datastore's store"},
            "pairs": {"type": "array", "items": _STR, "description": "pairs of those stores"},
        },
    },
    "Client": {
        "type": "object",
        "description": "a device of another protocol that logged in (CalDAV)",
        "properties": {
            "protocol": _STR,
            "account": _STR,
            "device": {"type": "string", "description": "the program (User-Agent)"},
            "address": _STR,
            "last_seen": _TIME,
            "app_password": {
                "type": ["string", "null"],
                "description": "the paired device whose app password it used (null: the account's)",
            },
            "stores": {"type": "array", "items": _STR, "description": "the account's stores"},
            "pairs": {"type": "array", "items": _STR, "description": "pairs of those stores"},
        },
    },
    "Status": {
        "type": "object",
        "required": ["pairs", "devices", "daemon"],
        "properties": {
            "pairs": {"type": "object", "additionalProperties": _ref("PairStatus")},
            "devices": {"type": "array", "items": _ref("Device")},
            "clients": {"type": "array", "items": _ref("Client")},
            "paired": {
                "type": "array",
                "description": "the paired devices (app passwords), with their account's stores "
                "and pairs",
                "items": {
                    "allOf": [
                        _ref("PairedDevice"),
                        {
                            "type": "object",
                            "properties": {
                                "stores": {"type": "array", "items": _STR},
                                "pairs": {"type": "array", "items": _STR},
                            },
                        },
                    ]
                },
            },
            "daemon": {
                "type": "object",
                "properties": {
                    "pid": _INT,
                    "version": _STR,
                    "started": _TIME,
                    "url": _STR,
                    "config": {"type": ["string", "null"]},
                    "requests": _INT,
                    "watching": {"type": "array", "items": _STR},
                    "stopping": _BOOL,
                },
            },
        },
    },
    "SyncRequest": {
        "type": "object",
        "properties": {
            "pairs": {
                "type": "array",
                "items": _STR,
                "description": "pairs to sync (default: all)",
            },
            "wait": {"type": "boolean", "default": False, "description": "answer with results"},
            "force": {"type": "boolean", "default": False, "description": "override guards"},
            "dry_run": {"type": "boolean", "default": False},
            "mode": {
                "enum": list(MODES),
                "default": "two-way",
            },
        },
    },
    "SyncResults": {
        "type": "object",
        "required": ["pairs", "details", "exit_code"],
        "properties": {
            "pairs": {"type": "object", "additionalProperties": _ref("SyncCounts")},
            "details": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "properties": {"guard": _BOOL, "seconds": {"type": "number"}},
                },
            },
            "exit_code": {
                "enum": [0, 1, 3],
                "description": "what `calsync sync` exits with for these results",
            },
        },
    },
    "Conflict": {
        "type": "object",
        "properties": {
            "n": _INT,
            "time": _STR,
            "pair": _STR,
            "uid": _STR,
            "policy": _STR,
            "outcome": _STR,
            "winner": {"type": ["string", "null"]},
            "overlapping": {"type": "array", "items": _STR},
            "clock": {"type": ["string", "null"], "description": "what decided which is newer"},
            "copy_uid": {"type": "string", "description": "the other version, kept as a copy"},
            "stores": {
                "type": "object",
                "properties": {"a": _STR, "b": _STR},
                "description": "the stores of the two sides",
            },
            "resolved": {
                "type": ["object", "null"],
                "properties": {"time": _STR, "keep": {"enum": ["a", "b", "both"]}},
                "description": "decided again later (POST /resolve)",
            },
        },
    },
    "ConflictVersions": {
        "allOf": [
            _ref("Conflict"),
            {
                "type": "object",
                "properties": {
                    "sides": {
                        "type": "object",
                        "description": "a, b (and a merge's result): each side's version then",
                        "additionalProperties": {
                            "type": "object",
                            "properties": {"store": _STR, "content": _STR},
                        },
                    },
                    "differences": {
                        "type": ["array", "null"],
                        "description": "the properties a and b held differently",
                        "items": {
                            "type": "object",
                            "properties": {
                                "component": _STR,
                                "name": _STR,
                                "a": {"type": "array", "items": _STR},
                                "b": {"type": "array", "items": _STR},
                            },
                        },
                    },
                },
            },
        ]
    },
    "ResolveRequest": {
        "type": "object",
        "required": ["conflict", "keep"],
        "properties": {
            "conflict": {"type": "integer", "description": "the conflict's n"},
            "keep": {
                "enum": ["a", "b", "both"],
                "description": "a's version, b's, or both (the other as a marked copy)",
            },
        },
    },
    "Version": {
        "type": "object",
        "properties": {
            "version": {"type": "integer", "description": "the number to restore"},
            "uid": _STR,
            "store": _STR,
            "pair": _STR,
            "id": {"type": ["string", "null"]},
            "reason": _STR,
            "time": _STR,
            "content": {"type": "string", "description": "the iCalendar text"},
        },
    },
    "RestoreRequest": {
        "type": "object",
        "required": ["uid"],
        "properties": {
            "uid": _STR,
            "version": {"type": "integer", "description": "history entry (default: newest)"},
            "to": {"type": "string", "description": "store (default: where it was taken from)"},
        },
    },
}


def schema() -> dict[str, Any]:
    """The whole document (a fresh dict each time)."""
    from calsync import __name__ as package

    try:
        from importlib.metadata import version

        ver = version(package)
    except Exception:
        ver = "0"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "calsync gateway control API",
            "version": ver,
            "description": "Local control of the calsync daemon. Every request needs "
            "`Authorization: Bearer <token>`, the token being the content of `api-token` "
            "in calsync's config directory (readable by the user only).",
        },
        "servers": [{"url": "/api"}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": SCHEMAS,
        },
        "paths": {
            "/status": {
                "get": {
                    "summary": "pairs (last run, counts, errors, next run), devices seen",
                    "operationId": "status",
                    "responses": {"200": _json(_ref("Status"), "the status"), **_ERRORS},
                }
            },
            "/sync": {
                "post": {
                    "summary": "sync pairs now (all when none named)",
                    "operationId": "sync",
                    "requestBody": {
                        "required": False,
                        "content": {"application/json": {"schema": _ref("SyncRequest")}},
                    },
                    "responses": {
                        "200": _json(_ref("SyncResults"), "with wait: the results"),
                        "202": _json(
                            {"type": "object", "properties": {"queued": {"type": "array"}}},
                            "without wait: the runs are queued",
                        ),
                        "503": _json(_ref("Error"), "the daemon is shutting down"),
                        **_ERRORS,
                    },
                }
            },
            "/conflicts": {
                "get": {
                    "summary": "conflicts resolved by syncs, newest first",
                    "operationId": "conflicts",
                    "parameters": [_limit_param()],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "conflicts": {"type": "array", "items": _ref("Conflict")}
                                },
                            },
                            "the conflicts",
                        ),
                        **_ERRORS,
                    },
                }
            },
            "/conflicts/{n}": {
                "get": {
                    "summary": "one conflict with both versions and what differs",
                    "operationId": "conflict",
                    "parameters": [
                        {"name": "n", "in": "path", "required": True, "schema": _INT},
                    ],
                    "responses": {
                        "200": _json(_ref("ConflictVersions"), "the conflict"),
                        "404": _json(_ref("Error"), "no such conflict"),
                        **_ERRORS,
                    },
                }
            },
            "/resolve": {
                "post": {
                    "summary": "decide a conflict again: keep a, b, or both; then sync",
                    "operationId": "resolve",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("ResolveRequest")}},
                    },
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "resolved": {
                                        "type": "object",
                                        "properties": {
                                            "conflict": _INT,
                                            "keep": _STR,
                                            "stores": {
                                                "type": "array",
                                                "items": _STR,
                                                "description": "the stores written",
                                            },
                                        },
                                    }
                                },
                            },
                            "decided",
                        ),
                        "404": _json(_ref("Error"), "no such conflict, or no versions of it"),
                        "409": _json(_ref("Error"), "a store changed meanwhile; try again"),
                        **_ERRORS,
                    },
                }
            },
            "/history": {
                "get": {
                    "summary": "versions calsync overwrote or deleted (all, or one UID's)",
                    "operationId": "history",
                    "parameters": [
                        {"name": "uid", "in": "query", "required": False, "schema": _STR},
                        _limit_param(),
                    ],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "history": {"type": "array", "items": _ref("Version")}
                                },
                            },
                            "the versions, newest first",
                        ),
                        **_ERRORS,
                    },
                }
            },
            "/restore": {
                "post": {
                    "summary": "put a saved version back into a store, then sync its pairs",
                    "operationId": "restore",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("RestoreRequest")}},
                    },
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "restored": {
                                        "type": "object",
                                        "properties": {
                                            "uid": _STR,
                                            "version": _INT,
                                            "store": _STR,
                                        },
                                    }
                                },
                            },
                            "restored",
                        ),
                        "404": _json(_ref("Error"), "no such saved version"),
                        "409": _json(_ref("Error"), "the store changed meanwhile; try again"),
                        **_ERRORS,
                    },
                }
            },
            "/identify": {
                "get": {
                    "summary": "the daemon proves it holds the token, before a client sends it",
                    "description": "proof = hex HMAC-SHA256(token, "
                    '"calsync-daemon-identity" NUL nonce); the only request without a token',
                    "operationId": "identify",
                    "security": [],
                    "parameters": [
                        {
                            "name": "nonce",
                            "in": "query",
                            "required": True,
                            "schema": {"type": "string", "pattern": "^[0-9a-fA-F]{32,128}$"},
                        }
                    ],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["daemon", "pid", "proof"],
                                "properties": {
                                    "daemon": {"const": "calsync"},
                                    "pid": _INT,
                                    "proof": _STR,
                                },
                            },
                            "the proof",
                        ),
                        "400": _ERRORS["400"],
                        "403": _ERRORS["403"],
                    },
                }
            },
            "/pair": {
                "post": {
                    "summary": "open a pairing: a one-time URL and QR code for a phone",
                    "description": "creates the device's app password when the phone "
                    "first fetches its credentials; the URL expires after 10 minutes",
                    "operationId": "pair",
                    "requestBody": {
                        "required": False,
                        "content": {"application/json": {"schema": _ref("PairRequest")}},
                    },
                    "responses": {
                        "201": _json(_ref("PairingOffer"), "the pairing is open"),
                        "409": _json(_ref("Error"), "it cannot start (the message says why)"),
                        "503": _json(_ref("Error"), "this daemon does not pair devices"),
                        **_ERRORS,
                    },
                }
            },
            "/devices": {
                "get": {
                    "summary": "the paired devices (their app passwords, without the passwords)",
                    "operationId": "devices",
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["devices"],
                                "properties": {
                                    "devices": {"type": "array", "items": _ref("PairedDevice")}
                                },
                            },
                            "the devices",
                        ),
                        **_ERRORS,
                    },
                }
            },
            "/devices/{name}": {
                "delete": {
                    "summary": "revoke a device: its app password stops working, its sessions end",
                    "operationId": "revokeDevice",
                    "parameters": [
                        {"name": "name", "in": "path", "required": True, "schema": _STR}
                    ],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["revoked"],
                                "properties": {"revoked": _ref("PairedDevice")},
                            },
                            "revoked",
                        ),
                        "404": _json(_ref("Error"), "no such device"),
                        **_ERRORS,
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "this document",
                    "operationId": "openapi",
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.1",
                            "content": {"application/json": {}},
                        },
                        **_ERRORS,
                    },
                }
            },
        },
    }


def _limit_param() -> dict[str, Any]:
    return {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 50},
    }
