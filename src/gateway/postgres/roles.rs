//! Mesa-managed roles: created with an expiry and checked memberships, listed, rotated,
//! dropped, and reaped after expiry.
//!
//! A role is *managed* when its comment starts with [`sql::MANAGED_MARK`] (see there why a
//! tenant cannot forge it). Every operation that changes an existing role first reads it by
//! name ([`sql::ROLE_STATE`]) and refuses, whatever its mark: `postgres`, Mesa's own logins
//! and every superuser. Names reach DDL only as validated [`RoleName`]s or as names read from
//! the server, and are always quoted with `escape_identifier`. A name is checked once and then
//! used again in DDL, so each `ALTER`/`DROP` runs in a transaction that commits only if the
//! name still is the checked role once the role's row is locked ([`on_same_role`]), and a
//! grant is checked again over the OIDs it gave ([`sql::GRANTED_REACH`]).
//!
//! Each function returns `Result<Result<T, GatewayError>, tokio_postgres::Error>`: the outer
//! error is the server's or the connection's (classified by the caller), the inner one Mesa's
//! own refusal.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use postgres_protocol::escape::{escape_identifier, escape_literal};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Error};

use super::admin::create_role_statement;
use super::sql;
use crate::gateway::{DroppedRole, GatewayError, ManagedRole, NewUser, ReapStep, Reaped, RoleName};
use crate::secret::Secret;

/// Roles whose members can read or write the server's files or run programs as its OS user:
/// as dangerous to hand out as SUPERUSER.
const SERVER_FILE_ROLES: [&str; 3] = [
    "pg_execute_server_program",
    "pg_read_server_files",
    "pg_write_server_files",
];

/// The logins a management call never touches: `postgres` and Mesa's own.
pub(super) struct Untouchable<'a> {
    /// Mesa's monitoring and admin logins.
    pub own: [&'a str; 2],
}

impl Untouchable<'_> {
    /// Whether `name` is one of Mesa's own logins.
    pub(super) fn is_own(&self, name: &str) -> bool {
        self.own.contains(&name)
    }

    fn refuses(&self, name: &str) -> Option<String> {
        if name == "postgres" {
            Some("Mesa never alters or drops the postgres role".to_owned())
        } else if self.is_own(name) {
            Some(format!(
                "{name} is one of Mesa's own logins; Mesa never alters or drops them"
            ))
        } else {
            None
        }
    }
}

/// Creates `user` with the SCRAM verifier of `password`, its memberships and Mesa's mark, in
/// one transaction. Returns its `VALID UNTIL`.
pub(super) async fn create(
    client: &Client,
    user: &NewUser,
    password: &Secret,
) -> Result<Result<Option<SystemTime>, GatewayError>, Error> {
    client.batch_execute("BEGIN").await?;
    let secs = user.valid_for.map(|d| d.as_secs_f64());
    let row = client.query_one(sql::NOW_AND_EXPIRY, &[&secs]).await?;
    let now: f64 = row.try_get(0)?;
    let until: Option<SystemTime> = row.try_get(1)?;
    if let Err(refused) = check_grants(client, &user.member_of).await? {
        client.batch_execute("ROLLBACK").await?;
        return Ok(Err(refused));
    }
    client
        .batch_execute(&create_role_statement(user, password, until))
        .await?;
    if !user.member_of.is_empty() {
        let roles: Vec<String> = user
            .member_of
            .iter()
            .map(|r| escape_identifier(r.as_str()))
            .collect();
        client
            .batch_execute(&format!(
                "GRANT {} TO {}",
                roles.join(", "),
                escape_identifier(user.name.as_str())
            ))
            .await?;
        // Again, in the same transaction and over what the grant gave (by OID): a role
        // altered, or renamed into an allow-listed name, since the check is caught here, and
        // nothing is kept.
        if let Err(refused) = check_granted(client, &user.name).await? {
            client.batch_execute("ROLLBACK").await?;
            return Ok(Err(refused));
        }
    }
    client
        .batch_execute(&mark_statement(&user.name, now))
        .await?;
    client.batch_execute("COMMIT").await?;
    Ok(Ok(until))
}

/// `COMMENT ON ROLE` with Mesa's mark and the creation time (Unix seconds, server clock).
fn mark_statement(name: &RoleName, now: f64) -> String {
    format!(
        "COMMENT ON ROLE {} IS {}",
        escape_identifier(name.as_str()),
        escape_literal(&format!(
            "{}created_at={}",
            sql::MANAGED_MARK,
            now.floor() as i64
        ))
    )
}

