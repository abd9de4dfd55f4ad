//! The arguments `cargo xtask` gives every measuring example (its `example_run`): the Mesa
//! binary under test, the folder the report goes to and the command the report names. Each
//! example reads its own flags besides these; [`spawn_mesa`] starts that binary on a config.

use std::path::PathBuf;

/// What every measuring example is given.
pub struct RunArgs {
    /// The Mesa binary to measure (a release build).
    pub mesa: PathBuf,
    /// The folder the report is written to.
    pub out: PathBuf,
    /// The command that reproduces the run, as the report shows it.
    pub command: String,
}

impl RunArgs {
    /// Parses the command line: `--mesa`, `--out` and `--command` here, every other flag by
    /// `more(flag, rest)` (which takes its value from `rest`) and returns `Ok(false)` for a
    /// flag it does not know.
    pub fn parse<E: From<String>>(
        default_command: &str,
        mut more: impl FnMut(&str, &mut dyn Iterator<Item = String>) -> Result<bool, E>,
    ) -> Result<Self, E> {
        let (mut mesa, mut out, mut command) = (None, None, default_command.to_owned());
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            match flag.as_str() {
                "--mesa" => mesa = it.next().map(PathBuf::from),
                "--out" => out = it.next().map(PathBuf::from),
                "--command" => command = it.next().ok_or("--command TEXT".to_owned())?,
                other => {
                    if !more(other, &mut it)? {
                        return Err(format!("unknown argument {other:?}").into());
                    }
                }
            }
        }
        Ok(Self {
            mesa: mesa.ok_or("--mesa PATH (a release build of Mesa)".to_owned())?,
            out: out.ok_or("--out DIR".to_owned())?,
            command,
        })
    }
}

/// Starts the Mesa binary `mesa` on `yaml`, written to `<dir>/<stem>.yaml`, logging warnings
/// to `<dir>/<stem>.log`.
pub fn spawn_mesa(
    mesa: &std::path::Path,
    dir: &std::path::Path,
    stem: &str,
    yaml: &str,
) -> std::io::Result<std::process::Child> {
    let config = dir.join(format!("{stem}.yaml"));
    std::fs::write(&config, yaml)?;
    std::process::Command::new(mesa)
        .arg("--config.file")
        .arg(&config)
        .args(["--log.level", "warn"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::from(std::fs::File::create(
            dir.join(format!("{stem}.log")),
        )?))
        .spawn()
}
