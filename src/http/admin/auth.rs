//! Who is calling and what may they do: bearer tokens, scopes, target allow-lists, and a
//! per-token rate limit.
//!
//! Tokens are configured by SHA-256 digest; the presented token is hashed and compared with
//! every configured digest in constant time (`subtle`), without stopping at a match, so
//! timing tells nothing about which digest was close.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use subtle::ConstantTimeEq as _;
use tokio::time::Instant;

use super::problem::Problem;
use crate::config::{RateLimit, Scope, TargetSelector, TokenConfig};

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's configured name (never the token).
    pub token: String,
    scopes: std::collections::BTreeSet<Scope>,
    targets: TargetSelector,
    /// Longest `valid_for` the token may ask for.
    pub max_valid_for: Option<std::time::Duration>,
    /// Whether users it creates must expire.
    pub require_expiry: bool,
}

impl Caller {
    /// Whether the token may touch `target`.
    pub fn may_access(&self, target: &str) -> bool {
        match &self.targets {
            TargetSelector::All => true,
            TargetSelector::Names(names) => names.contains(target),
        }
    }

    /// Whether the token may see every target (so unknown names can be reported as 404).
    pub fn sees_all_targets(&self) -> bool {
        self.targets == TargetSelector::All
    }

    /// Whether the token holds `scope`. Scopes never imply each other.
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

/// The bearer token of a request: `Authorization: Bearer <token>` (scheme in any case).
pub fn bearer(headers: &HeaderMap) -> Result<&str, Problem> {
    let value = headers.get(AUTHORIZATION).ok_or_else(|| {
        Problem::unauthorized("an Authorization: Bearer <token> header is required")
    })?;
    let value = value
        .to_str()
        .map_err(|_| Problem::unauthorized("the Authorization header is not valid text"))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| Problem::unauthorized("expected Authorization: Bearer <token>"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(Problem::unauthorized(
            "expected Authorization: Bearer <token>",
        ));
    }
    Ok(token.trim())
}

/// Authenticates a request against the configured tokens.
pub fn authenticate(headers: &HeaderMap, tokens: &[TokenConfig]) -> Result<Caller, Problem> {
    let presented = crate::token::digest(bearer(headers)?);
    let mut found: Option<&TokenConfig> = None;
    for token in tokens {
        // No early exit: every digest is compared.
        if bool::from(token.sha256.ct_eq(&presented)) {
            found = Some(token);
        }
    }
    let token = found.ok_or_else(|| Problem::unauthorized("the bearer token is not valid"))?;
    Ok(Caller {
        token: token.name.clone(),
        scopes: token.scopes.clone(),
        targets: token.targets.clone(),
        max_valid_for: token.max_valid_for,
        require_expiry: token.require_expiry,
    })
}

/// A token bucket per token name.
#[derive(Debug)]
pub struct RateLimiter {
    burst: f64,
    per_second: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// A limiter with `limit` per token.
    pub fn new(limit: RateLimit) -> Self {
        Self {
            burst: f64::from(limit.burst),
            per_second: limit.per_second,
            buckets: Mutex::default(),
        }
    }

    /// Takes one request from `token`'s bucket, or says how many seconds until one is free.
    pub fn check(&self, token: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let (level, last) = buckets.entry(token.to_owned()).or_insert((self.burst, now));
        *level =
            (*level + now.duration_since(*last).as_secs_f64() * self.per_second).min(self.burst);
        *last = now;
        if *level >= 1.0 {
            *level -= 1.0;
            Ok(())
        } else {
            let wait = Duration::from_secs_f64((1.0 - *level) / self.per_second);
            Err(wait.as_secs_f64().ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn tokens() -> Vec<TokenConfig> {
        vec![TokenConfig {
            name: "reader".to_owned(),
            sha256: crate::token::digest("secret-token"),
            scopes: [Scope::Read].into(),
            targets: TargetSelector::All,
            max_valid_for: None,
            require_expiry: false,
        }]
    }

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(value).expect("header"));
        h
    }

    #[test]
    fn bearer_tokens_authenticate() {
        let caller = authenticate(&headers("Bearer secret-token"), &tokens()).expect("valid");
        assert_eq!(caller.token, "reader");
        assert!(caller.has(Scope::Read) && !caller.has(Scope::Terminate));
        assert!(authenticate(&headers("bearer secret-token"), &tokens()).is_ok());
        for bad in [
            "Bearer wrong",
            "Basic secret-token",
            "Bearer ",
            "secret-token",
        ] {
            let p = authenticate(&headers(bad), &tokens()).expect_err(bad);
            assert_eq!(p.status, axum::http::StatusCode::UNAUTHORIZED);
            assert!(p.challenge);
        }
        assert!(authenticate(&HeaderMap::new(), &tokens()).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn the_bucket_refills() {
        let limiter = RateLimiter::new(RateLimit::default());
        for _ in 0..20 {
            limiter.check("a").expect("within the burst");
        }
        assert_eq!(limiter.check("a"), Err(1));
        limiter.check("b").expect("other tokens are unaffected");
        tokio::time::advance(Duration::from_millis(250)).await;
        limiter.check("a").expect("refilled");
    }
}
