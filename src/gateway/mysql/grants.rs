//! Roles a new account is granted (`member_of`), MariaDB's: each checked on the server before
//! the account exists, and what the grants gave checked again after them.
//!
//! A role may be granted when it, and every role it reaches through roles granted to roles,
//! holds no global privilege but data access (SELECT, INSERT, UPDATE, DELETE on `*.*`) and
//! may not pass any of its schema privileges on (`GRANT OPTION`). Everything else (SUPER,
//! CREATE USER, FILE, PROCESS, CONNECTION ADMIN, replication, DDL on every schema, ...) would
//! hand out more than data access. The reach is read from the grant tables
//! (`mysql.global_priv`, `mysql.roles_mapping`, `mysql.db`), which the admin login reads for
//! the KILL check too.

use mysql_async::Params;

use super::connect::{Session, col};
use crate::gateway::{Deadline, GatewayError, RoleName};

/// Every role `start` (a role, or an account's user name) reaches, itself first at depth 0:
/// (name, its global privilege bits beyond data access (`& ~15`: MariaDB's `access` bits of
/// SELECT, INSERT, UPDATE and DELETE are 0 to 3), schemas it may grant on, is a role, depth).
const REACH: &str = "\
WITH RECURSIVE reach(name, depth) AS (
  SELECT CAST(? AS CHAR(128)), 0
  UNION
  SELECT m.Role, reach.depth + 1 FROM mysql.roles_mapping m JOIN reach ON m.User = reach.name
   WHERE reach.depth < 32)
SELECT reach.name,
       COALESCE(MAX(CAST(JSON_VALUE(g.Priv, '$.access') AS UNSIGNED) & ~15), 0),
       (SELECT COUNT(*) FROM mysql.db d WHERE d.User = reach.name AND d.Grant_priv = 'Y'),
       MAX(COALESCE(JSON_EXTRACT(g.Priv, '$.is_role'), 'false') = 'true'),
       MIN(reach.depth)
  FROM reach LEFT JOIN mysql.global_priv g ON g.User = reach.name
 GROUP BY reach.name
 ORDER BY MIN(reach.depth), reach.name";

/// One row of [`REACH`].
struct Reached {
    name: String,
    beyond_data: u64,
    grants_on: u64,
    is_role: bool,
    depth: u64,
}

async fn reach(
    s: &mut Session,
    start: &str,
    deadline: &Deadline,
) -> Result<Vec<Reached>, GatewayError> {
    s.rows_with(REACH, Params::Positional(vec![start.into()]), deadline)
        .await?
        .iter()
        .map(|r| {
            Ok(Reached {
                name: col(r, 0)?,
                beyond_data: col(r, 1)?,
                grants_on: col(r, 2)?,
                is_role: col::<i64>(r, 3)? != 0,
                depth: col(r, 4)?,
            })
        })
        .collect()
}

/// The refusal of the first role in `reached` that hands out more than data access, named
/// after `origin` (the role asked for).
fn unsafe_in<'a>(
    origin: &str,
    reached: impl IntoIterator<Item = &'a Reached>,
) -> Option<GatewayError> {
    reached
        .into_iter()
        .find(|r| r.beyond_data != 0 || r.grants_on != 0)
        .map(|r| {
            let what = if r.beyond_data != 0 {
                "global privileges beyond data access"
            } else {
                "GRANT OPTION on a schema"
            };
            let how = if r.name == origin {
                "directly".to_owned()
            } else {
                format!("through {}", r.name)
            };
            GatewayError::UnsafeGrant {
                role: origin.to_owned(),
                why: format!("it has {what} {how}"),
            }
        })
}

/// Checks each role of `roles` before the account exists: a role, and safe to grant.
pub(super) async fn check(
    s: &mut Session,
    roles: &[RoleName],
    deadline: &Deadline,
) -> Result<(), GatewayError> {
    for role in roles {
        let reached = reach(s, role.as_str(), deadline).await?;
        if !reached.first().is_some_and(|r| r.depth == 0 && r.is_role) {
            return Err(GatewayError::NotFound {
                what: format!("role {role}"),
            });
        }
        if let Some(refusal) = unsafe_in(role.as_str(), &reached) {
            return Err(refusal);
        }
    }
    Ok(())
}

/// Grants `roles` to `account` (`'name'@'host'`, already checked); then checks what the
/// grants gave, by the account's own reach, so a role changed between the check and the
/// grant is caught. No default role is set: `SET DEFAULT ROLE ... FOR` another account needs
/// write access to the grant tables, which Mesa's admin login must not have; the account
/// runs `SET ROLE` (or `SET DEFAULT ROLE` for itself, which needs no privilege).
pub(super) async fn grant(
    s: &mut Session,
    user: &RoleName,
    account: &str,
    roles: &[RoleName],
    deadline: &Deadline,
) -> Result<(), GatewayError> {
    for role in roles {
        // Both names are the typed edge's ([a-z_][a-z0-9_]*).
        s.drop_result(&format!("GRANT {role} TO {account}"), deadline)
            .await
            .map_err(|e| match e.sqlstate() {
                // ER_ACCESS_DENIED_NO_PASSWORD_ERROR: the grantor lacks ADMIN OPTION.
                Some("1698") => GatewayError::PermissionDenied {
                    action: format!(
                        "granting role {role}: the admin login needs it WITH ADMIN OPTION"
                    ),
                },
                _ => e,
            })?;
    }
    // The account itself (depth 0) was created without privileges; every role it now
    // reaches must still be safe.
    let reached = reach(s, user.as_str(), deadline).await?;
    let roles_reached: Vec<&Reached> = reached.iter().filter(|r| r.depth > 0).collect();
    match roles_reached.first() {
        Some(first) => match unsafe_in(&first.name, roles_reached.iter().copied()) {
            Some(refusal) => Err(refusal),
            None => Ok(()),
        },
        None => Ok(()),
    }
}
