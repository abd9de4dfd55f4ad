//! The faults the soak injects, each applied and cleared on the lab (proxies, roles, the
//! server), and the seeded shuffle that orders them.

use super::*;

// ---- the faults ----------------------------------------------------------------------------

/// Every fault of the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    Refused,
    BlackHole,
    Stall,
    Latency,
    Reset,
    ConnectionLimitZero,
    WrongPassword,
    MonitorRevoked,
    BackendsTerminated,
    TableLock,
    PostmasterStopped,
    Restart,
    MaxConnections,
}

impl Fault {
    pub(crate) const ALL: [Fault; 13] = [
        Fault::Refused,
        Fault::BlackHole,
        Fault::Stall,
        Fault::Latency,
        Fault::Reset,
        Fault::ConnectionLimitZero,
        Fault::WrongPassword,
        Fault::MonitorRevoked,
        Fault::BackendsTerminated,
        Fault::TableLock,
        Fault::PostmasterStopped,
        Fault::Restart,
        Fault::MaxConnections,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Fault::Refused => "refused",
            Fault::BlackHole => "black_hole",
            Fault::Stall => "stall",
            Fault::Latency => "latency",
            Fault::Reset => "reset",
            Fault::ConnectionLimitZero => "connection_limit_0",
            Fault::WrongPassword => "wrong_password",
            Fault::MonitorRevoked => "pg_monitor_revoked",
            Fault::BackendsTerminated => "backends_terminated",
            Fault::TableLock => "table_lock",
            Fault::PostmasterStopped => "postmaster_sigstop",
            Fault::Restart => "restart",
            Fault::MaxConnections => "max_connections",
        }
    }

    /// Whether the fault hits some targets (else the whole server).
    pub(crate) fn per_target(self) -> bool {
        match self {
            Fault::Refused
            | Fault::BlackHole
            | Fault::Stall
            | Fault::Latency
            | Fault::Reset
            | Fault::ConnectionLimitZero
            | Fault::WrongPassword
            | Fault::MonitorRevoked
            | Fault::BackendsTerminated => true,
            Fault::TableLock
            | Fault::PostmasterStopped
            | Fault::Restart
            | Fault::MaxConnections => false,
        }
    }

    /// Whether the hit targets' `pg_up` should turn 0. A table lock fails one collector, not
    /// the health check; a server full to `max_connections` refuses new logins, and Mesa's
    /// kept collection sessions are already in, so it keeps watching a full server (its
    /// saturation alert is for that moment).
    pub(crate) fn takes_targets_down(self) -> bool {
        !matches!(self, Fault::TableLock | Fault::MaxConnections)
    }
}

pub(crate) fn role(i: usize) -> String {
    format!("soak_t{i:02}")
}

/// What a held fault keeps until it is cleared.
pub(crate) enum Held {
    Nothing,
    Lock(tokio_postgres::Client),
    Fillers(tokio::task::JoinHandle<()>),
    Terminator(tokio::task::JoinHandle<()>),
}

/// The server, the proxies and a superuser session: what faults act on.
pub(crate) struct Lab {
    pub(crate) cluster: Arc<PgCluster>,
    pub(crate) proxies: Vec<FaultProxy>,
}

impl Lab {
    /// A session as `user`, or `None` while the server does not let it in.
    pub(crate) async fn session(
        &self,
        user: &str,
        password: &str,
        db: &str,
    ) -> Option<tokio_postgres::Client> {
        self.cluster
            .try_session(user, password, db, Duration::from_secs(3))
            .await
    }

    pub(crate) async fn superuser(&self, db: &str) -> Option<tokio_postgres::Client> {
        self.cluster.try_superuser(db, Duration::from_secs(3)).await
    }

