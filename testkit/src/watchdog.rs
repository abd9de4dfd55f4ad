//! [`after_exit`]: a detached shell that runs a cleanup once this process has exited, so a
//! throwaway server held in a `static` (one per test binary) never outlives its tests, even
//! through Ctrl-C (`setsid` keeps it out of the terminal's process group).

use std::process::{Command, Stdio};

/// Runs the shell command `cleanup` after this process exits; `what` names it in the error
/// (a message, which each harness turns into its own error).
pub(crate) fn after_exit(cleanup: &str, what: &str) -> Result<(), String> {
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {cleanup}",
        pid = std::process::id()
    );
    Command::new("setsid")
        .args(["sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start the {what} watchdog: {e}"))?;
    Ok(())
}
