//! Loopback ports that cannot be taken between the moment they are chosen and the moment the
//! server that needs them binds.
//!
//! Binding port 0, reading the port and closing the socket (the usual `free_port`) races:
//! the kernel hands the same ephemeral port to the next `bind(0)` or outgoing connection of
//! any process, and two tests running at once can be told the same number. A [`Reserved`]
//! port instead comes from below the kernel's ephemeral range
//! (`/proc/sys/net/ipv4/ip_local_port_range`), which the kernel never hands out by itself,
//! and is held by an exclusive lock on `$TMPDIR/mesa-ports/<port>.lock` for as long as the
//! value lives, which every other user of this module (any test binary, the benchmark, the
//! soak) respects. A port some unrelated program listens on is skipped (it is bound once
//! before it is handed out).
//!
//! Where the process under test can bind port 0 itself and say which port it got (Mesa's
//! own listeners do), tests do that instead; this module is for servers that cannot
//! (PostgreSQL, Prometheus, postgres_exporter).

use std::fs::File;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU16, Ordering};

/// A loopback port held for this value's lifetime.
#[derive(Debug)]
pub struct Reserved {
    port: u16,
    _lock: File,
}

impl Reserved {
    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// The first port of the kernel's ephemeral range (32768 on Linux by default).
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// Where the next search starts, so one process does not retry the ports it holds.
static NEXT: AtomicU16 = AtomicU16::new(0);

/// Reserves a loopback port that nothing listens on.
pub fn reserve() -> std::io::Result<Reserved> {
    let end = ephemeral_start().clamp(11_000, 61_000);
    let start = end - 10_000;
    let span = u32::from(end - start);
    let dir = std::env::temp_dir().join("mesa-ports");
    std::fs::create_dir_all(&dir)?;
    // Spread processes over the range (by pid), then walk it.
    let seed = NEXT.fetch_add(1, Ordering::Relaxed);
    let first = (std::process::id() * 7919 + u32::from(seed) * 13) % span;
    for i in 0..span {
        let port = start + u16::try_from((first + i) % span).unwrap_or(0);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(format!("{port}.lock")))?;
        if lock.try_lock().is_err() {
            continue;
        }
        // Held by the lock from here on; skip it if another program listens on it.
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(Reserved { port, _lock: lock });
        }
    }
    Err(std::io::Error::other(format!(
        "no free loopback port in {start}..{end}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_ports_are_distinct_below_the_ephemeral_range_and_released_on_drop() {
        let held: Vec<Reserved> = (0..20).map(|_| reserve().expect("a port")).collect();
        let mut ports: Vec<u16> = held.iter().map(Reserved::port).collect();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 20, "{ports:?}");
        assert!(ports.iter().all(|p| *p < ephemeral_start()), "{ports:?}");
        // Another holder (a second process takes the same file lock) cannot have them.
        let dir = std::env::temp_dir().join("mesa-ports");
        let again = File::options()
            .write(true)
            .open(dir.join(format!("{}.lock", ports[0])))
            .expect("lock file");
        assert!(again.try_lock().is_err(), "a held port was lockable");
        drop(held);
        assert!(
            again.try_lock().is_ok(),
            "a dropped reservation stayed held"
        );
    }
}
