//! A TCP fault proxy between Mesa and PostgreSQL, for the fault suite and the soak.
//!
//! It forwards bytes both ways until told to misbehave. A new mode applies at once, to new
//! connections and to the ones in flight:
//! - `Refuse`: the port is closed (new connections are refused) and open connections are
//!   reset, as when the server goes away; the port reopens on `Pass`;
//! - `BlackHole`: connections are accepted and nothing is ever answered;
//! - `StallAfter(n)`: each connection forwards `n` bytes from the server, then nothing more;
//! - `Latency(d)`: every chunk waits `d` before it is forwarded;
//! - `Reset`: connections are reset (RST) as soon as they carry a byte, and new ones at once.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward both ways.
    Pass,
    /// Close the port (connections are refused) and reset the open ones: the server is gone.
    Refuse,
    /// Accept and never answer.
    BlackHole,
    /// Forward this many bytes from the server per connection, then nothing.
    StallAfter(usize),
    /// Delay every chunk this long.
    Latency(Duration),
    /// Reset connections (RST) as soon as they carry a byte.
    Reset,
}

/// A running proxy; stops when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// A proxy on a free loopback port in front of `upstream`, passing bytes.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (mode, watcher) = watch::channel(Mode::Pass);
        let task = tokio::spawn(accept_loop(listener, addr, upstream, watcher));
        Self { addr, mode, task }
    }

    /// The port Mesa should connect to.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Switches the mode (for new and open connections).
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

async fn accept_loop(
    mut listener: TcpListener,
    addr: SocketAddr,
    upstream: SocketAddr,
    mut mode: watch::Receiver<Mode>,
) {
    loop {
        if *mode.borrow() == Mode::Refuse {
            drop(listener);
            // Closed until the mode changes; then the same port again. Meanwhile a socket
            // bound to the port and not listening keeps it: connections are refused, and no
            // other listener of the machine (another test's proxy in front of the same
            // server) can be given the port and answer Mesa in this proxy's place.
            let hold = hold_port(addr);
            while *mode.borrow_and_update() == Mode::Refuse {
                if mode.changed().await.is_err() {
                    return;
                }
            }
            drop(hold);
            listener = loop {
                match TcpListener::bind(addr).await {
                    Ok(l) => break l,
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            };
        }
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                tokio::spawn(connection(client, upstream, mode.clone()));
            }
            changed = mode.changed() => if changed.is_err() { return },
        }
    }
}

/// A socket bound to `addr` that does not listen: the port stays this proxy's while
/// connections to it are refused. `SO_REUSEADDR`, as the listener had, so the connections
/// the listener left in `TIME_WAIT` do not stand in the way; `None` if it cannot be bound.
fn hold_port(addr: SocketAddr) -> Option<socket2::Socket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .ok()?;
    socket.set_reuse_address(true).ok()?;
    socket.bind(&addr.into()).ok()?;
    Some(socket)
}

/// Makes closing `stream` send a reset instead of a FIN.
fn zero_linger(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

/// Closes `stream` with a reset.
fn reset(stream: TcpStream) {
    zero_linger(&stream);
    drop(stream);
}

async fn connection(client: TcpStream, upstream: SocketAddr, mode: watch::Receiver<Mode>) {
    let current = *mode.borrow();
    match current {
        Mode::Reset => return reset(client),
        Mode::BlackHole => return hold(client).await,
        _ => {}
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return reset(client);
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = pump(client_read, server_write, mode.clone(), false);
    let down = pump(server_read, client_write, mode, true);
    // Either side ending ends both.
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

/// Accepts and reads whatever arrives, answering nothing, until the peer goes away.
async fn hold(mut client: TcpStream) {
    let mut buf = [0u8; 4096];
    while matches!(client.read(&mut buf).await, Ok(n) if n > 0) {}
}

/// Forwards `from` to `to` under the current mode. `from_server` marks the direction the
/// `StallAfter` budget counts.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
    from_server: bool,
) {
    // Both sockets close with a reset once the mode says so (whichever pump sees it first
    // ends the connection).
    let reset_both = |from: &tokio::net::tcp::OwnedReadHalf,
                      to: &tokio::net::tcp::OwnedWriteHalf| {
        zero_linger(from.as_ref());
        zero_linger(to.as_ref());
    };
    let mut buf = vec![0u8; 16 * 1024];
    let mut forwarded = 0usize;
    loop {
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            // A mode change acts on an idle connection too (a reset must not wait for bytes).
            changed = mode.changed() => {
                if changed.is_err() { return; }
                if matches!(*mode.borrow(), Mode::Reset | Mode::Refuse) {
                    reset_both(&from, &to);
                    return;
                }
                continue;
            }
        };
        let current = *mode.borrow();
        let mut chunk = &buf[..n];
        match current {
            Mode::Pass => {}
            Mode::Latency(d) => tokio::time::sleep(d).await,
            Mode::BlackHole => {
                // Swallow everything from now on.
                continue;
            }
            Mode::StallAfter(limit) => {
                if from_server {
                    let room = limit.saturating_sub(forwarded);
                    chunk = &chunk[..chunk.len().min(room)];
                }
            }
            // A session kept open must not outlive the port: a closed port is a server gone.
            Mode::Reset | Mode::Refuse => {
                reset_both(&from, &to);
                return;
            }
        }
        if chunk.is_empty() {
            continue;
        }
        if to.write_all(chunk).await.is_err() {
            return;
        }
        forwarded += chunk.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// While refusing, the port is refused to Mesa and kept from everyone else; on `Pass` it
    /// forwards again. Without the held port, any bind of the machine could take it over.
    #[tokio::test]
    async fn a_refusing_proxy_keeps_its_port_and_reopens_it() {
        let upstream = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let proxy = FaultProxy::start(upstream.local_addr().expect("addr")).await;
        let addr = SocketAddr::from(([127, 0, 0, 1], proxy.port()));
        proxy.set(Mode::Refuse);
        // The accept loop acts on the mode in its own task.
        let mut refused = false;
        for _ in 0..200 {
            match TcpStream::connect(addr).await {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    refused = true;
                    break;
                }
                _ => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
        assert!(refused, "connections to a refusing proxy are refused");
        // The kernel gives a bind to port 0 only a port no socket holds; a plain bind to the
        // port itself is refused the same way.
        let other = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        assert!(
            other.bind(&addr.into()).is_err(),
            "the refusing proxy's port was free for another socket"
        );
        proxy.set(Mode::Pass);
        let mut client = None;
        for _ in 0..200 {
            if let Ok(c) = TcpStream::connect(addr).await {
                client = Some(c);
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut client = client.expect("the port reopens on Pass");
        let (mut server, _) = upstream.accept().await.expect("forwarded");
        client.write_all(b"ping").await.expect("write");
        let mut buf = [0u8; 4];
        server.read_exact(&mut buf).await.expect("read");
        assert_eq!(&buf, b"ping");
    }
}