/// Refuses a grant of any role that is, or reaches through memberships, a superuser or a
/// role with CREATEROLE, CREATEDB, REPLICATION or BYPASSRLS, or a server-file role; and one
/// of a role that does not exist. Checked by name, before the grant.
async fn check_grants(
    client: &Client,
    roles: &[RoleName],
) -> Result<Result<(), GatewayError>, Error> {
    for role in roles {
        let rows = client.query(sql::GRANT_REACH, &[&role.as_str()]).await?;
        if rows.is_empty() {
            return Ok(Err(GatewayError::NotFound {
                what: format!("role {role}"),
            }));
        }
        if let Some(refused) = unsafe_reach(&rows)? {
            return Ok(Err(refused));
        }
    }
    Ok(Ok(()))
}

/// The same rule over what `user` was actually granted (by OID, after the `GRANT`).
async fn check_granted(
    client: &Client,
    user: &RoleName,
) -> Result<Result<(), GatewayError>, Error> {
    let rows = client.query(sql::GRANTED_REACH, &[&user.as_str()]).await?;
    Ok(match unsafe_reach(&rows)? {
        Some(refused) => Err(refused),
        None => Ok(()),
    })
}

/// The first row of a reach ([`sql::GRANT_REACH`], [`sql::GRANTED_REACH`]) that makes its
/// origin unsafe to grant, as the refusal.
fn unsafe_reach(rows: &[tokio_postgres::Row]) -> Result<Option<GatewayError>, Error> {
    for row in rows {
        let origin: String = row.try_get(0)?;
        let reached: String = row.try_get(1)?;
        let mut has = Vec::new();
        for (i, attribute) in [
            (2, "SUPERUSER"),
            (3, "CREATEROLE"),
            (4, "CREATEDB"),
            (5, "REPLICATION"),
            (6, "BYPASSRLS"),
        ] {
            if row.try_get::<_, bool>(i)? {
                has.push(attribute);
            }
        }
        if SERVER_FILE_ROLES.contains(&reached.as_str()) {
            has.push("access to the server's files and programs");
        }
        if !has.is_empty() {
            let how = if reached == origin {
                "directly".to_owned()
            } else {
                format!("through its membership in {reached}")
            };
            return Ok(Some(GatewayError::UnsafeGrant {
                role: origin,
                why: format!("it has {} {how}", has.join(", ")),
            }));
        }
    }
    Ok(None)
}

/// Every managed role.
pub(super) async fn managed(client: &Client) -> Result<Vec<ManagedRole>, Error> {
    let rows = client.query(sql::MANAGED_ROLES, &[]).await?;
    rows.iter()
        .map(|row| {
            let comment: Option<String> = row.try_get(1)?;
            let limit: i32 = row.try_get(4)?;
            let sessions: i32 = row.try_get(6)?;
            Ok(ManagedRole {
                name: row.try_get(0)?,
                created_at: comment.as_deref().and_then(created_at),
                valid_until: row.try_get::<_, Option<f64>>(2)?.and_then(epoch_time),
                can_login: row.try_get(3)?,
                connection_limit: u32::try_from(limit).ok(),
                member_of: row.try_get(5)?,
                sessions: u32::try_from(sessions).unwrap_or(0),
            })
        })
        .collect()
}

/// The creation time in Mesa's mark, if it reads as one.
fn created_at(comment: &str) -> Option<SystemTime> {
    let rest = comment.strip_prefix(sql::MANAGED_MARK)?;
    let secs = rest
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("created_at="))?;
    epoch_time(secs.parse::<u64>().ok()? as f64)
}

fn epoch_time(secs: f64) -> Option<SystemTime> {
    (secs.is_finite() && secs >= 0.0).then(|| UNIX_EPOCH + Duration::from_secs_f64(secs))
}

/// The OID of managed role `name`, or why Mesa will not touch it.
async fn managed_oid(
    client: &Client,
    name: &RoleName,
    untouchable: &Untouchable<'_>,
) -> Result<Result<u32, GatewayError>, Error> {
    if let Some(reason) = untouchable.refuses(name.as_str()) {
        return Ok(Err(GatewayError::Refused { reason }));
    }
    let Some(row) = client.query_opt(sql::ROLE_STATE, &[&name.as_str()]).await? else {
        return Ok(Err(GatewayError::NotFound {
            what: format!("role {name}"),
        }));
    };
    let oid: u32 = row.try_get(0)?;
    if row.try_get::<_, bool>(1)? {
        return Ok(Err(GatewayError::Refused {
            reason: format!("{name} is a superuser; Mesa never alters or drops a superuser"),
        }));
    }
    if !row.try_get::<_, bool>(2)? {
        return Ok(Err(GatewayError::NotManaged {
            role: name.as_str().to_owned(),
        }));
    }
    Ok(Ok(oid))
}

