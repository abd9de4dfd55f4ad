//! The main config file: any text either loads or yields problems with paths; never a panic.
#![no_main]

use std::path::Path;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env = |name: &str| (name == "PW").then(|| "fuzz-password".to_owned());
    match mesa::config::parse_str(text, Path::new("/nonexistent-mesa-fuzz"), &env) {
        Ok(config) => {
            // What loads obeys the rules the daemon relies on.
            assert!(!config.targets.is_empty());
            for t in &config.targets {
                assert!(t.collection.timeout < t.collection.interval);
                assert!(t.collection.interval <= Duration::from_secs(86_400));
            }
        }
        Err(problems) => assert!(!problems.is_empty()),
    }
});
