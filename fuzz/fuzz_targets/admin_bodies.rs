//! The admin API's JSON bodies: whatever parses into a role name is one an unquoted
//! identifier could spell, a rotated password and a bulk request are within their bounds,
//! and no body panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mesa::http::admin::body;

fuzz_target!(|data: &[u8]| {
    if let Ok(user) = body::create_user(data).and_then(body::CreateUser::validate) {
        let name = user.name.as_str();
        assert!(!name.is_empty() && name.len() <= 63, "{name:?}");
        assert!(!name.starts_with("pg_"), "{name:?}");
        assert!(!name.as_bytes()[0].is_ascii_digit(), "{name:?}");
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{name:?}"
        );
        if let Some(password) = &user.password {
            assert!(password.expose().chars().count() >= 16);
            assert!(!password.expose().contains('\0'));
        }
    }
    let _ = body::signal(data);
    if let Ok(Some(password)) = body::rotate(data) {
        let chars = password.expose().chars().count();
        assert!((16..=256).contains(&chars), "{chars}");
    }
    if let Ok((request, _)) = body::bulk(data) {
        assert!((1..=1000).contains(&request.max_count));
        assert!(request.filter != mesa::gateway::SessionMatch::default());
    }
});