/// Terminates every session of the role with `oid`; how many were signalled.
async fn terminate_sessions(client: &Client, oid: u32) -> Result<u32, Error> {
    let rows = client.query(sql::TERMINATE_ROLE_SESSIONS, &[&oid]).await?;
    let mut signalled = 0;
    for row in rows {
        if row.try_get::<_, Option<bool>>(0)? == Some(true) {
            signalled += 1;
        }
    }
    Ok(signalled)
}

/// Runs `lock` (an `ALTER ROLE` of `name`, which takes the role's row lock) and then `then`,
/// in one transaction, committing only if `name` still is the role with `oid`, managed and not
/// a superuser, once the lock is held. So a role renamed (by a CREATEROLE holder) between
/// Mesa's check and its DDL is refused, never acted on: while the lock is held, neither this
/// role's name nor its row can change.
async fn on_same_role(
    client: &Client,
    name: &str,
    oid: u32,
    lock: &str,
    then: Option<&str>,
) -> Result<Result<(), GatewayError>, Error> {
    client.batch_execute("BEGIN").await?;
    let outcome = async {
        client.batch_execute(lock).await?;
        let still = client.query_opt(sql::ROLE_STATE, &[&name]).await?;
        let same = match still {
            Some(row) => {
                row.try_get::<_, u32>(0)? == oid
                    && !row.try_get::<_, bool>(1)?
                    && row.try_get::<_, bool>(2)?
            }
            None => false,
        };
        if !same {
            return Ok(false);
        }
        if let Some(then) = then {
            client.batch_execute(then).await?;
        }
        Ok(true)
    }
    .await;
    match outcome {
        Ok(true) => {
            client.batch_execute("COMMIT").await?;
            Ok(Ok(()))
        }
        Ok(false) => {
            client.batch_execute("ROLLBACK").await?;
            Ok(Err(GatewayError::Refused {
                reason: format!(
                    "role {name} was renamed or changed while Mesa acted on it; nothing was done"
                ),
            }))
        }
        Err(e) => {
            // The connection stays usable for the next role (the reaper goes on).
            let _ = client.batch_execute("ROLLBACK").await;
            Err(e)
        }
    }
}

/// `ALTER ROLE name NOLOGIN`.
fn nologin(name: &str) -> String {
    format!("ALTER ROLE {} NOLOGIN", escape_identifier(name))
}

/// `DROP ROLE name`.
fn drop_statement(name: &str) -> String {
    format!("DROP ROLE {}", escape_identifier(name))
}

/// Revokes managed role `name`: `NOLOGIN`, its sessions terminated, then dropped. When it
/// owns objects or holds privileges it stays `NOLOGIN` and the server's list is returned.
pub(super) async fn drop_role(
    client: &Client,
    name: &RoleName,
    untouchable: &Untouchable<'_>,
) -> Result<Result<DroppedRole, GatewayError>, Error> {
    let oid = match managed_oid(client, name, untouchable).await? {
        Ok(oid) => oid,
        Err(refused) => return Ok(Err(refused)),
    };
    let name = name.as_str();
    if let Err(refused) = on_same_role(client, name, oid, &nologin(name), None).await? {
        return Ok(Err(refused));
    }
    let sessions_terminated = terminate_sessions(client, oid).await?;
    match on_same_role(
        client,
        name,
        oid,
        &nologin(name),
        Some(&drop_statement(name)),
    )
    .await
    {
        Ok(Ok(())) => Ok(Ok(DroppedRole {
            sessions_terminated,
        })),
        Ok(Err(refused)) => Ok(Err(refused)),
        Err(e) => match owned_objects(&e) {
            Some(owned) => Ok(Err(GatewayError::OwnsObjects {
                role: name.to_owned(),
                owned,
            })),
            None => Err(e),
        },
    }
}

/// What a `DROP ROLE` refused for dependent objects listed, one entry per detail line.
fn owned_objects(e: &Error) -> Option<Vec<String>> {
    if e.code() != Some(&SqlState::DEPENDENT_OBJECTS_STILL_EXIST) {
        return None;
    }
    let detail = e.as_db_error().and_then(|db| db.detail()).unwrap_or("");
    Some(
        detail
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
    )
}

/// Sets a new password (its SCRAM verifier) on managed role `name`.
pub(super) async fn rotate(
    client: &Client,
    name: &RoleName,
    password: &Secret,
    untouchable: &Untouchable<'_>,
) -> Result<Result<(), GatewayError>, Error> {
    let oid = match managed_oid(client, name, untouchable).await? {
        Ok(oid) => oid,
        Err(refused) => return Ok(Err(refused)),
    };
    let verifier = postgres_protocol::password::scram_sha_256(password.expose().as_bytes());
    let alter = format!(
        "ALTER ROLE {} PASSWORD {}",
        escape_identifier(name.as_str()),
        escape_literal(&verifier)
    );
    on_same_role(client, name.as_str(), oid, &alter, None).await
}

