//! A read-ahead buffer between a TCP socket and rustls. rustls asks its transport for at most 4 KiB per
//! read (its deframer grows in 4 KiB steps), so a 16 KiB TLS record costs four `read` syscalls and as
//! many wake-ups; a bulk transfer spends more time in those than in AES-GCM. [`ReadAhead`] reads up to
//! [`CAPACITY`] bytes per syscall and serves rustls's small reads from memory. Writes pass straight
//! through (rustls already writes whole records, vectored).

use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes read from the socket at once: several TLS records, and no more than a socket usually holds.
pub(crate) const CAPACITY: usize = 256 * 1024;

/// `inner` with reads buffered ahead; see the module docs.
#[derive(Debug)]
pub(crate) struct ReadAhead<S> {
    inner: S,
    buffer: Box<[u8]>,
    /// `buffer[start..end]` holds bytes read from `inner` and not yet handed out.
    start: usize,
    end: usize,
}

impl<S> ReadAhead<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self {
            inner,
            buffer: vec![0; CAPACITY].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadAhead<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.start == this.end {
            // A caller asking for at least as much as we would buffer gains nothing from the copy.
            if out.remaining() >= this.buffer.len() {
                return Pin::new(&mut this.inner).poll_read(cx, out);
            }
            let mut fill = ReadBuf::new(&mut this.buffer);
            std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, &mut fill))?;
            this.start = 0;
            this.end = fill.filled().len();
            if this.end == 0 {
                return Poll::Ready(Ok(())); // EOF
            }
        }
        let take = out.remaining().min(this.end - this.start);
        out.put_slice(&this.buffer[this.start..this.start + take]);
        this.start += take;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ReadAhead<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// Counts the reads that reach the inner stream.
    struct CountingReads<S> {
        inner: S,
        reads: usize,
    }

    impl<S: AsyncRead + Unpin> AsyncRead for CountingReads<S> {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            out: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let this = self.get_mut();
            this.reads += 1;
            Pin::new(&mut this.inner).poll_read(cx, out)
        }
    }

    #[tokio::test]
    async fn small_reads_get_every_byte_in_order_from_few_inner_reads() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let (mut far, near) = tokio::io::duplex(CAPACITY);
        let writer = {
            let data = data.clone();
            tokio::spawn(async move {
                far.write_all(&data).await.unwrap();
                far.shutdown().await.unwrap();
            })
        };
        writer.await.unwrap();
        let mut reader = ReadAhead::new(CountingReads {
            inner: near,
            reads: 0,
        });
        let mut got = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let read = reader.read(&mut chunk).await.unwrap();
            if read == 0 {
                break;
            }
            got.extend_from_slice(&chunk[..read]);
        }
        assert_eq!(got, data);
        // 200,000 bytes in 4 KiB reads would be 49 reads; buffered ahead, one read plus the EOF.
        assert!(reader.inner.reads <= 3, "{} inner reads", reader.inner.reads);
    }

    #[tokio::test]
    async fn writes_pass_through() {
        let (far, mut near) = tokio::io::duplex(1024);
        let mut stream = ReadAhead::new(far);
        stream.write_all(b"record").await.unwrap();
        stream.shutdown().await.unwrap();
        let mut got = String::new();
        near.read_to_string(&mut got).await.unwrap();
        assert_eq!(got, "record");
    }
}
