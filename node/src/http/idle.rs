//! The idle deadline of a connection: a wrapper on the socket notes every read or write that
//! moves at least one byte, and a watchdog resolves once none has for the idle timeout. The
//! connection's task then drops the connection, which closes the socket and drops whatever the
//! connection held: a request's handler, an answer's body stream (and the export permit inside
//! it).
//!
//! Why on the socket and not on requests: what stalls is the visitor, at any stage. One that
//! sends half a body, or that stops reading an answer streamed to it (the socket's buffers fill
//! and every write waits), makes no progress either way, and hyper alone would wait for it
//! forever.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// When a connection last moved a byte.
#[derive(Debug)]
pub(super) struct Progress {
    opened: Instant,
    /// Milliseconds from `opened` to the last read or write that moved a byte.
    last: AtomicU64,
}

impl Progress {
    fn touch(&self) {
        let now = self.opened.elapsed().as_millis();
        self.last
            .store(u64::try_from(now).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.opened + Duration::from_millis(self.last.load(Ordering::Relaxed))
    }

    /// Resolves once nothing has moved for `limit`.
    pub(super) async fn idle_for(self: Arc<Self>, limit: Duration) {
        loop {
            let deadline = self.last() + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// A socket whose reads and writes are noted in a `Progress`.
#[derive(Debug)]
pub(super) struct Watched<T> {
    inner: T,
    progress: Arc<Progress>,
}

impl<T> Watched<T> {
    /// Wraps `inner`; its clock starts now.
    pub(super) fn new(inner: T) -> (Watched<T>, Arc<Progress>) {
        let progress = Arc::new(Progress {
            opened: Instant::now(),
            last: AtomicU64::new(0),
        });
        (
            Watched {
                inner,
                progress: progress.clone(),
            },
            progress,
        )
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.progress.touch();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.progress.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.progress.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn idles_out_only_after_the_limit_without_progress() {
        let (near, mut far) = tokio::io::duplex(16);
        let (mut watched, progress) = Watched::new(near);
        let idle = tokio::spawn(progress.clone().idle_for(Duration::from_secs(30)));
        tokio::time::sleep(Duration::from_secs(20)).await;
        // Progress at 20 s pushes the deadline to 50 s.
        far.write_all(b"x").await.unwrap_or_else(|e| panic!("{e}"));
        let mut byte = [0u8; 1];
        watched
            .read_exact(&mut byte)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        tokio::time::sleep(Duration::from_secs(25)).await;
        assert!(!idle.is_finished(), "idled out at 45 s");
        // A write that fills the pipe and then waits is no progress.
        watched
            .write_all(&[0u8; 16])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let stuck = tokio::spawn(async move { watched.write_all(&[1u8; 16]).await });
        tokio::time::sleep(Duration::from_secs(31)).await;
        assert!(
            idle.is_finished(),
            "not idled out 31 s after the last write"
        );
        assert!(!stuck.is_finished());
    }
}