/// One reaper round: every managed role past its `VALID UNTIL` is set `NOLOGIN` and its
/// sessions are terminated; one expired for `drop_after` or longer is dropped. A step that
/// fails is reported and the round goes on; the next round tries again.
pub(super) async fn reap(
    client: &Client,
    drop_after: Duration,
    untouchable: &Untouchable<'_>,
) -> Result<Vec<Reaped>, Error> {
    let rows = client.query(sql::EXPIRED_MANAGED_ROLES, &[]).await?;
    let mut done = Vec::new();
    for row in rows {
        let name: String = row.try_get(0)?;
        let oid: u32 = row.try_get(1)?;
        let can_login: bool = row.try_get(2)?;
        let superuser: bool = row.try_get(3)?;
        let expired_for: f64 = row.try_get(4)?;
        if superuser || untouchable.refuses(&name).is_some() {
            continue;
        }
        let step = |step, sessions, detail: Option<String>| Reaped {
            role: name.clone(),
            step,
            sessions,
            detail,
        };
        if can_login {
            match on_same_role(client, &name, oid, &nologin(&name), None).await {
                Ok(Ok(())) => done.push(step(ReapStep::Disabled, 0, None)),
                Ok(Err(refused)) => {
                    done.push(step(ReapStep::Failed, 0, Some(refused.to_string())));
                    continue;
                }
                Err(e) => {
                    done.push(step(ReapStep::Failed, 0, Some(server_message(&e))));
                    continue;
                }
            }
        }
        match terminate_sessions(client, oid).await {
            Ok(0) => {}
            Ok(n) => done.push(step(ReapStep::Terminated, n, None)),
            Err(e) => done.push(step(ReapStep::Failed, 0, Some(server_message(&e)))),
        }
        if expired_for >= drop_after.as_secs_f64() {
            let drop = drop_statement(&name);
            match on_same_role(client, &name, oid, &nologin(&name), Some(&drop)).await {
                Ok(Ok(())) => done.push(step(ReapStep::Dropped, 0, None)),
                Ok(Err(refused)) => {
                    done.push(step(ReapStep::Failed, 0, Some(refused.to_string())));
                }
                Err(e) => {
                    let why = match owned_objects(&e) {
                        Some(owned) => {
                            format!("owns objects or holds privileges: {}", owned.join("; "))
                        }
                        None => server_message(&e),
                    };
                    done.push(step(ReapStep::Failed, 0, Some(why)));
                }
            }
        }
    }
    Ok(done)
}

/// The server's message for a failed step (its SQLSTATE and primary message).
fn server_message(e: &Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mark_carries_the_creation_time_and_reads_back() {
        let name = RoleName::parse("temp_reader").expect("valid");
        let sql = mark_statement(&name, 1_764_550_000.7);
        assert_eq!(
            sql,
            "COMMENT ON ROLE \"temp_reader\" IS 'mesa:managed created_at=1764550000'"
        );
        assert_eq!(
            created_at("mesa:managed created_at=1764550000"),
            Some(UNIX_EPOCH + Duration::from_secs(1_764_550_000))
        );
        assert_eq!(created_at("mesa:managed"), None);
        assert_eq!(created_at("mesa:managed created_at=soon"), None);
        assert_eq!(created_at("someone else's created_at=1"), None);
    }

    #[test]
    fn the_sql_reads_the_mark_the_comment_writes() {
        // `concat!` cannot take the constant, so the statements spell the mark and its length.
        let test = format!(
            "pg_catalog.substr(d.description, 1, {}) OPERATOR(pg_catalog.=) '{}'",
            sql::MANAGED_MARK.len(),
            sql::MANAGED_MARK
        );
        for statement in [
            sql::ROLE_STATE,
            sql::MANAGED_ROLES,
            sql::EXPIRED_MANAGED_ROLES,
        ] {
            assert!(statement.contains(&test), "{statement}");
        }
    }

    #[test]
    fn postgres_and_mesas_own_logins_are_untouchable() {
        let u = Untouchable {
            own: ["mesa_monitor", "mesa_admin"],
        };
        assert!(u.refuses("postgres").is_some());
        assert!(u.refuses("mesa_monitor").is_some());
        assert!(u.refuses("mesa_admin").is_some());
        assert!(u.refuses("temp_reader").is_none());
    }
}
