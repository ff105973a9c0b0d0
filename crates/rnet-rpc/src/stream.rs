//! Streamed results: a handler hands back a writer of the result's JSON text instead of a
//! `serde_json::Value`, and the server sends it as an HTTP chunked body while it is written.
//!
//! The writer runs on a blocking thread and fills [`STREAM_CHUNK`]-byte chunks into a channel
//! of [`STREAM_CHUNKS_IN_FLIGHT`] places that the HTTP body drains, so the memory of a reply is
//! bounded however large it is. Each chunk must find a place within the server timeout
//! (`-rpcservertimeout`); otherwise the client is not reading, the stream is abandoned, the
//! writer's next write fails (so it returns and drops what it holds) and the connection is
//! closed. A writer that fails after the first chunk went out also closes the connection: the
//! client sees a truncated body, as with Bitcoin Core. An error before any chunk went out
//! becomes an ordinary JSON-RPC error reply.

use std::io::{self, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Bytes, Frame};
use tokio::sync::{Notify, OwnedSemaphorePermit, mpsc};

use crate::error::RpcError;

/// Size of one chunk of a streamed reply (64 KiB).
pub const STREAM_CHUNK: usize = 64 * 1024;
/// Chunks queued between a streamed reply's writer and the connection; the writer waits (at
/// most the server timeout) when they are all taken.
pub const STREAM_CHUNKS_IN_FLIGHT: usize = 4;

/// Why a [`JsonStream`] writer stopped.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// A JSON-RPC error. Returned before any chunk was sent (in practice: before the first
    /// [`STREAM_CHUNK`] bytes), it becomes the reply's error; later, the connection is closed.
    #[error("{0}")]
    Rpc(#[from] RpcError),
    /// Writing failed: the client went away or stopped reading (the stream was abandoned), or
    /// the writer's own I/O failed.
    #[error("stream write failed: {0}")]
    Io(#[from] io::Error),
}

type WriteFn = Box<dyn FnOnce(&mut dyn Write) -> Result<(), StreamError> + Send + 'static>;

/// A result written as JSON text by a closure, returned by handlers registered with
/// [`crate::Registry::register_stream`]. The closure must write exactly one JSON value (what
/// `serde_json::to_writer` would write for the result); it runs on a blocking thread, so it may
/// block (locks, disk reads) and should hold whatever bounds its cost (a permit) until it
/// returns.
pub struct JsonStream {
    write: WriteFn,
}

impl std::fmt::Debug for JsonStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JsonStream")
    }
}

impl JsonStream {
    /// A result written by `write`.
    pub fn new<F>(write: F) -> Self
    where
        F: FnOnce(&mut dyn Write) -> Result<(), StreamError> + Send + 'static,
    {
        Self { write: Box::new(write) }
    }

    /// Run the writer into memory (blocking): the whole JSON text. What batches and
    /// [`crate::Registry::call`] use.
    pub fn into_bytes(self) -> Result<Vec<u8>, RpcError> {
        let mut out = Vec::new();
        match (self.write)(&mut out) {
            Ok(()) => Ok(out),
            Err(StreamError::Rpc(e)) => Err(e),
            Err(StreamError::Io(e)) => {
                Err(RpcError::internal(format!("cannot write the reply: {e}")))
            }
        }
    }

    /// [`JsonStream::into_bytes`] on a blocking thread, parsed into a `Value`.
    pub(crate) async fn into_value(self) -> Result<serde_json::Value, RpcError> {
        let bytes = tokio::task::spawn_blocking(move || self.into_bytes())
            .await
            .map_err(|_| RpcError::internal("streamed result writer failed"))??;
        serde_json::from_slice(&bytes)
            .map_err(|e| RpcError::internal(format!("streamed result is not JSON: {e}")))
    }
}

/// Counters of a server's streamed replies (for monitoring and tests).
#[derive(Debug, Default)]
pub struct StreamStats {
    live_chunks: AtomicUsize,
    peak_chunks: AtomicUsize,
    writers_running: AtomicUsize,
    completed: AtomicU64,
    abandoned: AtomicU64,
    failed: AtomicU64,
}

impl StreamStats {
    /// Chunk buffers alive now: being filled, queued, or held by the connection.
    pub fn live_chunks(&self) -> usize {
        self.live_chunks.load(Ordering::SeqCst)
    }

    /// The most chunk buffers alive at once since the server started.
    pub fn peak_chunks(&self) -> usize {
        self.peak_chunks.load(Ordering::SeqCst)
    }

    /// Writers running now (a writer stops when done, failed or abandoned).
    pub fn writers_running(&self) -> usize {
        self.writers_running.load(Ordering::SeqCst)
    }

