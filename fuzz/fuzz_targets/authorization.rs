//! The `Authorization` header: only `Bearer <the configured token>` authenticates.
#![no_main]

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use mesa::config::{Scope, TargetSelector, TokenConfig};

const TOKEN: &str = "mesa_fuzz_known_token";

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, value);
    let tokens = [TokenConfig {
        name: "fuzz".to_owned(),
        sha256: mesa::token::digest(TOKEN),
        scopes: [Scope::Read].into(),
        targets: TargetSelector::All,
        max_valid_for: None,
        require_expiry: false,
    }];
    let bearer = mesa::http::admin::auth::bearer(&headers);
    match mesa::http::admin::auth::authenticate(&headers, &tokens) {
        Ok(caller) => {
            assert_eq!(caller.token, "fuzz");
            assert_eq!(bearer.ok(), Some(TOKEN), "authenticated without the token");
        }
        Err(problem) => {
            assert_eq!(problem.status.as_u16(), 401);
            assert_ne!(bearer.ok(), Some(TOKEN), "the token was refused");
        }
    }
});
