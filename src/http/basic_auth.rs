//! Basic auth of the metrics listener (`basic_auth_users` of the web config) and its extra
//! response headers.
//!
//! Passwords are checked with bcrypt off the async threads, one check at a time (as
//! exporter-toolkit does), so a flood of wrong passwords costs at most one core. Around that:
//!
//! - **A bounded queue.** At most [`BCRYPT_QUEUE`] requests wait for (or run) a check; the next
//!   is answered `429 Too Many Requests` at once, so a flood never piles up requests (each
//!   holding a connection slot) behind the bcrypt lock.
//! - **Caches that never wait.** A login that passed is remembered (by SHA-256 of user,
//!   password and hash) in its own bounded LRU: Prometheus' scrapes after the first never
//!   reach bcrypt or the queue, whatever an attacker sends. Failed logins are remembered in
//!   another LRU, so repeating a wrong password is cheap too; neither is ever cleared whole.
//! - **No user-name oracle.** An unknown user is checked against a decoy hash. There is one
//!   decoy per bcrypt cost the configured users have, and an unknown name always gets the same
//!   one, picked by a keyed hash of the name (the key is random per start): whatever the
//!   costs, an unknown name answers like some known user, and consistently so.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use tokio::sync::Semaphore;

use super::webconfig::{WebConfig, bcrypt_cost};

/// How many bcrypt checks run at once. exporter-toolkit serialises them behind one mutex;
/// Mesa does the same, so a flood of wrong passwords costs at most one core and one thread
/// of the blocking pool (which DNS lookups and audit writes share).
pub const BCRYPT_CONCURRENCY: usize = 1;
/// Requests that may wait for (or run) a bcrypt check; more are refused with 429. At cost 10
/// (~60 ms here) the last of them waits about half a second.
pub const BCRYPT_QUEUE: usize = 8;
/// Remembered successful logins (only someone who knows a password can add one).
const PASSED_CACHE_MAX: usize = 256;
/// Remembered failed logins.
const FAILED_CACHE_MAX: usize = 1024;
/// What an unknown user is checked against if making a decoy failed (no OS randomness): a
/// cost-10 hash of a random string nobody knows.
const DECOY_FALLBACK: &str = "$2b$10$3euPcmQFCiblsZeEu5s7p.9OVHgeHWFDk9nhMqZ0m/3pd/lhwZgES";

/// A login's fate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The user and password match (or no users are configured).
    Allowed,
    /// No credentials, an unknown user or a wrong password: 401.
    Denied,
    /// The bcrypt queue is full: 429, try again.
    Busy,
}

/// Counters of the bcrypt checks a guard ran, for tests and diagnosis.
#[derive(Debug, Default)]
pub struct BcryptStats {
    checks: AtomicU64,
    running: AtomicUsize,
    peak: AtomicUsize,
    refused: AtomicU64,
}

impl BcryptStats {
    /// bcrypt checks run so far (cache hits excluded).
    pub fn checks(&self) -> u64 {
        self.checks.load(Ordering::Relaxed)
    }

    /// The most checks that ever ran at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// Logins refused with 429 because the queue was full.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// A least-recently-used set of login digests.
#[derive(Debug)]
struct Lru {
    max: usize,
    tick: u64,
    used: HashMap<[u8; 32], u64>,
    order: BTreeMap<u64, [u8; 32]>,
}

impl Lru {
    fn new(max: usize) -> Self {
        Self {
            max,
            tick: 0,
            used: HashMap::new(),
            order: BTreeMap::new(),
        }
    }

    /// Whether `key` is here; a hit makes it the most recently used.
    fn hit(&mut self, key: &[u8; 32]) -> bool {
        let Some(at) = self.used.get_mut(key) else {
            return false;
        };
        self.order.remove(at);
        self.tick += 1;
        *at = self.tick;
        self.order.insert(self.tick, *key);
        true
    }

