//! The exporter-toolkit web config: any text either parses or yields problems; never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match mesa::http::webconfig::parse(text, Path::new("/nonexistent-mesa-fuzz")) {
        Ok(config) => {
            for hash in config.basic_auth_users.values() {
                assert_eq!(hash.len(), 60, "only bcrypt hashes load");
            }
        }
        Err(problems) => assert!(!problems.is_empty()),
    }
});
