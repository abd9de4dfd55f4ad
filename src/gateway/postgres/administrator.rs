//! The [`Administrator`] half of the PostgreSQL gateway: health, sessions, signals (one and
//! in bulk), and the Mesa-managed roles (create, list, revoke, rotate, reap). Each call opens
//! its own connection ([`PostgresGateway::with_connection`]); the SQL and row mapping live in
//! `admin.rs`, `bulk.rs` and `roles.rs`.

use std::time::Duration;

use tokio_postgres::Client;

use super::admin::{self, Signal};
use super::{Access, PostgresGateway, Purpose, bulk, roles};
use crate::gateway::validate;
use crate::gateway::{
    Administrator, BackendRef, BulkSession, BulkSignal, CreatedUser, Deadline, DroppedRole,
    GatewayError, ManagedRole, NewUser, Reaped, RoleName, ServerHealth, Session, SessionFilter,
};
use crate::secret::Secret;

impl PostgresGateway {
    async fn signal(
        &self,
        signal: Signal,
        backend: BackendRef,
        deadline: Deadline,
    ) -> Result<(), GatewayError> {
        let outcome = self
            .with_connection(
                self.admin_credentials(),
                &self.database,
                Access::ReadOnly,
                Purpose::Admin,
                deadline,
                async |client| admin::signal(client, signal, backend).await,
            )
            .await?;
        let pid = backend.pid;
        let verb = match signal {
            Signal::Terminate => "terminate",
            Signal::Cancel => "cancel",
        };
        let Some(seen) = outcome else {
            return Err(GatewayError::NotFound {
                what: format!("backend pid {pid}"),
            });
        };
        if seen.signalled == Some(true) {
            return Ok(());
        }
        // Refusals, most specific first. PostgreSQL raises 42501 for missing privileges
        // (classified before we get here).
        Err(if seen.is_self {
            GatewayError::Refused {
                reason: format!("pid {pid} is Mesa's own connection"),
            }
        } else if !seen.same_backend {
            GatewayError::NotFound {
                what: format!(
                    "backend pid {pid} with that backend_start (pid {pid} now belongs to a backend started at {}; the session you listed has ended)",
                    seen.backend_start
                        .map(|t| humantime::format_rfc3339_micros(t).to_string())
                        .unwrap_or_else(|| "an unknown time".to_owned())
                ),
            }
        } else if let Some(kind) = seen
            .backend_type
            .as_deref()
            .filter(|k| *k != "client backend")
        {
            GatewayError::Refused {
                reason: format!(
                    "pid {pid} is a {kind} process, not a client backend; Mesa only signals client sessions"
                ),
            }
        } else if seen.backend_type.is_none() {
            GatewayError::Refused {
                reason: format!(
                    "the admin role cannot see what kind of process pid {pid} is; grant it pg_read_all_stats (or pg_monitor) so Mesa can tell client sessions from server processes"
                ),
            }
        } else if seen.is_superuser {
            GatewayError::Refused {
                reason: match seen.role {
                    Some(role) => format!(
                        "pid {pid} belongs to superuser {role:?}; Mesa never signals a superuser's session (PostgreSQL's pg_signal_backend rule)"
                    ),
                    None => format!(
                        "the role of pid {pid} cannot be found, so Mesa cannot tell it is not a superuser's session"
                    ),
                },
            }
        } else {
            // `false`: the signal could not be delivered, which in practice is a backend
            // that exited between the check and the signal.
            GatewayError::NotFound {
                what: format!(
                    "backend pid {pid} (it exited before it could be signalled to {verb})"
                ),
            }
        })
    }

    /// The logins management calls never touch: `postgres` and Mesa's own two.
    fn untouchable(&self) -> roles::Untouchable<'_> {
        roles::Untouchable {
            own: [
                self.monitor.user.as_str(),
                self.admin_credentials().user.as_str(),
            ],
        }
    }

    /// Runs a role-management `work` on a read-write connection as the admin login; Mesa's
    /// own refusals (the inner error) pass through unclassified.
    async fn admin_call<T>(
        &self,
        deadline: Deadline,
        work: impl AsyncFnOnce(&Client) -> Result<Result<T, GatewayError>, tokio_postgres::Error>,
    ) -> Result<T, GatewayError> {
        self.with_connection(
            self.admin_credentials(),
            &self.database,
            Access::ReadWrite,
            Purpose::Admin,
            deadline,
            work,
        )
        .await?
    }
}

impl Administrator for PostgresGateway {
    async fn server_health(&self, deadline: Deadline) -> Result<ServerHealth, GatewayError> {
        self.monitor_read(deadline, async |c| admin::server_health(c).await)
            .await
    }

    async fn sessions(
        &self,
        filter: SessionFilter,
        deadline: Deadline,
    ) -> Result<Vec<Session>, GatewayError> {
        self.monitor_read(deadline, async |c| admin::sessions(c, filter).await)
            .await
    }

    async fn terminate(&self, backend: BackendRef, deadline: Deadline) -> Result<(), GatewayError> {
        self.signal(Signal::Terminate, backend, deadline).await
    }

    async fn cancel(&self, backend: BackendRef, deadline: Deadline) -> Result<(), GatewayError> {
        self.signal(Signal::Cancel, backend, deadline).await
    }

    async fn create_user(
        &self,
        user: NewUser,
        deadline: Deadline,
    ) -> Result<CreatedUser, GatewayError> {
        let (password, generated) = validate::chosen_or_generated(user.password.clone())?;
        let valid_until = self
            .admin_call(deadline, async |c| roles::create(c, &user, &password).await)
            .await
            .map_err(|e| match e.sqlstate() {
                Some("42710") => GatewayError::AlreadyExists {
                    what: format!("role {}", user.name),
                },
                _ => e,
            })?;
        Ok(CreatedUser {
            name: user.name,
            generated_password: generated,
            valid_until,
        })
    }

    async fn managed_users(&self, deadline: Deadline) -> Result<Vec<ManagedRole>, GatewayError> {
        self.monitor_read(deadline, async |c| roles::managed(c).await)
            .await
    }

    async fn drop_user(
        &self,
        name: &RoleName,
        deadline: Deadline,
    ) -> Result<DroppedRole, GatewayError> {
        let untouchable = self.untouchable();
        self.admin_call(deadline, async |c| {
            roles::drop_role(c, name, &untouchable).await
        })
        .await
    }

    async fn rotate_password(
        &self,
        name: &RoleName,
        password: Option<Secret>,
        deadline: Deadline,
    ) -> Result<Option<Secret>, GatewayError> {
        let (password, generated) = validate::chosen_or_generated(password)?;
        let untouchable = self.untouchable();
        self.admin_call(deadline, async |c| {
            roles::rotate(c, name, &password, &untouchable).await
        })
        .await?;
        Ok(generated)
    }

    async fn reap(
        &self,
        drop_after: Duration,
        deadline: Deadline,
    ) -> Result<Vec<Reaped>, GatewayError> {
        let untouchable = self.untouchable();
        self.admin_call(deadline, async |c| {
            roles::reap(c, drop_after, &untouchable).await.map(Ok)
        })
        .await
    }

    async fn signal_matching(
        &self,
        request: &BulkSignal,
        deadline: Deadline,
    ) -> Result<Vec<BulkSession>, GatewayError> {
        let untouchable = self.untouchable();
        self.with_connection(
            self.admin_credentials(),
            &self.database,
            Access::ReadOnly,
            Purpose::Admin,
            deadline,
            async |c| bulk::signal_matching(c, request, &untouchable).await,
        )
        .await?
    }
}
