//! The `targets` list: each target's endpoint, driver settings and credentials, with the
//! secrets read from an environment variable or a file (never inline).

use std::path::Path;

use serde_json::Value;

use super::drivers;
use super::reader::{Fields, Problems};
use super::*;
use crate::gateway::{CommonSpec, Credentials, TargetSpec};

/// The keys every driver's target block has besides the collection overrides
/// (`COLLECTION_KEYS`) and `admin`; the driver's parser adds its own (`drivers::keys`).
const ENDPOINT_KEYS: &[&str] = &[
    "name",
    "driver",
    "host",
    "port",
    "database",
    "username",
    "password",
    "password_env",
    "password_file",
];
/// The target's `admin` section: the admin login, and what the admin API may grant there.
pub(super) const ADMIN_LOGIN_KEYS: &[&str] = &[
    "username",
    "password",
    "password_env",
    "password_file",
    "grantable_roles",
];

fn valid_target_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

pub(super) fn target(
    item: Value,
    path: &str,
    defaults: &CollectionSettings,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    p: &mut Problems,
) -> Option<TargetConfig> {
    // The driver decides which keys the block may have, so it is read first; a block without
    // a known driver may have any driver's keys (its one error is the driver).
    let named = item
        .get("driver")
        .and_then(Value::as_str)
        .and_then(|d| d.parse::<Driver>().ok());
    let common = ENDPOINT_KEYS
        .iter()
        .chain(COLLECTION_KEYS)
        .chain(&["admin"])
        .copied();
    let allowed: Vec<&str> = match named {
        Some(d) => common
            .chain(drivers::keys(d).keys.iter().copied())
            .collect(),
        None => common.chain(drivers::any_keys()).collect(),
    };
    let mut f = Fields::new(item, path, &allowed, p)?;
    let name = f.required_string("name", p);
    if let Some(n) = name.as_deref().filter(|n| !valid_target_name(n)) {
        p.add(
            f.path_of("name"),
            format!("invalid name {n:?}; use lowercase letters, digits, '_' and '-' (it becomes the `server` label)"),
        );
    }
    let driver = f
        .required_string("driver", p)
        .and_then(|d| match d.parse::<Driver>() {
            Ok(driver) => Some(driver),
            Err(e) => {
                p.add(f.path_of("driver"), e.to_string());
                None
            }
        });
    let host = f.required_string("host", p);
    if host.as_deref().is_some_and(str::is_empty) {
        p.add(f.path_of("host"), "must not be empty");
    }
    let driver_keys = driver.map(drivers::keys);
    let port = if f.has("port") {
        f.port("port", p)
    } else {
        driver_keys.map(|k| k.default_port)
    };
    let database = f
        .string("database", p)
        .or_else(|| driver_keys.map(|k| k.default_database.to_owned()));
    let username = f.required_string("username", p);
    let password = read_password(&mut f, env, base, p);
    let own = driver.and_then(|d| drivers::parse(d, &mut f, base, p));
    // Inherited values were checked under `collection`; recheck only what this target changes.
    let overrides = COLLECTION_KEYS.iter().any(|k| f.has(k));
    let collection = collection(&mut f, defaults, driver, base, p);
    if overrides {
        check_collection(&collection, path, p);
    }
    let mut grantable_roles = Vec::new();
    let admin = if f.has("admin") {
        f.section("admin", ADMIN_LOGIN_KEYS, p).and_then(|mut a| {
            let username = a.required_string("username", p);
            let password = read_password(&mut a, env, base, p);
            let gpath = a.path_of("grantable_roles");
            for (i, raw) in a
                .strings("grantable_roles", p)
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                match crate::gateway::RoleName::parse(raw) {
                    Ok(role) if !grantable_roles.contains(&role) => grantable_roles.push(role),
                    Ok(_) => p.add(format!("{gpath}[{i}]"), format!("{raw:?} is listed twice")),
                    Err(e) => p.add(format!("{gpath}[{i}]"), format!("{raw:?}: {e}")),
                }
            }
            Some(Credentials {
                user: username?,
                password,
            })
        })
    } else {
        None
    };
    Some(TargetConfig {
        name: name?,
        spec: TargetSpec {
            common: CommonSpec {
                host: host?,
                port: port?,
                database: database?,
                monitor: Credentials {
                    user: username?,
                    password,
                },
                admin,
            },
            driver: own?,
        },
        collection,
        grantable_roles,
    })
}

/// Reads `password_env` or `password_file`; an inline `password` is an error with a hint.
fn read_password(
    f: &mut Fields,
    env: &dyn Fn(&str) -> Option<String>,
    base: &Path,
    p: &mut Problems,
) -> Option<Secret> {
    if f.take("password").is_some() {
        p.add(
            f.path_of("password"),
            "inline passwords are not allowed; use password_env: VARIABLE or password_file: PATH",
        );
    }
    let from_env = f.string("password_env", p);
    let from_file = f.path("password_file", base, p);
    match (from_env, from_file) {
        (Some(_), Some(_)) => {
            p.add(
                f.path_of("password_env"),
                "set password_env or password_file, not both",
            );
            None
        }
        (Some(var), None) => match env(&var) {
            Some(value) if !value.is_empty() => Some(Secret::new(value)),
            _ => {
                p.add(
                    f.path_of("password_env"),
                    format!("environment variable {var} is not set or empty"),
                );
                None
            }
        },
        (None, Some(file)) => match read_secret_file(&file) {
            Ok(secret) => {
                if secret.loose {
                    p.warn(
                        f.path_of("password_file"),
                        format!(
                            "{} can be read or changed by users other than its owner (group or other permission bits are set); chmod 600 it",
                            file.display()
                        ),
                    );
                }
                password_from_file(secret.text, &file, f, p)
            }
            Err(e) => {
                p.add(
                    f.path_of("password_file"),
                    format!("cannot read {}: {e}", file.display()),
                );
                None
            }
        },
        (None, None) => None,
    }
}

/// The longest password file read: far above any password, and a bound on what a mistaken
/// path (a log file, a device) can make Mesa read.
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// A secret file's text, and whether anyone but its owner may read or change it.
struct SecretFile {
    text: String,
    /// Group or other permission bits are set (`0o077`).
    loose: bool,
}

/// Reads a secret file: a regular file (not a device or FIFO, which could block or never
/// end) of at most [`MAX_SECRET_FILE_BYTES`], as UTF-8. The permissions come from the same
/// open file, so they are the ones of the file that was read.
fn read_secret_file(path: &Path) -> std::io::Result<SecretFile> {
    use std::io::Read as _;
    use std::os::unix::fs::PermissionsExt as _;
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    if meta.len() > MAX_SECRET_FILE_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_SECRET_FILE_BYTES} bytes; is this really a password file?"
        )));
    }
    let mut text = String::new();
    file.take(MAX_SECRET_FILE_BYTES).read_to_string(&mut text)?;
    Ok(SecretFile {
        text,
        loose: meta.permissions().mode() & 0o077 != 0,
    })
}

/// A password from a file's text. A trailing newline is an artefact of `echo` or editors,
/// never part of a password.
fn password_from_file(text: String, file: &Path, f: &Fields, p: &mut Problems) -> Option<Secret> {
    let value = text.trim_end_matches(['\n', '\r']);
    if value.is_empty() {
        p.add(
            f.path_of("password_file"),
            format!("{} is empty", file.display()),
        );
        None
    } else {
        Some(Secret::new(value))
    }
}
