//! Connection limits and timeouts of the HTTP server.
//!
//! [`LimitedListener`] accepts at most `max_connections` connections at once (further clients
//! wait in the kernel's accept backlog until one closes) and wraps each in a [`TimedStream`],
//! which closes a connection that has no request in progress when
//!
//! * no byte of a next request arrives within `idle_timeout` (after the connection opened or the
//!   previous response finished: the keep-alive timeout), or
//! * the request head, once begun, is not complete within `header_timeout` (bytes trickling in
//!   do not extend it, so a slow-loris client cannot hold a connection).
//!
//! Whether a request is in progress is known from [`ConnHandle`], the connect info of every
//! request: the server's admission middleware holds a [`RequestActivity`] from the moment the
//! head is parsed until the response body has been produced. While a request is in progress
//! reads are not timed (a long generation is not cut off); the body's own read timeout is applied
//! where the body is read.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Timeouts applied to connections with no request in progress.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timeouts {
    /// Longest wait for the first byte of a request.
    pub idle: Duration,
    /// Longest time from the first byte of a request head to its end.
    pub header: Duration,
}

/// A TCP listener with a connection limit whose connections time out (see the module docs).
#[derive(Debug)]
pub(crate) struct LimitedListener {
    inner: TcpListener,
    slots: Arc<Semaphore>,
    timeouts: Timeouts,
}

impl LimitedListener {
    /// Wraps `inner`: at most `max_connections` (at least 1) connections at once.
    pub(crate) fn new(inner: TcpListener, max_connections: usize, timeouts: Timeouts) -> Self {
        let permits = max_connections.clamp(1, Semaphore::MAX_PERMITS);
        Self { inner, slots: Arc::new(Semaphore::new(permits)), timeouts }
    }
}

impl Listener for LimitedListener {
    type Io = TimedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            // The semaphore is never closed; `pending` keeps the type honest without a panic.
            let Ok(slot) = self.slots.clone().acquire_owned().await else {
                return std::future::pending().await;
            };
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    return (TimedStream::new(stream, slot, self.timeouts), addr);
                }
                Err(e) => {
                    // Per-connection errors (reset before accept) are routine; others (out of
                    // file descriptors) are retried after a pause instead of spinning.
                    tracing::debug!("inference server accept failed: {e}");
                    drop(slot);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

#[derive(Debug)]
struct ConnState {
    /// Requests of this connection in progress.
    in_flight: usize,
    /// When the connection last became idle (opened, or a response finished).
    idle_since: Instant,
    /// When the first byte of the next request head arrived, if it has.
    head_started: Option<Instant>,
    /// The task reading the connection, woken when the connection becomes idle.
    reader: Option<Waker>,
}

/// The shared activity record of one connection: the connect info handed to every request.
#[derive(Clone, Debug)]
pub(crate) struct ConnHandle(Arc<Mutex<ConnState>>);

impl ConnHandle {
    fn lock(&self) -> MutexGuard<'_, ConnState> {
        match self.0.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Marks a request of this connection as in progress until the returned guard is dropped.
    pub(crate) fn begin(&self) -> RequestActivity {
        let mut st = self.lock();
        st.in_flight += 1;
        st.head_started = None;
        RequestActivity(self.clone())
    }
}

impl Connected<IncomingStream<'_, LimitedListener>> for ConnHandle {
    fn connect_info(stream: IncomingStream<'_, LimitedListener>) -> Self {
        stream.io().handle.clone()
    }
}

/// A request in progress on a connection; dropping it (when the response body is done) makes
/// the connection idle again and restarts its idle timeout.
#[derive(Debug)]
pub(crate) struct RequestActivity(ConnHandle);

impl Drop for RequestActivity {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.in_flight = st.in_flight.saturating_sub(1);
        if st.in_flight == 0 {
            st.idle_since = Instant::now();
            st.head_started = None;
            if let Some(w) = st.reader.take() {
                w.wake();
            }
        }
    }
}

/// An accepted connection: the TCP stream, its connection slot, and its timeouts.
#[derive(Debug)]
pub(crate) struct TimedStream {
    stream: TcpStream,
    handle: ConnHandle,
    timer: Pin<Box<Sleep>>,
    timeouts: Timeouts,
    _slot: OwnedSemaphorePermit,
}

impl TimedStream {
    fn new(stream: TcpStream, slot: OwnedSemaphorePermit, timeouts: Timeouts) -> Self {
        let now = Instant::now();
        let state = ConnState { in_flight: 0, idle_since: now, head_started: None, reader: None };
        Self {
            stream,
            handle: ConnHandle(Arc::new(Mutex::new(state))),
            timer: Box::pin(tokio::time::sleep_until(now + timeouts.idle)),
            timeouts,
            _slot: slot,
        }
    }
}

impl AsyncRead for TimedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let mut st = this.handle.lock();
                    if st.in_flight == 0 && st.head_started.is_none() {
                        st.head_started = Some(Instant::now());
                    }
                }
                return Poll::Ready(Ok(()));
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => {}
        }
        let deadline = {
            let mut st = this.handle.lock();
            st.reader = Some(cx.waker().clone());
            if st.in_flight > 0 {
                None
            } else {
                Some(match st.head_started {
                    Some(t) => t + this.timeouts.header,
                    None => st.idle_since + this.timeouts.idle,
                })
            }
        };
        let Some(deadline) = deadline else { return Poll::Pending };
        if this.timer.deadline() != deadline {
            this.timer.as_mut().reset(deadline);
        }
        match this.timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no complete request within the timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for TimedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
