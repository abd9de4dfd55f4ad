//! The user routes: create (with expiry, checked memberships, a connection limit), list the
//! Mesa-managed roles, revoke one, rotate its password.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::{mutate, path, read_body, rfc3339};
use crate::config::Scope;
use crate::gateway::{Administrator, ManagedRole, NewUser, RoleName};
use crate::http::admin::AdminState;
use crate::http::admin::audit::AuditSubject;
use crate::http::admin::extract::Authorized;
use crate::http::admin::problem::Problem;
use crate::secret::Secret;

pub(in crate::http::admin) async fn create_user(
    State(state): State<AdminState>,
    auth: Authorized,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let request = crate::http::admin::body::create_user(&read_body(body)?)?;
        if request.superuser() && !auth.caller.has(Scope::CreateSuperuser) {
            return Err(Problem::forbidden(
                "creating a superuser needs the create_superuser scope",
            ));
        }
        let user = request.validate()?;
        check_user_policy(&auth, &user)?;
        let gateway = auth.gateway()?;
        let subject = AuditSubject::Role {
            role: user.name.as_str().to_owned(),
            superuser: user.superuser,
            login: user.login,
            password: if user.password.is_some() {
                "chosen"
            } else {
                "generated"
            },
            valid_for: user
                .valid_for
                .map(|d| humantime::format_duration(d).to_string()),
            member_of: user
                .member_of
                .iter()
                .map(|r| r.as_str().to_owned())
                .collect(),
            connection_limit: user.connection_limit,
        };
        mutate(
            &state,
            &auth,
            subject,
            StatusCode::CREATED,
            move |deadline| async move {
                let created = gateway.create_user(user.clone(), deadline).await?;
                let body = json!({
                    "name": created.name.as_str(),
                    "superuser": user.superuser,
                    "login": user.login,
                    "valid_until": created.valid_until.map(rfc3339),
                    "member_of": user.member_of.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
                    "connection_limit": user.connection_limit,
                });
                Ok(with_password_once(body, created.generated_password))
            },
        )
        .await
    }
    .await;
    state.finish(auth.action, result)
}

/// `body` with a generated password added: returned once, to this caller only; never logged
/// or audited.
fn with_password_once(mut body: Value, generated: Option<Secret>) -> Value {
    if let Some(password) = generated {
        body["password"] = json!(password.expose());
    }
    body
}

/// The token's expiry policy and the target's allow-list of grantable roles, checked before
/// any database traffic.
fn check_user_policy(auth: &Authorized, user: &NewUser) -> Result<(), Problem> {
    match (user.valid_for, auth.caller.max_valid_for) {
        (None, _) if auth.caller.require_expiry => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "expiry-required",
                "this token may only create users that expire: set valid_for",
            ));
        }
        (Some(asked), Some(limit)) if asked > limit => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "expiry-too-long",
                format!(
                    "valid_for {} is longer than this token's max_valid_for of {}",
                    humantime::format_duration(asked),
                    humantime::format_duration(limit)
                ),
            ));
        }
        _ => {}
    }
    let target = auth.target()?;
    for role in &user.member_of {
        if !target.config.grantable_roles.contains(role) {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "not-grantable",
                format!(
                    "role {role} is not in target {}'s admin.grantable_roles; nothing was created",
                    target.config.name
                ),
            ));
        }
    }
    Ok(())
}

fn managed_json(r: &ManagedRole) -> Value {
    json!({
        "name": r.name,
        "created_at": r.created_at.map(rfc3339),
        "valid_until": r.valid_until.map(rfc3339),
        "login": r.can_login,
        "member_of": r.member_of,
        "sessions": r.sessions,
        "connection_limit": r.connection_limit,
    })
}

pub(in crate::http::admin) async fn list_users(
    State(state): State<AdminState>,
    auth: Authorized,
) -> Response {
    let result = async {
        let deadline = state.read_deadline(&auth)?;
        let list = auth.gateway()?.managed_users(deadline).await?;
        let list: Vec<Value> = list.iter().map(managed_json).collect();
        Ok(crate::http::admin::json(
            StatusCode::OK,
            json!({ "users": list }),
        ))
    }
    .await;
    state.finish(auth.action, result)
}

pub(in crate::http::admin) async fn delete_user(
    State(state): State<AdminState>,
    auth: Authorized,
    params: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    let result = async {
        let (_, name) = path(params)?;
        let name = RoleName::parse(&name)?;
        let gateway = auth.gateway()?;
        let subject = AuditSubject::Managed {
            role: name.as_str().to_owned(),
        };
        mutate(
            &state,
            &auth,
            subject,
            StatusCode::OK,
            move |deadline| async move {
                let dropped = gateway.drop_user(&name, deadline).await?;
                Ok(json!({
                    "name": name.as_str(),
                    "result": "dropped",
                    "sessions_terminated": dropped.sessions_terminated,
                }))
            },
        )
        .await
    }
    .await;
    state.finish(auth.action, result)
}

pub(in crate::http::admin) async fn rotate_password(
    State(state): State<AdminState>,
    auth: Authorized,
    params: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let (_, name) = path(params)?;
        let name = RoleName::parse(&name)?;
        let chosen = crate::http::admin::body::rotate(&read_body(body)?)?;
        let gateway = auth.gateway()?;
        let subject = AuditSubject::Managed {
            role: name.as_str().to_owned(),
        };
        mutate(
            &state,
            &auth,
            subject,
            StatusCode::OK,
            move |deadline| async move {
                let generated = gateway.rotate_password(&name, chosen, deadline).await?;
                let body = json!({ "name": name.as_str(), "result": "rotated" });
                Ok(with_password_once(body, generated))
            },
        )
        .await
    }
    .await;
    state.finish(auth.action, result)
}