    /// Runs `sql` as the superuser, retrying while the server restarts.
    pub(crate) async fn sql(&self, sql: &str) -> Result<(), Error> {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(su) = self.superuser("postgres").await {
                match su.batch_execute(sql).await {
                    Ok(()) => return Ok(()),
                    Err(e) if Instant::now() > until => return Err(format!("{sql}: {e}").into()),
                    Err(_) => {}
                }
            } else if Instant::now() > until {
                return Err(format!("{sql}: the server does not answer").into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub(crate) fn roles(hit: &[usize]) -> String {
        hit.iter().map(|&i| role(i)).collect::<Vec<_>>().join(", ")
    }

    /// `ALTER ROLE <role> <change>` for every hit target's role, in one session.
    pub(crate) async fn alter_roles(&self, hit: &[usize], change: &str) -> Result<(), Error> {
        let batch: String = hit
            .iter()
            .map(|&i| format!("ALTER ROLE {} {change};", role(i)))
            .collect();
        self.sql(&batch).await
    }

    /// Ends the hit targets' open sessions once. A changed password or connection limit
    /// only refuses the next login: a kept collection session goes on (as postgres_exporter's
    /// connection does), so the fault would show only when it ends; this makes that now.
    pub(crate) async fn end_sessions(&self, hit: &[usize]) -> Result<(), Error> {
        let names: Vec<String> = hit.iter().map(|&i| format!("'{}'", role(i))).collect();
        self.sql(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename IN ({})",
            names.join(", ")
        ))
        .await
    }

    pub(crate) async fn inject(
        self: &Arc<Self>,
        fault: Fault,
        hit: &[usize],
    ) -> Result<Held, Error> {
        let mode = |m: Mode| {
            for &i in hit {
                self.proxies[i].set(m);
            }
        };
        Ok(match fault {
            Fault::Refused => {
                mode(Mode::Refuse);
                Held::Nothing
            }
            Fault::BlackHole => {
                mode(Mode::BlackHole);
                Held::Nothing
            }
            // The authentication request arrives, the rest never does.
            Fault::Stall => {
                mode(Mode::StallAfter(60));
                Held::Nothing
            }
            Fault::Latency => {
                mode(Mode::Latency(Duration::from_millis(400)));
                Held::Nothing
            }
            Fault::Reset => {
                mode(Mode::Reset);
                Held::Nothing
            }
            Fault::ConnectionLimitZero => {
                self.alter_roles(hit, "CONNECTION LIMIT 0").await?;
                self.end_sessions(hit).await?;
                Held::Nothing
            }
            Fault::WrongPassword => {
                self.alter_roles(hit, "PASSWORD 'not-the-one-in-the-file'")
                    .await?;
                self.end_sessions(hit).await?;
                Held::Nothing
            }
            Fault::MonitorRevoked => {
                self.sql(&format!("REVOKE pg_monitor FROM {}", Self::roles(hit)))
                    .await?;
                Held::Nothing
            }
            Fault::BackendsTerminated => {
                let Some(su) = self.superuser("postgres").await else {
                    return Err("no superuser session for the terminator".into());
                };
                let roles: Vec<String> = hit.iter().map(|&i| role(i)).collect();
                Held::Terminator(tokio::spawn(async move {
                    loop {
                        let _ = su
                            .execute(
                                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = ANY($1)",
                                &[&roles],
                            )
                            .await;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }))
            }
            Fault::TableLock => {
                let Some(su) = self.superuser("soak").await else {
                    return Err("no superuser session for the lock".into());
                };
                // stat_statements' view: every target's collector waits, then lock_timeout.
                su.batch_execute(
                    "BEGIN; LOCK TABLE public.pg_stat_statements IN ACCESS EXCLUSIVE MODE",
                )
                .await?;
                Held::Lock(su)
            }
            Fault::PostmasterStopped => {
                // Backends run on without the postmaster, so kept collection sessions would
                // go on answering; only new logins hang. The session that ends them is opened
                // first (a new one would hang too), and they are ended after the stop, so no
                // collection logs in between.
                let Some(su) = self.superuser("postgres").await else {
                    return Err("no superuser session to end the sessions".into());
                };
                signal("-STOP", self.cluster.postmaster_pid()?)?;
                su.batch_execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename LIKE 'soak\\_t%'",
                )
                .await?;
                Held::Nothing
            }
            Fault::Restart => {
                let cluster = Arc::clone(&self.cluster);
                tokio::task::spawn_blocking(move || cluster.stop()).await?;
                Held::Nothing
            }
            Fault::MaxConnections => {
                // Every free slot, and each one that frees up while the fault lasts (a
                // collection that ends gives its slot back): the task holds the sessions,
                // aborting it closes them.
                let lab = Arc::clone(self);
                Held::Fillers(tokio::spawn(async move {
                    let mut fillers = Vec::new();
                    loop {
                        match lab.session("soak_filler", PASSWORD, "soak").await {
                            Some(c) if fillers.len() < 400 => fillers.push(c),
                            _ => tokio::time::sleep(Duration::from_millis(20)).await,
                        }
                    }
                }))
            }
        })
    }

    pub(crate) async fn clear(&self, fault: Fault, hit: &[usize], held: Held) -> Result<(), Error> {
        match held {
            Held::Nothing => {}
            Held::Lock(su) => su.batch_execute("ROLLBACK").await?,
            Held::Fillers(t) => t.abort(),
            Held::Terminator(t) => t.abort(),
        }
        match fault {
            Fault::Refused | Fault::BlackHole | Fault::Stall | Fault::Latency | Fault::Reset => {
                for &i in hit {
                    self.proxies[i].set(Mode::Pass);
                }
            }
            Fault::ConnectionLimitZero => self.alter_roles(hit, "CONNECTION LIMIT -1").await?,
            Fault::WrongPassword => {
                self.alter_roles(hit, &format!("PASSWORD '{PASSWORD}'"))
                    .await?
            }
            Fault::MonitorRevoked => {
                self.sql(&format!("GRANT pg_monitor TO {}", Self::roles(hit)))
                    .await?;
            }
            Fault::PostmasterStopped => signal("-CONT", self.cluster.postmaster_pid()?)?,
            Fault::Restart => {
                let cluster = Arc::clone(&self.cluster);
                tokio::task::spawn_blocking(move || cluster.start_again()).await??;
            }
            Fault::BackendsTerminated | Fault::TableLock | Fault::MaxConnections => {}
        }
        Ok(())
    }
}

pub(crate) fn signal(sig: &str, pid: u32) -> Result<(), Error> {
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("kill {sig} {pid}: {status}").into())
    }
}
