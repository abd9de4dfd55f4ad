//! Create user: one `CREATE USER` whose password travels only as its stored hash, so neither
//! the general log, the slow log, the binlog nor the processlist ever holds the plaintext.
//!
//! The hash is `mysql_native_password`'s (`*` and the upper-case hex of SHA1(SHA1(password))),
//! which MariaDB takes as `IDENTIFIED BY PASSWORD '*..'` and MySQL 8.0 as
//! `IDENTIFIED WITH mysql_native_password AS '*..'`. The account is `'name'@'host'`, the name
//! from the typed edge (`[a-z_][a-z0-9_]*`) and the host from the target's `account_host`
//! (validated when the config loaded): nothing in the statement comes from a caller unchecked.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use sha1::{Digest, Sha1};

use super::connect::{Flavor, Session};
use super::grants;
use super::spec::AccountHost;
use crate::gateway::validate::chosen_or_generated;
use crate::gateway::{CreatedUser, Deadline, GatewayError, NewUser, RoleName};
use crate::secret::Secret;

const DAY: u64 = 24 * 3600;
/// MySQL's limit on `PASSWORD EXPIRE INTERVAL n DAY`.
const MAX_EXPIRY_DAYS: u64 = 65_535;
/// MySQL's longest user name (MariaDB allows 80).
const MYSQL_MAX_USER_CHARS: usize = 32;

/// A checked request, before any statement is sent.
pub(super) struct Plan {
    name: RoleName,
    host: AccountHost,
    password: Secret,
    generated: Option<Secret>,
    login: bool,
    expire_days: Option<u64>,
    connection_limit: Option<u32>,
    member_of: Vec<RoleName>,
}

/// Checks `user` against what MySQL can do; every refusal is made here, before the server is
/// asked anything.
pub(super) fn plan(user: NewUser, host: &AccountHost) -> Result<Plan, GatewayError> {
    if user.superuser {
        return Err(GatewayError::Refused {
            reason: "Mesa creates no privileged accounts on MySQL targets (SUPER or ALL has no counterpart of PostgreSQL's superuser it could check)".to_owned(),
        });
    }
    let expire_days = match user.valid_for {
        None => None,
        Some(d)
            if d.as_secs() % DAY == 0
                && d.as_secs() / DAY >= 1
                && d.as_secs() / DAY <= MAX_EXPIRY_DAYS =>
        {
            Some(d.as_secs() / DAY)
        }
        Some(_) => {
            return Err(GatewayError::InvalidInput {
                field: "valid_for",
                problem: format!(
                    "MySQL expires passwords in whole days (PASSWORD EXPIRE INTERVAL): give a multiple of 1d from 1d to {MAX_EXPIRY_DAYS}d"
                ),
            });
        }
    };
    if user.connection_limit == Some(0) {
        return Err(GatewayError::InvalidInput {
            field: "connection_limit",
            problem: "0 means no limit on MySQL; to forbid logins, set login: false (ACCOUNT LOCK)"
                .to_owned(),
        });
    }
    let (password, generated) = chosen_or_generated(user.password)?;
    Ok(Plan {
        name: user.name,
        host: host.clone(),
        password,
        generated,
        login: user.login,
        expire_days,
        connection_limit: user.connection_limit,
        member_of: user.member_of,
    })
}

/// `mysql_native_password`'s stored form of `password`.
pub(super) fn native_hash(password: &Secret) -> String {
    let once = Sha1::digest(password.expose().as_bytes());
    let twice = Sha1::digest(once);
    let mut out = String::with_capacity(41);
    out.push('*');
    for b in twice {
        let _ = write!(out, "{b:02X}");
    }
    out
}

/// The `CREATE USER` statement of `plan` on `flavor`.
fn statement(plan: &Plan, flavor: Flavor) -> String {
    let hash = native_hash(&plan.password);
    let account = format!("'{}'@'{}'", plan.name.as_str(), plan.host.as_str());
    let mut sql = match flavor {
        Flavor::Mariadb => format!("CREATE USER {account} IDENTIFIED BY PASSWORD '{hash}'"),
        Flavor::Mysql => {
            format!("CREATE USER {account} IDENTIFIED WITH mysql_native_password AS '{hash}'")
        }
    };
    if let Some(limit) = plan.connection_limit {
        let _ = write!(sql, " WITH MAX_USER_CONNECTIONS {limit}");
    }
    if !plan.login {
        sql.push_str(" ACCOUNT LOCK");
    }
    if let Some(days) = plan.expire_days {
        let _ = write!(sql, " PASSWORD EXPIRE INTERVAL {days} DAY");
    }
    sql
}

