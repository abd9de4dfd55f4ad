//! How long a connection keeps its target's slots: until the server has closed its side of the
//! socket, which PostgreSQL does only as the backend exits, after it has left
//! `pg_stat_activity` and given back its connection slot (a backend's shared-memory exit
//! callbacks run before the one that closes its socket).
//!
//! Mesa's cap of two connections per target counts backends on the server, not sockets in
//! Mesa. tokio-postgres ends a connection as soon as it has sent Terminate and closed its own
//! side, and a startup given up by its deadline goes on in the server; released then, a slot
//! would let a new connection make three backends on the server for as long as the old one
//! takes to exit (on a loaded server, long enough for `pg_stat_activity` to show it). So each
//! connection keeps a second descriptor of its socket ([`Hold`]) and its slots are released
//! when that descriptor reads the end of the stream, or at most [`CLOSE_LINGER`] later (a
//! server that never answers must not hold a target's slots for long).

use std::future::Future;
use std::net::Shutdown;
use std::pin::Pin;
use std::time::Duration;

use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::timeout;
use tokio_postgres::Client;

/// How long [`Hold::close`] waits for the server to end the session before it leaves the wait
/// to the background.
pub const CLOSE_TIMEOUT: Duration = Duration::from_millis(500);
/// The longest a closed connection's slots stay taken while the server has not ended the
/// session.
pub const CLOSE_LINGER: Duration = Duration::from_secs(5);
/// How long an abandoned startup may go on in the background before Mesa ends it itself.
pub const ABANDONED_LINGER: Duration = Duration::from_secs(2);

/// The slots one connection takes: a shared one, and the spare one for admin calls and visits.
pub(crate) struct Permits {
    _shared: OwnedSemaphorePermit,
    _spare: Option<OwnedSemaphorePermit>,
}

impl Permits {
    /// A connection's slots.
    pub(crate) fn new(shared: OwnedSemaphorePermit, spare: Option<OwnedSemaphorePermit>) -> Self {
        Self {
            _shared: shared,
            _spare: spare,
        }
    }
}

/// A connection's slots and a second descriptor of its socket. Dropped however the connection
/// ends (closed, or its caller's future dropped), it releases the slots only once the server
/// has closed its side: in the background, after Mesa has ended its own side.
pub(crate) struct Hold {
    watch: Option<std::net::TcpStream>,
    permits: Option<Permits>,
}

impl Hold {
    /// `permits` held while `watch` (a descriptor of the connection's socket) stays open.
    pub(crate) fn new(watch: Option<std::net::TcpStream>, permits: Permits) -> Self {
        Self {
            watch,
            permits: Some(permits),
        }
    }

    /// Ends the connection once `terminated` (the client's Terminate sent, its side closed)
    /// has finished, and waits up to [`CLOSE_TIMEOUT`] for the server to close its side; a
    /// server slower than that (a loaded machine) keeps the slots taken in the background
    /// until it has ([`release_after`]).
    pub(crate) async fn close(mut self, terminated: impl Future<Output = ()> + Send + 'static) {
        let watch = self.watch.take();
        let mut ended = Box::pin(async move {
            terminated.await;
            if let Some(watch) = watch {
                server_closed(watch).await;
            }
        });
        if timeout(CLOSE_TIMEOUT, &mut ended).await.is_ok() {
            // The watch is taken: dropping the hold frees the slots at once.
            return;
        }
        if let Some(permits) = self.permits.take() {
            release_after(ended, permits);
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        let Some(permits) = self.permits.take() else {
            return;
        };
        match self.watch.take() {
            Some(watch) => release_after(server_closed(watch), permits),
            None => drop(permits),
        }
    }
}

/// Releases `permits` in the background once `ended` (the server closing its side) has
/// finished, or [`CLOSE_LINGER`] later at most; at once outside a runtime, where nothing
/// could wait.
fn release_after(ended: impl Future<Output = ()> + Send + 'static, permits: Permits) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let _ = timeout(CLOSE_LINGER, ended).await;
            drop(permits);
        });
    }
}

/// Ends Mesa's side of `socket` and waits until the server has closed its side (the end of the
/// stream, or an error such as a reset); whatever it still sends is read and discarded.
async fn server_closed(socket: std::net::TcpStream) {
    let _ = socket.shutdown(Shutdown::Write);
    let Ok(mut socket) = TcpStream::from_std(socket) else {
        return;
    };
    let mut buf = [0u8; 1024];
    while matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {}
}

/// A session's startup and authentication, as a future that may outlive its caller.
pub(crate) type Startup<C> =
    Pin<Box<dyn Future<Output = Result<(Client, C), tokio_postgres::Error>> + Send>>;

/// A startup its deadline gave up on, and a second descriptor of its socket: dropping the
/// startup closes tokio-postgres's descriptor, while this one keeps the connection open so
/// Mesa can end it itself and see the server end its side ([`finish_abandoned`]).
pub(crate) struct Abandoned<C> {
    pub(crate) startup: Startup<C>,
    pub(crate) watch: Option<std::net::TcpStream>,
}

/// Lets an abandoned startup finish in the background and holds its slots until the server's
/// backend is gone: a deadline that passes during startup would otherwise drop the socket
/// while the backend goes on authenticating and initialising (on a loaded server, for longer
/// than any fixed wait). A startup that completes within [`ABANDONED_LINGER`] is closed at
/// once (Terminate); one that does not is ended by Mesa (its socket shut down for writing: the
/// backend reads the end of the stream and exits). Either way its [`Hold`] then releases the
/// slots when the server has closed its side, or at most [`CLOSE_LINGER`] later.
pub(crate) fn finish_abandoned<C>(abandoned: Abandoned<C>, permits: Permits)
where
    C: Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
{
    let Abandoned { startup, watch } = abandoned;
    let hold = Hold::new(watch, permits);
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let _ = timeout(ABANDONED_LINGER, async {
                if let Ok((client, connection)) = startup.await {
                    drop(client);
                    let _ = connection.await;
                }
            })
            .await;
            // The startup (and tokio-postgres's descriptor) is dropped by now; the hold's
            // descriptor keeps the connection open until the server's side is closed.
            drop(hold);
        });
    }
}