    /// Adds `key`, dropping the least recently used one when full.
    fn insert(&mut self, key: [u8; 32]) {
        if self.hit(&key) {
            return;
        }
        if self.used.len() >= self.max
            && let Some((_, oldest)) = self.order.pop_first()
        {
            self.used.remove(&oldest);
        }
        self.tick += 1;
        self.used.insert(key, self.tick);
        self.order.insert(self.tick, key);
    }
}

/// Basic auth and extra headers for the metrics router.
#[derive(Debug, Clone)]
pub struct Guard {
    users: Arc<BTreeMap<String, String>>,
    headers: Arc<Vec<(HeaderName, HeaderValue)>>,
    passed: Arc<Mutex<Lru>>,
    failed: Arc<Mutex<Lru>>,
    /// One decoy hash per configured cost, by cost.
    decoys: Arc<Vec<(u32, String)>>,
    /// Keys the choice of an unknown user's decoy.
    decoy_key: [u8; 32],
    bcrypt_slots: Arc<Semaphore>,
    queue: Arc<Semaphore>,
    stats: Arc<BcryptStats>,
}

impl Guard {
    /// A guard for `config`. With basic auth configured, this makes one decoy per configured
    /// bcrypt cost (one bcrypt run each).
    pub fn new(config: &WebConfig) -> Self {
        let headers = config
            .headers
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    HeaderName::try_from(k.as_str()).ok()?,
                    HeaderValue::from_str(v).ok()?,
                ))
            })
            .collect();
        let mut costs: Vec<u32> = config
            .basic_auth_users
            .values()
            .filter_map(|h| bcrypt_cost(h))
            .collect();
        costs.sort_unstable();
        costs.dedup();
        let decoys = costs
            .into_iter()
            .map(|cost| {
                let decoy = {
                    let mut junk = [0u8; 18];
                    getrandom::fill(&mut junk)
                        .ok()
                        .and_then(|()| bcrypt::hash(junk, cost).ok())
                };
                // Without randomness, the fallback stands in (at cost 10).
                decoy.map_or((10, DECOY_FALLBACK.to_owned()), |h| (cost, h))
            })
            .collect();
        let mut decoy_key = [0u8; 32];
        if getrandom::fill(&mut decoy_key).is_err() {
            tracing::warn!("no OS randomness for the basic-auth decoy key");
        }
        Self {
            users: Arc::new(config.basic_auth_users.clone()),
            headers: Arc::new(headers),
            passed: Arc::new(Mutex::new(Lru::new(PASSED_CACHE_MAX))),
            failed: Arc::new(Mutex::new(Lru::new(FAILED_CACHE_MAX))),
            decoys: Arc::new(decoys),
            decoy_key,
            bcrypt_slots: Arc::new(Semaphore::new(BCRYPT_CONCURRENCY)),
            queue: Arc::new(Semaphore::new(BCRYPT_QUEUE)),
            stats: Arc::default(),
        }
    }

    /// The bcrypt counters.
    pub fn stats(&self) -> &BcryptStats {
        &self.stats
    }

    /// The decoy an unknown `user` is checked against: the same one every time for a name.
    fn decoy_for(&self, user: &str) -> (u32, &str) {
        let Some(n) = u64::try_from(self.decoys.len()).ok().filter(|n| *n > 0) else {
            return (10, DECOY_FALLBACK);
        };
        let digest = Sha256::new()
            .chain_update(self.decoy_key)
            .chain_update(user.as_bytes())
            .finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        let i = usize::try_from(u64::from_le_bytes(first) % n).unwrap_or(0);
        let (cost, hash) = &self.decoys[i];
        (*cost, hash)
    }

    /// Checks a request's credentials.
    pub async fn check(&self, credentials: Option<(String, String)>) -> Verdict {
        if self.users.is_empty() {
            return Verdict::Allowed;
        }
        let Some((user, password)) = credentials else {
            return Verdict::Denied;
        };
        let (hash, known) = match self.users.get(&user) {
            Some(hash) => (hash.clone(), true),
            None => (self.decoy_for(&user).1.to_owned(), false),
        };
        let key = crate::token::digest(&format!("{user}\u{0}{password}\u{0}{hash}"));
        // The caches: no queue, no bcrypt.
        if lock(&self.passed).hit(&key) {
            return Verdict::Allowed;
        }
        if lock(&self.failed).hit(&key) {
            return Verdict::Denied;
        }
        let Ok(_queued) = self.queue.try_acquire() else {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            return Verdict::Busy;
        };
        let Ok(_slot) = self.bcrypt_slots.acquire().await else {
            return Verdict::Denied;
        };
        let stats = self.stats.clone();
        let running = stats.running.fetch_add(1, Ordering::SeqCst) + 1;
        stats.peak.fetch_max(running, Ordering::SeqCst);
        stats.checks.fetch_add(1, Ordering::Relaxed);
        let matched = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(false);
        stats.running.fetch_sub(1, Ordering::SeqCst);
        if known && matched {
            lock(&self.passed).insert(key);
            Verdict::Allowed
        } else {
            lock(&self.failed).insert(key);
            Verdict::Denied
        }
    }
}

fn lock(cache: &Mutex<Lru>) -> std::sync::MutexGuard<'_, Lru> {
    cache.lock().unwrap_or_else(|p| p.into_inner())
}

fn basic_credentials(request: &Request) -> Option<(String, String)> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// The middleware: basic auth when users are configured, then the extra headers.
pub async fn guard(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    // Extracted first: a request body is not `Sync`, so no reference to it may cross an await.
    let credentials = basic_credentials(&request);
    match guard.check(credentials).await {
        Verdict::Allowed => {}
        Verdict::Denied => {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Basic realm=\"mesa\"")],
                "unauthorized\n",
            )
                .into_response();
        }
        Verdict::Busy => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, "1")],
                "too many password checks in progress; try again\n",
            )
                .into_response();
        }
    }
    let mut response = next.run(request).await;
    for (name, value) in guard.headers.iter() {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

#[cfg(test)]
mod tests;