/// Creates the account of `plan`.
pub(super) async fn create(
    s: &mut Session,
    plan: Plan,
    deadline: &Deadline,
) -> Result<CreatedUser, GatewayError> {
    if s.flavor() == Flavor::Mysql && plan.name.as_str().chars().count() > MYSQL_MAX_USER_CHARS {
        return Err(GatewayError::InvalidInput {
            field: "name",
            problem: format!("MySQL user names have at most {MYSQL_MAX_USER_CHARS} characters"),
        });
    }
    if !plan.member_of.is_empty() {
        if s.flavor() == Flavor::Mysql {
            return Err(GatewayError::InvalidInput {
                field: "member_of",
                problem: "granting roles is built for MariaDB targets only; on MySQL grant them with your own tooling after the account exists".to_owned(),
            });
        }
        grants::check(s, &plan.member_of, deadline).await?;
    }
    let account = format!("'{}'@'{}'", plan.name, plan.host.as_str());
    s.drop_result(&statement(&plan, s.flavor()), deadline)
        .await
        .map_err(|e| match e.sqlstate() {
            Some("1396") => GatewayError::AlreadyExists {
                what: format!("account {account}"),
            },
            _ => e,
        })?;
    if !plan.member_of.is_empty()
        && let Err(e) = grants::grant(s, &plan.name, &account, &plan.member_of, deadline).await
    {
        // No partial action: the account goes again (DDL commits at once, so there is no
        // transaction to roll back). If even this fails, the error says so.
        return match s
            .drop_result(&format!("DROP USER {account}"), deadline)
            .await
        {
            Ok(()) => Err(e),
            Err(cleanup) => Err(GatewayError::Refused {
                reason: format!(
                    "granting the roles failed ({e}) and dropping the new account {account} failed too ({cleanup}): drop it by hand"
                ),
            }),
        };
    }
    Ok(CreatedUser {
        name: plan.name,
        generated_password: plan.generated,
        valid_until: plan
            .expire_days
            .and_then(|d| SystemTime::now().checked_add(Duration::from_secs(d * DAY))),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{AccountHost, Flavor, native_hash, plan, statement};
    use crate::gateway::NewUser;
    use crate::secret::Secret;

    #[test]
    fn the_native_hash_is_mysqls_password_function() {
        // SELECT PASSWORD('x') on MariaDB 10.11.
        assert_eq!(
            native_hash(&Secret::new("x")),
            "*B69027D44F6E5EDC07F1AEAD1477967B16F28227"
        );
    }

    fn user() -> NewUser {
        NewUser::new(
            "app_ro",
            Some(Secret::new("a-long-enough-password")),
            false,
            true,
        )
        .expect("valid")
    }

    #[test]
    fn the_statement_holds_the_hash_and_never_the_password() {
        let mut u = user()
            .with_expiry(Duration::from_secs(7 * 86_400))
            .expect("expiry");
        u = u.with_connection_limit(5).expect("limit");
        let p = plan(u, &AccountHost::localhost()).expect("plan");
        for flavor in [Flavor::Mariadb, Flavor::Mysql] {
            let sql = statement(&p, flavor);
            assert!(!sql.contains("a-long-enough-password"), "{sql}");
            assert!(
                sql.contains(&native_hash(&Secret::new("a-long-enough-password"))),
                "{sql}"
            );
            assert!(sql.contains("'app_ro'@'localhost'"), "{sql}");
            assert!(
                sql.ends_with("WITH MAX_USER_CONNECTIONS 5 PASSWORD EXPIRE INTERVAL 7 DAY"),
                "{sql}"
            );
        }
    }

    #[test]
    fn what_mysql_cannot_do_is_refused_before_any_statement() {
        let odd = user()
            .with_expiry(Duration::from_secs(3600))
            .expect("expiry");
        assert!(plan(odd, &AccountHost::localhost()).is_err());
        let zero = user().with_connection_limit(0).expect("limit");
        assert!(plan(zero, &AccountHost::localhost()).is_err());
        let mut root = user();
        root.superuser = true;
        assert!(plan(root, &AccountHost::localhost()).is_err());
    }
}
