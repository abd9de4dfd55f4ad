//! The Python tools in a virtual environment under `target/venv` (or `$MESA_VENV`), and the
//! Grafana dashboard check that needs one of them.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Failure, Result, fail, root, status, target_dir};

/// What is installed: every package of `requirements-dev.txt` and `grafana/requirements.txt`
/// and their dependencies, each pinned with its hashes (`pip install --require-hashes`), so a
/// package replaced on the index is refused. Regenerated from those two files with pip-tools:
/// `pip-compile --generate-hashes --allow-unsafe --strip-extras --no-header
/// --output-file requirements.lock requirements-dev.txt grafana/requirements.txt`.
const LOCK: &str = "requirements.lock";

/// Where the environment lives.
pub fn venv_dir() -> PathBuf {
    std::env::var_os("MESA_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("venv"))
}

/// Creates the environment and installs the requirements when they changed since the last
/// install (a stamp file holds what was installed). Returns its folder.
pub fn ensure() -> Result<PathBuf> {
    let venv = venv_dir();
    let python = venv.join("bin/python");
    if !python.is_file() {
        println!(
            "== creating a Python virtual environment in {}",
            venv.display()
        );
        let mut cmd = Command::new("python3");
        cmd.args(["-m", "venv"]).arg(&venv);
        if !status(&mut cmd, "python3 -m venv")? {
            return fail(format!(
                "python3 -m venv {} failed (Debian: apt-get install python3-venv)",
                venv.display()
            ));
        }
    }
    let wanted =
        std::fs::read_to_string(root().join(LOCK)).map_err(|e| Failure(format!("{LOCK}: {e}")))?;
    let stamp = venv.join(".mesa-requirements");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(venv);
    }
    println!("== installing Python tools into {}", venv.display());
    let mut cmd = Command::new(&python);
    cmd.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--require-hashes",
        "-r",
        LOCK,
    ])
    .current_dir(root());
    if !status(&mut cmd, "pip install")? {
        return fail("pip install failed (is PyPI reachable?)");
    }
    std::fs::write(&stamp, wanted).map_err(|e| Failure(format!("{}: {e}", stamp.display())))?;
    Ok(venv)
}

/// Fails when `grafana/dashboards/mesa.json` is not what `grafana/dashboard.py` builds.
pub fn check_dashboard(venv: &Path) -> Result<()> {
    let out = Command::new(venv.join("bin/python"))
        .arg("grafana/dashboard.py")
        .current_dir(root())
        .output()
        .map_err(|e| Failure(format!("grafana/dashboard.py: {e}")))?;
    if !out.status.success() {
        return fail(format!(
            "grafana/dashboard.py failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let committed = std::fs::read(root().join("grafana/dashboards/mesa.json"))
        .map_err(|e| Failure(format!("grafana/dashboards/mesa.json: {e}")))?;
    if committed != out.stdout {
        return fail(
            "grafana/dashboards/mesa.json is not what grafana/dashboard.py builds; regenerate it:\n  target/venv/bin/python grafana/dashboard.py > grafana/dashboards/mesa.json",
        );
    }
    println!("== grafana/dashboards/mesa.json matches grafana/dashboard.py");
    Ok(())
}
