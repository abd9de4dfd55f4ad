//! One accepted connection's limits: a write deadline, a minimum send rate, a total lifetime,
//! and eviction when it stalls while the listener is full.
//!
//! A client that sends requests and never reads the answers holds its connection slot with a
//! response stuck in the socket buffers; nothing in hyper times out a write. Here the
//! connection's stream is wrapped in [`Guarded`], which notes when a write has been waiting
//! for the client ([`Conn::stalled_since`]) and fails the write when the client has taken less
//! than [`MIN_SEND_PROGRESS`] bytes within [`WRITE_STALL_TIMEOUT`]. When the listener's cap is
//! reached, connections stalled for [`EVICT_STALLED_AFTER`] are closed first, so clients that
//! read keep being served while non-reading ones come and go.

use std::collections::HashMap;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::CancellationToken;

/// A write that moved less than [`MIN_SEND_PROGRESS`] bytes to the client in this time fails,
/// closing the connection: a response has this long per 16 KiB.
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The least a client must take within [`WRITE_STALL_TIMEOUT`] (a minimum send rate of
/// 1.6 KiB/s, far below any real scraper's).
pub const MIN_SEND_PROGRESS: usize = 16 * 1024;
/// A connection is closed (gracefully, after its request in progress) after this long, so no
/// client keeps a slot forever; Prometheus simply opens a new one.
pub const MAX_CONNECTION_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// When the listener is full, connections whose writes have waited this long are closed to
/// make room.
pub const EVICT_STALLED_AFTER: Duration = Duration::from_millis(500);

/// A connection's shared state: when its write began to wait, and how to close it.
#[derive(Debug)]
pub struct Conn {
    /// Milliseconds since the registry's epoch when a write began to wait; 0: not waiting.
    stalled_since: AtomicU64,
    epoch: Instant,
    /// Cancelled to close the connection at once.
    pub evict: CancellationToken,
}

impl Conn {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// How long a write has been waiting for the client, if one is.
    pub fn stalled_for(&self) -> Option<Duration> {
        match self.stalled_since.load(Ordering::Relaxed) {
            0 => None,
            since => Some(Duration::from_millis(self.now_ms().saturating_sub(since))),
        }
    }
}

/// The connections of one listener.
#[derive(Debug)]
pub struct Registry {
    epoch: Instant,
    next: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            next: AtomicU64::new(0),
            conns: Mutex::new(HashMap::new()),
        }
    }
}

/// A registered connection; unregistered when dropped.
pub struct Registered {
    registry: Arc<Registry>,
    id: u64,
    /// The connection's state.
    pub conn: Arc<Conn>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Ok(mut conns) = self.registry.conns.lock() {
            conns.remove(&self.id);
        }
    }
}

impl Registry {
    /// Registers a new connection.
    pub fn register(self: &Arc<Self>) -> Registered {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            stalled_since: AtomicU64::new(0),
            epoch: self.epoch,
            evict: CancellationToken::new(),
        });
        if let Ok(mut conns) = self.conns.lock() {
            conns.insert(id, conn.clone());
        }
        Registered {
            registry: self.clone(),
            id,
            conn,
        }
    }

    /// Closes every connection whose write has waited at least `after`; returns how many.
    pub fn evict_stalled(&self, after: Duration) -> usize {
        let Ok(conns) = self.conns.lock() else {
            return 0;
        };
        let mut evicted = 0;
        for conn in conns.values() {
            if conn.stalled_for().is_some_and(|d| d >= after) && !conn.evict.is_cancelled() {
                conn.evict.cancel();
                evicted += 1;
            }
        }
        evicted
    }
}

/// A stream whose writes report stalls to its [`Conn`] and fail past the minimum send rate.
pub struct Guarded<S> {
    inner: S,
    conn: Arc<Conn>,
    /// Set while a write waits: fires at the stall deadline.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Bytes the client took since the current stall began.
    progress: usize,
}

impl<S> Guarded<S> {
    /// Wraps `inner` for `conn`.
    pub fn new(inner: S, conn: Arc<Conn>) -> Self {
        Self {
            inner,
            conn,
            deadline: None,
            progress: 0,
        }
    }

    /// A write is waiting: start the clock (once) and fail when it runs out.
    fn waiting(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Error> {
        if self.deadline.is_none() {
            self.conn
                .stalled_since
                .store(self.conn.now_ms(), Ordering::Relaxed);
            self.progress = 0;
            self.deadline = Some(Box::pin(tokio::time::sleep(WRITE_STALL_TIMEOUT)));
        }
        match self.deadline.as_mut().map(|d| d.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client did not read the response",
            )),
            _ => Poll::Pending,
        }
    }

    /// The client took `n` bytes: enough of them end the stall.
    fn moved(&mut self, n: usize) {
        if self.deadline.is_some() {
            self.progress += n;
            if self.progress < MIN_SEND_PROGRESS {
                return;
            }
        }
        self.unstalled();
    }

    /// No write waits for the client any more.
    fn unstalled(&mut self) {
        self.deadline = None;
        self.conn.stalled_since.store(0, Ordering::Relaxed);
    }

    /// What a write of the inner stream answered, with its progress or its stall noted.
    fn written(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<std::io::Result<usize>>,
    ) -> Poll<std::io::Result<usize>> {
        match poll {
            Poll::Ready(Ok(n)) => {
                self.moved(n);
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Ready(Err(ready!(self.waiting(cx)))),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.written(cx, poll)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Pending => Poll::Ready(Err(ready!(self.waiting(cx)))),
            // Everything written so far is with the client (or the kernel): no stall.
            Poll::Ready(Ok(())) => {
                self.unstalled();
                Poll::Ready(Ok(()))
            }
            done => done,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.written(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test(start_paused = true)]
    async fn a_write_the_client_never_takes_fails_at_the_deadline_and_marks_the_stall() {
        let registry = Arc::new(Registry::default());
        let registered = registry.register();
        // A pipe whose reader never reads: 1 KiB of buffer.
        let (client, server) = tokio::io::duplex(1024);
        let mut guarded = Guarded::new(server, registered.conn.clone());
        let started = tokio::time::Instant::now();
        let err = guarded
            .write_all(&vec![0u8; 64 * 1024])
            .await
            .expect_err("the write never completes");
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= WRITE_STALL_TIMEOUT);
        assert!(registered.conn.stalled_for().is_some());
        assert_eq!(registry.evict_stalled(Duration::ZERO), 1);
        assert!(registered.conn.evict.is_cancelled());
        drop(client);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_reads_is_never_cut_off() {
        let registry = Arc::new(Registry::default());
        let registered = registry.register();
        let (mut client, server) = tokio::io::duplex(1024);
        let reader = tokio::spawn(async move {
            let mut sink = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut client, &mut sink)
                .await
                .map(|_| sink.len())
        });
        let mut guarded = Guarded::new(server, registered.conn.clone());
        guarded
            .write_all(&vec![7u8; 256 * 1024])
            .await
            .expect("written");
        guarded.flush().await.expect("flushed");
        guarded.shutdown().await.expect("closed");
        drop(guarded);
        assert_eq!(reader.await.expect("reader").expect("read"), 256 * 1024);
        assert_eq!(registered.conn.stalled_for(), None);
        assert_eq!(registry.evict_stalled(Duration::ZERO), 0);
    }
}
