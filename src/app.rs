//! The composition root: turns a validated [`Config`] into the running daemon.
//!
//! [`App::start`] binds the metrics listener, starts one scheduler loop per target and
//! returns a handle; [`run`] adds the signal handling of a daemon: SIGTERM/SIGINT shut down
//! (stop scheduling, cancel in-flight queries on the server, drain listeners, exit within a
//! grace period) and SIGHUP reloads the config (an invalid file keeps the old one running and
//! sets `mesa_config_last_reload_successful 0`; a valid one restarts only changed targets).
//! One root `CancellationToken` and one `TaskTracker` own every task.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, ConfigError};
use crate::http::admin::AdminState;
use crate::http::admin::audit::AuditLog;
use crate::http::metrics::{MetricsState, router};
use crate::metrics::SnapshotStore;
use crate::metrics::{ExporterMetrics, Metrics};
use crate::scheduler::{Changes, Registry, Scheduler, Sinks};
use crate::tls::{ServerTls, server_config};

/// How long shutdown waits for in-flight work before giving up.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(10);

/// Why the daemon could not run or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The metrics listener could not bind.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A signal handler could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
    /// TLS settings of a listener could not be loaded.
    #[error("{listener}: {source}")]
    Tls {
        /// Where the settings come from: `web.config_file` or `admin.tls`.
        listener: &'static str,
        /// Why.
        #[source]
        source: crate::tls::TlsError,
    },
    /// The web config file is invalid.
    #[error("{0}")]
    WebConfig(#[from] crate::http::webconfig::WebConfigError),
    /// The audit file is unsafe to use.
    #[error("admin.audit_log: {0}")]
    Audit(#[from] crate::http::admin::audit::AuditError),
    /// Work was still running when the grace period ended.
    #[error("tasks were still running after the {0:?} grace period")]
    GraceExpired(Duration),
}

/// What the listeners load from files: the web config and both listeners' TLS material.
/// Loaded before anything starts, and by `--check-config`, so a bad file fails early.
#[derive(Debug)]
pub struct ListenerFiles {
    web: Option<crate::http::webconfig::WebConfig>,
    metrics_tls: Option<Arc<rustls::ServerConfig>>,
    admin_tls: Option<Arc<rustls::ServerConfig>>,
    audit: Option<Arc<AuditLog>>,
    warnings: Vec<String>,
}

impl ListenerFiles {
    /// What loads but deserves attention (a TLS key others can read, an audit folder others
    /// can write): printed by `--check-config`, logged at start.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Loads and checks every file the listener settings name.
    pub fn load(config: &Config) -> Result<Self, AppError> {
        let mut warnings = Vec::new();
        let web = match &config.web.config_file {
            Some(path) => Some(crate::http::webconfig::load(path)?),
            None => None,
        };
        let metrics_tls = match web.as_ref().and_then(|w| w.tls.as_ref()) {
            Some(tls) => Some({
                if let Some(warning) = crate::tls::server::loose_key_warning(&tls.key_file) {
                    warnings.push(format!(
                        "web.config_file tls_server_config.key_file: {warning}"
                    ));
                }
                server_config(tls).map_err(|source| AppError::Tls {
                    listener: "web.config_file",
                    source,
                })?
            }),
            None => None,
        };
        let admin_tls = match config.admin.tls.as_ref().filter(|_| config.admin.enabled()) {
            Some(files) => Some(
                server_config(&ServerTls::new(
                    files.cert_file.clone(),
                    files.key_file.clone(),
                ))
                .map_err(|source| AppError::Tls {
                    listener: "admin.tls",
                    source,
                })?,
            ),
            None => None,
        };
        let audit = match config
            .admin
            .audit_log
            .as_ref()
            .filter(|_| config.admin.enabled())
        {
            Some(path) => {
                if let Some(warning) = crate::http::admin::audit::folder_warning(path) {
                    warnings.push(format!("admin.audit_log: {warning}"));
                }
                Some(Arc::new(AuditLog::open(path.clone())?))
            }
            None => None,
        };
        Ok(Self {
            web,
            metrics_tls,
            admin_tls,
            audit,
            warnings,
        })
    }
}

/// The listen backlog: connections the kernel completes and queues while every connection
/// slot of a listener is taken. The kernel caps it at `net.core.somaxconn` (4096 on current
/// Linux); queued connections cost Mesa no descriptor.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds `address` with [`LISTEN_BACKLOG`] and `SO_REUSEADDR` (a restart must not wait for
/// the old socket's TIME_WAIT).
fn listen(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

/// A running Mesa.
#[derive(Debug)]
pub struct App {
    /// The config the listeners were built from; reloads change targets and tokens, and are
    /// compared with this to warn about settings that need a restart.
    started: Config,
    metrics_addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    admin_tokens: Arc<RwLock<Arc<Vec<crate::config::TokenConfig>>>>,
    root: CancellationToken,
    tracker: TaskTracker,
    scheduler: Scheduler,
    state: MetricsState,
}

impl App {
    /// Binds the listeners and starts collecting. Everything that can fail (binding, TLS
    /// material, the web config) is done before any task starts, so an error leaves nothing
    /// running.
    pub async fn start(config: Config) -> Result<Self, AppError> {
        let bind = |address: SocketAddr| async move {
            let listener = listen(address).map_err(|source| AppError::Bind { address, source })?;
            let bound = listener
                .local_addr()
                .map_err(|source| AppError::Bind { address, source })?;
            Ok::<_, AppError>((listener, bound))
        };
        let files = ListenerFiles::load(&config)?;
        for warning in files.warnings() {
            tracing::warn!(problem = %warning, "listener file warning");
        }
        crate::fdlimit::ensure(&crate::fdlimit::Budget::of(&config));
        let (metrics_listener, metrics_addr) = bind(config.web.listen_address).await?;
        let admin = &config.admin;
        let admin_listener = if admin.enabled() {
            Some(bind(admin.listen_address).await?)
        } else {
            None
        };
        let ListenerFiles {
            web,
            metrics_tls,
            admin_tls,
            audit,
            warnings: _,
        } = files;

        let store = Arc::new(SnapshotStore::new());
        let metrics = Arc::new(Metrics::new(store.clone()));
        let root = CancellationToken::new();
        let tracker = TaskTracker::new();
        let registry = Registry::default();
        let sinks = Sinks {
            store: store.clone(),
            metrics: metrics.exporter().clone(),
        };
        let mut scheduler = Scheduler::new(sinks, tracker.clone(), root.clone(), registry.clone());
        // Targets are registered before the listeners open, so /readyz never sees an empty set.
        registry.set_shard(config.shard, &config.targets);
        let owned = config.owned_targets();
        scheduler.apply(&owned);
        if config.shard.count() > 1 {
            tracing::info!(shard = %config.shard, owned = owned.len(), configured = config.targets.len(), "collecting this shard's targets");
        }

        let state = MetricsState {
            metrics: metrics.clone(),
            store: store.clone(),
            registry: registry.clone(),
        };
        let metrics_router = match &web {
            None => router(state.clone()),
            Some(web) => router(state.clone()).layer(axum::middleware::from_fn_with_state(
                crate::http::basic_auth::Guard::new(web),
                crate::http::basic_auth::guard,
            )),
        };
        let metrics_tls_on = metrics_tls.is_some();
        tracker.spawn(crate::http::serve(
            metrics_listener,
            metrics_router,
            metrics_tls,
            root.child_token(),
            crate::http::ConnectionCap {
                listener: "metrics",
                max: config.web.max_connections,
                max_lifetime: crate::http::MAX_CONNECTION_LIFETIME,
            },
        ));

        let any_admin_login = config.targets.iter().any(|t| t.spec.common.admin.is_some());
        match &audit {
            Some(audit) => {
                let reaper = crate::reaper::Reaper {
                    registry: registry.clone(),
                    audit: audit.clone(),
                    metrics: metrics.exporter().clone(),
                    interval: admin.reap_interval,
                    drop_after: admin.drop_after,
                };
                tracker.spawn(reaper.run(root.child_token()));
            }
            None if any_admin_login => tracing::warn!(
                "the reaper is off: it acts only with an audit trail; set admin.audit_log so expired Mesa-managed roles lose their sessions and are dropped"
            ),
            None => {}
        }

        let admin_tokens = Arc::new(RwLock::new(Arc::new(admin.tokens.clone())));
        let admin_addr = match admin_listener {
            None => None,
            Some((listener, bound)) => {
                let tls = admin_tls;
                let state = AdminState {
                    tokens: admin_tokens.clone(),
                    registry,
                    store,
                    audit: audit.clone(),
                    limiter: Arc::new(crate::http::admin::auth::RateLimiter::new(admin.rate_limit)),
                    metrics: metrics.exporter().clone(),
                    tracker: tracker.clone(),
                    shutdown: root.clone(),
                    auth_failures: Arc::default(),
                };
                tracing::info!(address = %bound, tls = tls.is_some(), tokens = admin.tokens.len(), "serving the admin API");
                tracker.spawn(crate::http::serve(
                    listener,
                    crate::http::admin::router(state),
                    tls,
                    root.child_token(),
                    crate::http::ConnectionCap {
                        listener: "admin",
                        max: admin.max_connections,
                        max_lifetime: crate::http::MAX_CONNECTION_LIFETIME,
                    },
                ));
                Some(bound)
            }
        };
        tracing::info!(
            address = %metrics_addr,
            tls = metrics_tls_on,
            targets = config.targets.len(),
            version = crate::VERSION,
            "serving metrics"
        );
        Ok(Self {
            started: config,
            metrics_addr,
            admin_addr,
            admin_tokens,
            root,
            tracker,
            scheduler,
            state,
        })
    }

    /// Where `/metrics` is served.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    /// Where the admin API is served, when it is enabled.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// The snapshot store.
    pub fn store(&self) -> &Arc<SnapshotStore> {
        &self.state.store
    }

    /// The exporter's instruments.
    pub fn exporter(&self) -> &Arc<ExporterMetrics> {
        self.state.metrics.exporter()
    }

    /// Applies a reloaded config, or keeps the current one when it is invalid. Returns what
    /// changed, `None` when the new config was rejected.
    pub fn reload(&mut self, loaded: Result<Config, ConfigError>) -> Option<Changes> {
        let exporter = self.state.metrics.exporter().clone();
        let new = match loaded {
            Ok(config) => config,
            Err(e) => {
                tracing::error!(error = %e, "config reload failed; keeping the running config");
                exporter.set_reload_ok(false);
                return None;
            }
        };
        for warning in &new.warnings {
            tracing::warn!(problem = %warning, "config warning");
        }
        if new.web != self.started.web {
            tracing::warn!("web settings changed; they take effect after a restart");
        }
        if new.admin.listen_address != self.started.admin.listen_address
            || new.admin.tls != self.started.admin.tls
            || new.admin.audit_log != self.started.admin.audit_log
            || new.admin.enabled() != self.started.admin.enabled()
            || new.admin.reap_interval != self.started.admin.reap_interval
            || new.admin.drop_after != self.started.admin.drop_after
        {
            tracing::warn!(
                "admin listener or reaper settings changed; they take effect after a restart (tokens and grantable roles apply now)"
            );
        }
        *self
            .admin_tokens
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(new.admin.tokens.clone());
        self.state.registry.set_shard(new.shard, &new.targets);
        let changes = self.scheduler.apply(&new.owned_targets());
        exporter.set_reload_ok(true);
        tracing::info!(
            added = ?changes.added,
            restarted = ?changes.restarted,
            removed = ?changes.removed,
            unchanged = changes.unchanged.len(),
            "config reloaded"
        );
        Some(changes)
    }

    /// Stops scheduling, cancels in-flight queries (with a cancel request to the server),
    /// drains the listener, and waits up to `grace` for every task.
    pub async fn shutdown(self, grace: Duration) -> Result<(), AppError> {
        self.root.cancel();
        self.tracker.close();
        match tokio::time::timeout(grace, self.tracker.wait()).await {
            Ok(()) => Ok(()),
            Err(_) => Err(AppError::GraceExpired(grace)),
        }
    }
}

/// Command-line settings that override the config file (and keep doing so across reloads).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--web.listen-address`.
    pub listen_address: Option<SocketAddr>,
    /// `--web.config.file`.
    pub web_config_file: Option<PathBuf>,
    /// `--shard.index` / `--shard.count`.
    pub shard: Option<crate::shard::Shard>,
}

impl Overrides {
    /// Applies the overrides to a loaded config.
    pub fn apply(&self, config: &mut Config) {
        if let Some(addr) = self.listen_address {
            config.web.listen_address = addr;
        }
        if let Some(path) = &self.web_config_file {
            config.web.config_file = Some(path.clone());
        }
        if let Some(shard) = self.shard {
            config.shard = shard;
        }
    }
}

/// Runs the daemon until SIGTERM or SIGINT; SIGHUP reloads `config_path` (applying the
/// command-line overrides again).
pub async fn run(config_path: &Path, config: Config, overrides: Overrides) -> Result<(), AppError> {
    let mut term = signal(SignalKind::terminate()).map_err(AppError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(AppError::Signals)?;
    let mut hup = signal(SignalKind::hangup()).map_err(AppError::Signals)?;
    let mut app = App::start(config).await?;
    let path: PathBuf = config_path.to_owned();
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: shutting down"); break; }
            _ = int.recv() => { tracing::info!("SIGINT: shutting down"); break; }
            _ = hup.recv() => {
                tracing::info!(path = %path.display(), "SIGHUP: reloading the config");
                let loaded = crate::config::load(&path).map(|mut c| {
                    overrides.apply(&mut c);
                    c
                });
                app.reload(loaded);
            }
        }
    }
    app.shutdown(DEFAULT_GRACE_PERIOD).await?;
    tracing::info!("stopped");
    Ok(())
}
