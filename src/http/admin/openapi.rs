//! The OpenAPI 3 document of the admin API, served at `/api/v1/openapi.json`.
//!
//! Written by hand next to [`super::ROUTES`]; a test checks that both name the same
//! operations, and schemathesis checks the live API against it.

use serde_json::{Value, json};

use super::{Action, ROUTES};

fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    })
}

fn ok(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

fn string_param(name: &str, description: &str, example: &str) -> Value {
    json!({
        "name": name, "in": "path", "required": true, "description": description,
        "schema": {"type": "string"}, "example": example
    })
}

/// A database, schema or table name: 1 to 63 characters without NUL.
fn name_param(name: &str, description: &str, example: &str) -> Value {
    let mut p = string_param(name, description, example);
    p["schema"] =
        json!({"type": "string", "minLength": 1, "maxLength": 63, "pattern": "^[^\\u0000]+$"});
    p
}

/// A role name, as the API accepts it.
fn role_param() -> Value {
    json!({
        "name": "name", "in": "path", "required": true, "description": "Role name", "example": "temp_reader",
        "schema": {"type": "string", "pattern": "^(?!pg_)[a-z_][a-z0-9_]{0,62}$"}
    })
}

fn nullable(kind: &str) -> Value {
    json!({"type": kind, "nullable": true})
}

fn array_of(key: &str, item: Value) -> Value {
    json!({
        "type": "object", "required": [key], "additionalProperties": false,
        "properties": {key: {"type": "array", "items": item}}
    })
}

/// Summary, parameters, success response and extra error responses of an operation.
type OperationParts = (
    &'static str,
    Vec<Value>,
    (&'static str, Value),
    Vec<(&'static str, &'static str)>,
);

/// The operation object of one action. The `target` parameter is a plain string with the
/// config's name rule: the document is served without authentication, so it must not tell
/// who can reach it which targets exist.
fn operation(action: Action) -> Value {
    let mut target = string_param("target", "Target name from the config", "main");
    target["schema"]["pattern"] = json!("^[a-z0-9_-]+$");
    let database = name_param("database", "Database name", "postgres");
    let (summary, parameters, success, extra): OperationParts = match action {
        Action::ListTargets => (
            "Targets the token may access, with their last collection status",
            vec![],
            (
                "200",
                ok(
                    "Targets",
                    array_of("targets", json!({"$ref": "#/components/schemas/Target"})),
                ),
            ),
            vec![],
        ),
        Action::Health => (
            "Live server health; an unreachable server is 200 with status OFFLINE",
            vec![target],
            (
                "200",
                ok("Health", json!({"$ref": "#/components/schemas/Health"})),
            ),
            vec![("404", "Unknown target")],
        ),
        Action::Sessions => (
            "Client sessions, oldest statement first (never Mesa's own)",
            vec![
                target,
                json!({"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}}),
                json!({"name": "include_idle", "in": "query", "required": false, "schema": {"type": "boolean", "default": false}}),
            ],
            (
                "200",
                ok(
                    "Sessions",
                    array_of("sessions", json!({"$ref": "#/components/schemas/Session"})),
                ),
            ),
            vec![
                ("404", "Unknown target"),
                ("422", "Invalid query parameter"),
            ],
        ),
        Action::Terminate | Action::Cancel => (
            if action == Action::Terminate {
                "Terminate a client session (pg_terminate_backend)"
            } else {
                "Cancel a client session's running statement (pg_cancel_backend)"
            },
            vec![
                target,
                json!({
                    "name": "pid", "in": "path", "required": true, "example": 1,
                    "description": "Backend process id",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 2147483647}
                }),
            ],
            (
                "200",
                ok(
                    "Signalled",
                    json!({
                        "type": "object", "required": ["pid", "result"], "additionalProperties": false,
                        "properties": {"pid": {"type": "integer"}, "result": {"type": "string", "enum": ["terminated", "cancelled"]}}
                    }),
                ),
            ),
            vec![
                ("404", "Unknown target or no such backend"),
                (
                    "409",
                    "Refused: Mesa's own, a non-client or a superuser's backend",
                ),
                ("422", "Invalid pid"),
            ],
        ),
        Action::CreateUser => (
            "Create a role; the password is sent as a SCRAM-SHA-256 verifier, a generated one is returned once",
            vec![target],
            (
                "201",
                ok(
                    "Created",
                    json!({"$ref": "#/components/schemas/CreatedUser"}),
                ),
            ),
            vec![
                (
                    "400",
                    "Malformed JSON, or the token's expiry policy (require_expiry, max_valid_for)",
                ),
                (
                    "403",
                    "The token lacks the scope or the target, a member_of role is not in the target's admin.grantable_roles or has (or reaches) a dangerous attribute, or PostgreSQL denied the action",
                ),
                ("404", "Unknown target or member_of role"),
                ("409", "The role exists"),
                ("413", "Body larger than 16 KiB"),
                ("422", "Invalid role name, password or field"),
            ],
        ),
        Action::BulkTerminate => (
            "Terminate (or cancel) every client session matching a filter, each checked and pinned as the single-session route does; at most max_count, else nothing; dry_run lists without signalling",
            vec![target],
            (
                "200",
                ok(
                    "Matched sessions, each with its outcome",
                    json!({
                        "type": "object", "required": ["mode", "dry_run", "matched", "sessions"], "additionalProperties": false,
                        "properties": {
                            "mode": {"type": "string", "enum": ["terminate", "cancel"]},
                            "dry_run": {"type": "boolean"}, "matched": {"type": "integer"},
                            "sessions": {"type": "array", "items": {"$ref": "#/components/schemas/BulkSession"}}
                        }
                    }),
                ),
            ),
            vec![
                ("404", "Unknown target"),
                (
                    "409",
                    "More sessions match than max_count (too-many-matches, with `matched`); nothing was signalled",
                ),
                ("413", "Body larger than 16 KiB"),
                ("422", "Invalid filter, mode or max_count"),
            ],
        ),
        Action::ListUsers => (
            "The roles Mesa created on the server (by the mark on the role), with creation time, expiry, memberships and open sessions",
            vec![target],
            (
                "200",
                ok(
                    "Managed roles",
                    array_of("users", json!({"$ref": "#/components/schemas/ManagedUser"})),
                ),
            ),
            vec![("404", "Unknown target")],
        ),
        Action::DeleteUser => (
            "Revoke a Mesa-managed role: NOLOGIN, its sessions terminated, then dropped (never postgres, Mesa's own logins, a superuser or a role Mesa did not create)",
            vec![target, role_param()],
            (
                "200",
                ok(
                    "Dropped",
                    json!({
                        "type": "object", "required": ["name", "result", "sessions_terminated"], "additionalProperties": false,
                        "properties": {"name": {"type": "string"}, "result": {"type": "string", "enum": ["dropped"]}, "sessions_terminated": {"type": "integer"}}
                    }),
                ),
            ),
            vec![
                ("404", "Unknown target or role"),
                (
                    "409",
                    "Not managed by Mesa (not-managed), untouchable (refused), or it owns objects (owns-objects: it stays NOLOGIN; `owned` lists them)",
                ),
                ("422", "Invalid role name"),
            ],
        ),
        Action::RotatePassword => (
            "Set a new password on a Mesa-managed role (sent as a SCRAM-SHA-256 verifier); a generated one is returned once",
            vec![target, role_param()],
            (
                "200",
                ok(
                    "Rotated",
                    json!({
                        "type": "object", "required": ["name", "result"], "additionalProperties": false,
                        "properties": {"name": {"type": "string"}, "result": {"type": "string", "enum": ["rotated"]},
                                       "password": {"type": "string", "description": "Only when generated; shown once"}}
                    }),
                ),
            ),
            vec![
                ("404", "Unknown target or role"),
                ("409", "Not managed by Mesa, or untouchable"),
                ("413", "Body larger than 16 KiB"),
                ("422", "Invalid role name or password"),
            ],
        ),
        Action::Databases => (
            "Non-template databases with owner, encoding and size",
            vec![target],
            (
                "200",
                ok(
                    "Databases",
                    array_of(
                        "databases",
                        json!({"$ref": "#/components/schemas/Database"}),
                    ),
                ),
            ),
            vec![("404", "Unknown target")],
        ),
        Action::Tables => (
            "Tables and views of a database",
            vec![target, database],
            (
                "200",
                ok(
                    "Tables",
                    array_of("tables", json!({"$ref": "#/components/schemas/Table"})),
                ),
            ),
            vec![
                ("404", "Unknown target or database"),
                ("422", "Invalid name"),
            ],
        ),
        Action::Columns => (
            "Columns of a table, in order",
            vec![
                target,
                database,
                name_param("schema", "Schema name", "pg_catalog"),
                name_param("table", "Table name", "pg_class"),
            ],
            (
                "200",
                ok(
                    "Columns",
                    array_of("columns", json!({"$ref": "#/components/schemas/Column"})),
                ),
            ),
            vec![
                ("404", "Unknown target, database or table"),
                ("422", "Invalid name"),
            ],
        ),
        Action::OpenApi => (
            "This document",
            vec![],
            (
                "200",
                json!({"description": "OpenAPI 3 document", "content": {"application/json": {"schema": {"type": "object"}}}}),
            ),
            vec![],
        ),
    };
    let mut responses = serde_json::Map::new();
    responses.insert(success.0.to_owned(), success.1);
    if action != Action::OpenApi {
        for (code, text) in [
            ("401", "Missing or invalid bearer token"),
            (
                "403",
                "The token lacks the scope or the target, or PostgreSQL denied the action",
            ),
            ("429", "Rate limited; see Retry-After"),
            (
                "503",
                "The database is unreachable or refused Mesa, or the audit log cannot be written",
            ),
            ("504", "The database did not answer in time"),
        ] {
            responses.insert(code.to_owned(), problem(text));
        }
        if action != Action::ListTargets {
            responses.insert("400".to_owned(), problem("Malformed request"));
            responses.insert(
                "421".to_owned(),
                problem(
                    "The target belongs to another shard's replica (--shard.index/--shard.count)",
                ),
            );
        }
    }
    for (code, text) in extra {
        responses.insert(code.to_owned(), problem(text));
    }
    let mut op = json!({
        "operationId": action.as_str(),
        "summary": summary,
        "parameters": parameters,
        "responses": responses,
    });
    if let Some(scope) = action.scope() {
        op["description"] = json!(format!("Scope: {}", super::scope_name(scope)));
    } else {
        op["security"] = json!([]);
    }
    match action {
        Action::CreateUser => {
            op["requestBody"] = json!({
                "required": true,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewUser"}}}
            });
        }
        Action::BulkTerminate => {
            op["requestBody"] = json!({
                "required": true,
                "content": {"application/json": {"schema": {
                    "type": "object", "required": ["filter", "max_count"], "additionalProperties": false,
                    "properties": {
                        "filter": {
                            "type": "object", "additionalProperties": false, "minProperties": 1,
                            "properties": {
                                "state": {"type": "string", "maxLength": 1024, "pattern": "^[^\\u0000]*$", "example": "idle in transaction"},
                                "state_for_longer_than": {"type": "string", "pattern": "^[0-9]{1,4}(ms|s|m|h|d)$", "example": "10m"},
                                "usename": {"type": "string", "maxLength": 1024, "pattern": "^[^\\u0000]*$"},
                                "application_name": {"type": "string", "maxLength": 1024, "pattern": "^[^\\u0000]*$"},
                                "datname": {"type": "string", "maxLength": 1024, "pattern": "^[^\\u0000]*$"}
                            }
                        },
                        "mode": {"type": "string", "enum": ["terminate", "cancel"], "default": "terminate"},
                        "max_count": {"type": "integer", "minimum": 1, "maximum": 1000},
                        "dry_run": {"type": "boolean", "default": false}
                    }
                }}}
            });
        }
        Action::RotatePassword => {
            op["requestBody"] = json!({
                "required": false,
                "description": "Optional: the new password; omit to have one generated",
                "content": {"application/json": {"schema": {
                    "type": "object", "additionalProperties": false,
                    "properties": {"password": {"type": "string", "minLength": 16, "maxLength": 256, "pattern": "^[^\\u0000]*$"}}
                }}}
            });
        }
        Action::Terminate | Action::Cancel => {
            op["requestBody"] = json!({
                "required": false,
                "description": "Optional: pin the backend by the backend_start /sessions listed, so a reused pid is never signalled",
                "content": {"application/json": {"schema": {
                    "type": "object", "additionalProperties": false,
                    "properties": {"backend_start": {"type": "string", "format": "date-time", "example": "2026-11-27T04:28:46.123456Z"}}
                }}}
            });
        }
        Action::ListTargets
        | Action::Health
        | Action::Sessions
        | Action::ListUsers
        | Action::DeleteUser
        | Action::Databases
        | Action::Tables
        | Action::Columns
        | Action::OpenApi => {}
    }
    op
}

/// The whole document. It is the same for every config: it names no target.
pub fn document() -> Value {
    let mut paths = serde_json::Map::new();
    for route in ROUTES {
        let entry = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| json!({}));
        entry[route.method.as_str().to_ascii_lowercase()] = operation(route.action);
    }
    let time = json!({"type": "string", "format": "date-time"});
    let nullable_time = json!({"type": "string", "format": "date-time", "nullable": true});
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Mesa admin API",
            "version": crate::VERSION,
            "description": "Terminate and cancel sessions, create users, and inspect PostgreSQL servers. Every route but this document needs `Authorization: Bearer <token>`; tokens carry scopes (read, terminate, create_user, create_superuser) and a target allow-list."
        },
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Problem": {
                    "type": "object", "required": ["type", "title", "status", "detail"],
                    "properties": {
                        "type": {"type": "string"}, "title": {"type": "string"},
                        "status": {"type": "integer"}, "detail": {"type": "string"}
                    }
                },
                "Target": {
                    "type": "object", "additionalProperties": false,
                    "required": ["name", "driver", "endpoint", "status", "reason", "last_collection", "last_success", "duration_seconds"],
                    "properties": {
                        "name": {"type": "string"}, "driver": {"type": "string"}, "endpoint": {"type": "string"},
                        "status": {"type": "string", "enum": ["up", "down", "pending"]},
                        "reason": nullable("string"),
                        "last_collection": nullable_time, "last_success": nullable_time,
                        "duration_seconds": nullable("number")
                    }
                },
                "Health": {
                    "type": "object", "required": ["status"],
                    "properties": {
                        "status": {"type": "string", "enum": ["ONLINE", "OFFLINE"]},
                        "reason": {"type": "string"},
                        "version": {"type": "string"}, "short_version": {"type": "string"},
                        "max_connections": {"type": "integer"}, "superuser_reserved_connections": {"type": "integer"},
                        "client_sessions": {"type": "integer"}, "started_at": time, "uptime_seconds": {"type": "number"}
                    }
                },
                "Session": {
                    "type": "object", "additionalProperties": false,
                    "required": ["pid", "user", "database", "application_name", "client_addr", "state", "query",
                                 "wait_event_type", "wait_event", "backend_start", "xact_start", "query_start", "duration_seconds"],
                    "properties": {
                        "pid": {"type": "integer"}, "user": nullable("string"), "database": nullable("string"),
                        "application_name": {"type": "string"}, "client_addr": nullable("string"),
                        "state": nullable("string"), "query": {"type": "string"},
                        "wait_event_type": nullable("string"), "wait_event": nullable("string"),
                        "backend_start": nullable_time, "xact_start": nullable_time, "query_start": nullable_time,
                        "duration_seconds": nullable("number")
                    }
                },
                "NewUser": {
                    "type": "object", "required": ["name"], "additionalProperties": false,
                    "properties": {
                        "name": {"type": "string", "pattern": "^(?!pg_)[a-z_][a-z0-9_]{0,62}$", "description": "Lower-case letters, digits and _ (as an unquoted identifier reads), not starting with a digit or pg_"},
                        "password": {"type": "string", "minLength": 16, "maxLength": 256, "pattern": "^[^\\u0000]*$", "description": "Omit to have one generated"},
                        "superuser": {"type": "boolean", "default": false, "description": "Needs the create_superuser scope"},
                        "login": {"type": "boolean", "default": true},
                        "valid_for": {"type": "string", "pattern": "^[1-9][0-9]{0,3}(s|m|h|d)$", "example": "8h", "description": "The role's VALID UNTIL is the server's now plus this; the reaper ends its sessions and drops it after"},
                        "member_of": {"type": "array", "maxItems": 32, "uniqueItems": true, "items": {"type": "string", "pattern": "^(?!pg_)[a-z_][a-z0-9_]{0,62}$"}, "description": "Roles to grant, from the target's admin.grantable_roles"},
                        "connection_limit": {"type": "integer", "minimum": 0, "maximum": 262143}
                    }
                },
                "CreatedUser": {
                    "type": "object", "required": ["name", "superuser", "login", "valid_until", "member_of", "connection_limit"], "additionalProperties": false,
                    "properties": {
                        "name": {"type": "string"}, "superuser": {"type": "boolean"}, "login": {"type": "boolean"},
                        "valid_until": nullable_time, "member_of": {"type": "array", "items": {"type": "string"}},
                        "connection_limit": nullable("integer"),
                        "password": {"type": "string", "description": "Only when generated; shown once"}
                    }
                },
                "BulkSession": {
                    "type": "object", "additionalProperties": false,
                    "required": ["pid", "backend_start", "usename", "datname", "application_name", "state", "state_seconds", "outcome", "reason"],
                    "properties": {
                        "pid": {"type": "integer"}, "backend_start": nullable_time, "usename": nullable("string"),
                        "datname": nullable("string"), "application_name": {"type": "string"}, "state": nullable("string"),
                        "state_seconds": nullable("number"),
                        "outcome": {"type": "string", "enum": ["would_terminate", "would_cancel", "terminated", "cancelled", "skipped", "gone"]},
                        "reason": nullable("string")
                    }
                },
                "ManagedUser": {
                    "type": "object", "required": ["name", "created_at", "valid_until", "login", "member_of", "sessions", "connection_limit"], "additionalProperties": false,
                    "properties": {
                        "name": {"type": "string"}, "created_at": nullable_time, "valid_until": nullable_time,
                        "login": {"type": "boolean"}, "member_of": {"type": "array", "items": {"type": "string"}},
                        "sessions": {"type": "integer"}, "connection_limit": nullable("integer")
                    }
                },
                "Database": {
                    "type": "object", "required": ["name", "owner", "encoding", "size_bytes"], "additionalProperties": false,
                    "properties": {
                        "name": {"type": "string"}, "owner": {"type": "string"}, "encoding": {"type": "string"},
                        "size_bytes": nullable("integer")
                    }
                },
                "Table": {
                    "type": "object", "required": ["schema", "name", "kind"], "additionalProperties": false,
                    "properties": {
                        "schema": {"type": "string"}, "name": {"type": "string"},
                        "kind": {"type": "string", "enum": ["table", "partitioned_table", "view", "materialized_view", "foreign", "temporary"]}
                    }
                },
                "Column": {
                    "type": "object", "required": ["name", "data_type", "nullable", "default", "position"], "additionalProperties": false,
                    "properties": {
                        "name": {"type": "string"}, "data_type": {"type": "string"}, "nullable": {"type": "boolean"},
                        "default": nullable("string"), "position": {"type": "integer"}
                    }
                }
            }
        }
    })
}
