//! Where the test binaries find the Python tools `cargo xtask test` installs: the virtual
//! environment at `$MESA_VENV`, else `target/venv`, else `PATH`. Used by `tests/it` and
//! `tests/api_fuzz.rs`.

use std::path::{Path, PathBuf};

/// `name` from the virtual environment when it is there, else the bare name (`PATH`).
pub fn tool(name: &str) -> PathBuf {
    let venv = std::env::var_os("MESA_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
                .join("venv")
        });
    let inside = venv.join("bin").join(name);
    if inside.is_file() {
        inside
    } else {
        PathBuf::from(name)
    }
}