    /// Streams written to the end.
    pub fn completed(&self) -> u64 {
        self.completed.load(Ordering::SeqCst)
    }

    /// Streams abandoned because the client did not take a chunk within the server timeout.
    pub fn abandoned(&self) -> u64 {
        self.abandoned.load(Ordering::SeqCst)
    }

    /// Streams whose writer failed, or whose client went away, after the reply started.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::SeqCst)
    }

    fn chunk_allocated(&self) {
        let now = self.live_chunks.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak_chunks.fetch_max(now, Ordering::SeqCst);
    }
}

/// Counts a writer in [`StreamStats::writers_running`] until dropped (even by a panic).
struct Running(Arc<StreamStats>);

impl Running {
    fn new(stats: Arc<StreamStats>) -> Self {
        stats.writers_running.fetch_add(1, Ordering::SeqCst);
        Self(stats)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.writers_running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A chunk's bytes; gives its place in [`StreamStats::live_chunks`] back when dropped, wherever
/// that happens (the connection, the channel, the writer).
struct Chunk {
    data: Vec<u8>,
    stats: Arc<StreamStats>,
}

impl AsRef<[u8]> for Chunk {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        self.stats.live_chunks.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What the writer thread sends to the connection.
enum Msg {
    /// The next chunk.
    Data(Bytes),
    /// The stream is complete.
    End,
    /// Failed before any chunk went out: answer with this error instead.
    Fail(RpcError),
    /// Failed midway: close the connection.
    Abort,
}

/// What the connection needs to run one stream.
pub(crate) struct StreamCtx {
    /// The server timeout: the longest a chunk may wait for a place in the channel.
    pub timeout: Duration,
    /// Notified when the stream is abandoned: the connection closes.
    pub abort: Arc<Notify>,
    /// The server's counters.
    pub stats: Arc<StreamStats>,
}

/// The writer side: fills chunks, sends each with the timeout.
struct ChunkWriter {
    tx: mpsc::Sender<Msg>,
    runtime: tokio::runtime::Handle,
    timeout: Duration,
    stats: Arc<StreamStats>,
    /// The chunk being filled (counted in [`StreamStats::live_chunks`] until dropped).
    buf: Option<Chunk>,
    prefix: Option<Vec<u8>>,
    sent_any: bool,
    dead: Option<io::ErrorKind>,
    abandoned: bool,
}

impl ChunkWriter {
    fn buf(&mut self) -> &mut Vec<u8> {
        let stats = &self.stats;
        let chunk = self.buf.get_or_insert_with(|| {
            stats.chunk_allocated();
            Chunk { data: Vec::with_capacity(STREAM_CHUNK), stats: Arc::clone(stats) }
        });
        &mut chunk.data
    }

    /// Copy `data` into chunks, sending each full one.
    fn push(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let buf = self.buf();
            let take = (STREAM_CHUNK - buf.len()).min(data.len());
            buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if buf.len() == STREAM_CHUNK {
                self.send_chunk()?;
            }
        }
        Ok(())
    }

    /// Send the chunk being filled, if any; waits at most the timeout for a place.
    fn send_chunk(&mut self) -> io::Result<()> {
        if let Some(kind) = self.dead {
            return Err(io::Error::new(kind, "RPC reply stream closed"));
        }
        let Some(chunk) = self.buf.take() else { return Ok(()) };
        let bytes = Bytes::from_owner(chunk);
        let send = tokio::time::timeout(self.timeout, self.tx.send(Msg::Data(bytes)));
        match self.runtime.block_on(send) {
            Ok(Ok(())) => {
                self.sent_any = true;
                Ok(())
            }
            Ok(Err(_)) => {
                self.dead = Some(io::ErrorKind::BrokenPipe);
                Err(io::Error::new(io::ErrorKind::BrokenPipe, "RPC client went away"))
            }
            Err(_) => {
                self.dead = Some(io::ErrorKind::TimedOut);
                self.abandoned = true;
                Err(io::Error::new(io::ErrorKind::TimedOut, "RPC client stopped reading the reply"))
            }
        }
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if let Some(kind) = self.dead {
            return Err(io::Error::new(kind, "RPC reply stream closed"));
        }
        if data.is_empty() {
            return Ok(0);
        }
        if let Some(prefix) = self.prefix.take() {
            self.push(&prefix)?;
        }
        self.push(data)?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        // Chunks go out when full; flushing a partial one would only make more, smaller chunks.
        Ok(())
    }
}

/// How a started stream begins: its first chunk (the reply is on its way) or an error reply.
pub(crate) enum Start {
    /// The reply's body, from its first chunk on.
    Data(StreamBody),
    /// The writer failed before anything was sent: reply with this error.
    Fail(RpcError),
}

/// Run `stream` on a blocking thread between `prefix` and `suffix` (the reply envelope) and
/// wait for its first chunk. `permit` (the work-queue slot) is held until the body ends.
pub(crate) async fn start(
    stream: JsonStream,
    prefix: Vec<u8>,
    suffix: Vec<u8>,
    ctx: StreamCtx,
    permit: Option<OwnedSemaphorePermit>,
) -> Start {
    let (tx, mut rx) = mpsc::channel(STREAM_CHUNKS_IN_FLIGHT);
    let StreamCtx { timeout, abort, stats } = ctx;
    let mut w = ChunkWriter {
        tx,
        runtime: tokio::runtime::Handle::current(),
        timeout,
        stats: Arc::clone(&stats),
        buf: None,
        prefix: Some(prefix),
        sent_any: false,
        dead: None,
        abandoned: false,
    };
    let running = Running::new(Arc::clone(&stats));
    let writer_abort = Arc::clone(&abort);
    // Not awaited: the body below learns everything through the channel.
    drop(tokio::task::spawn_blocking(move || {
        let _running = running;
        let outcome = (stream.write)(&mut w);
        let outcome = match outcome {
            Ok(()) if w.prefix.is_some() => {
                Err(StreamError::Rpc(RpcError::internal("streamed result wrote nothing")))
            }
            Ok(()) => w.push(&suffix).and_then(|()| w.send_chunk()).map_err(StreamError::Io),
            Err(e) => Err(e),
        };
        let stats = Arc::clone(&w.stats);
        match outcome {
            Ok(()) => {
                let end = tokio::time::timeout(w.timeout, w.tx.send(Msg::End));
                match w.runtime.block_on(end) {
                    Ok(_) => {
                        // Sent, or the body is gone already (then it has ended anyway).
                        stats.completed.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(_) => {
                        tracing::warn!(
                            "RPC reply abandoned: the client took no data for {:?}",
                            w.timeout
                        );
                        stats.abandoned.fetch_add(1, Ordering::SeqCst);
                        writer_abort.notify_one();
                    }
                }
            }
            Err(e) if !w.sent_any && w.dead.is_none() => {
                let e = match e {
                    StreamError::Rpc(e) => e,
                    StreamError::Io(e) => {
                        RpcError::internal(format!("cannot write the reply: {e}"))
                    }
                };
                drop(w.buf.take());
                let _ = w.tx.try_send(Msg::Fail(e));
            }
            Err(e) => {
                if w.abandoned {
                    tracing::warn!(
                        "RPC reply abandoned: the client took no data for {:?}",
                        w.timeout
                    );
                    stats.abandoned.fetch_add(1, Ordering::SeqCst);
                    // The connection may be stuck writing to the client and never poll the
                    // body again: close it from outside.
                    writer_abort.notify_one();
                } else {
                    tracing::debug!("RPC reply stream ended early: {e}");
                    stats.failed.fetch_add(1, Ordering::SeqCst);
                }
                drop(w.buf.take());
                // If the channel is full the body sees the sender gone instead: the same.
                let _ = w.tx.try_send(Msg::Abort);
            }
        }
        drop(w);
    }));
    match rx.recv().await {
        Some(Msg::Data(first)) => Start::Data(StreamBody {
            first: Some(first),
            rx,
            ended: false,
            failed: false,
            _permit: permit,
        }),
        Some(Msg::Fail(e)) => Start::Fail(e),
        // The writer panicked (its sender dropped) or ended without a chunk.
        Some(Msg::End | Msg::Abort) | None => {
            Start::Fail(RpcError::internal("the streamed result writer failed"))
        }
    }
}

/// The HTTP body of a streamed reply after its first chunk.
pub(crate) struct StreamBody {
    first: Option<Bytes>,
    rx: mpsc::Receiver<Msg>,
    ended: bool,
    failed: bool,
    _permit: Option<OwnedSemaphorePermit>,
}

impl hyper::body::Body for StreamBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        if self.failed {
            self.failed = false;
            return Poll::Ready(Some(Err(io::Error::other("RPC reply stream failed"))));
        }
        if self.ended {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Msg::Data(b))) => Poll::Ready(Some(Ok(Frame::data(b)))),
            Poll::Ready(Some(Msg::End)) => {
                self.ended = true;
                Poll::Ready(None)
            }
            // Failed midway or the writer died: error the body; hyper then closes the
            // connection, and the client sees a truncated reply, not a complete-looking one.
            // Hyper drops what it has not written yet when a body fails, so first yield once
            // (waking at once): it flushes what it holds, then polls again and gets the error.
            Poll::Ready(Some(Msg::Abort | Msg::Fail(_)) | None) => {
                self.ended = true;
                self.failed = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended && !self.failed && self.first.is_none()
    }
}
