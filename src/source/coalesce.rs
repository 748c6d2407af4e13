//! Runs of the server's CopyData messages merged into fewer, larger ones before
//! tokio-postgres parses them.
//!
//! PostgreSQL sends a COPY result as one CopyData message per row, and tokio-postgres
//! hands each message to the reader as a reference-counted buffer of its own: parsing,
//! two reference counts up and down, and a pass through its response channel, for every
//! row (about 5% of tributary's CPU for the benchmark's 10M rows). The protocol gives
//! CopyData boundaries no meaning (COPY data is a byte stream, and the COPY decoder
//! accepts any chunking), so whole CopyData messages that follow each other are passed
//! on as one, as large as the reader's buffer allows. Every other message, and a
//! CopyData message that does not fit, passes through byte for byte.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, TlsStream};

const COPY_DATA: u8 = b'd';
/// How much of the stream is read ahead to find whole messages in.
const LOOKAHEAD: usize = 64 << 10;

/// A server stream whose consecutive CopyData messages are merged.
pub struct Coalesce<S> {
    inner: S,
    input: Box<[u8]>,
    /// `input[start..end]` has been read and not yet passed on.
    start: usize,
    end: usize,
    /// Bytes of the current message still to pass on as they are.
    raw: usize,
}

impl<S> Coalesce<S> {
    pub fn new(inner: S) -> Coalesce<S> {
        Coalesce {
            inner,
            input: vec![0; LOOKAHEAD].into_boxed_slice(),
            start: 0,
            end: 0,
            raw: 0,
        }
    }

    /// Moves what it can from the read-ahead bytes to `out`: a run of whole CopyData
    /// messages as one message, anything else as it is.
    fn pass(&mut self, out: &mut ReadBuf<'_>) {
        while out.remaining() > 0 && self.start < self.end {
            if self.raw > 0 {
                let n = self.raw.min(self.end - self.start).min(out.remaining());
                out.put_slice(&self.input[self.start..self.start + n]);
                self.start += n;
                self.raw -= n;
                continue;
            }
            let Some((tag, len)) = header(&self.input[self.start..self.end]) else {
                break;
            };
            if tag != COPY_DATA || len < 4 {
                // Not CopyData, or a length below its own 4 bytes, which tokio-postgres
                // reports: as it is.
                self.raw = 1 + len;
                continue;
            }
            // The whole CopyData messages from here that fit in `out` as one.
            let mut at = self.start;
            let mut payload = 0;
            while let Some((tag, len)) = header(&self.input[at..self.end]) {
                let whole = at + 1 + len <= self.end;
                if tag != COPY_DATA || len < 4 || !whole || 5 + payload + len - 4 > out.remaining()
                {
                    break;
                }
                payload += len - 4;
                at += 1 + len;
            }
            if at == self.start {
                // Not all here yet, or larger than `out`: passed on as it comes.
                self.raw = 1 + len;
                continue;
            }
            out.put_slice(&[COPY_DATA]);
            out.put_slice(&((4 + payload) as u32).to_be_bytes());
            while self.start < at {
                let (_, len) = header(&self.input[self.start..at]).expect("walked above");
                out.put_slice(&self.input[self.start + 5..self.start + 1 + len]);
                self.start += 1 + len;
            }
        }
    }
}

/// A message's tag and length (which counts itself, not the tag), once 5 bytes are there.
fn header(data: &[u8]) -> Option<(u8, usize)> {
    let h = data.first_chunk::<5>()?;
    Some((h[0], u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize))
}

impl<S: AsyncRead + Unpin> AsyncRead for Coalesce<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if out.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            let before = out.filled().len();
            this.pass(out);
            if out.filled().len() > before {
                return Poll::Ready(Ok(()));
            }
            // Fewer than 5 bytes of a message are here: keep them, read more after them.
            this.input.copy_within(this.start..this.end, 0);
            this.end -= this.start;
            this.start = 0;
            let mut read = ReadBuf::new(&mut this.input[this.end..]);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            let n = read.filled().len();
            if n == 0 {
                // The end of the stream: what is left of a message goes as it is.
                out.put_slice(&this.input[..this.end]);
                this.end = 0;
                return Poll::Ready(Ok(()));
            }
            this.end += n;
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Coalesce<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl<S: TlsStream + Unpin> TlsStream for Coalesce<S> {
    fn channel_binding(&self) -> ChannelBinding {
        self.inner.channel_binding()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use std::collections::VecDeque;

    /// A stream that hands out its bytes in the given chunks, always ready.
    struct Chunks(VecDeque<Vec<u8>>);

    impl AsyncRead for Chunks {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if let Some(chunk) = self.0.pop_front() {
                let n = chunk.len().min(buf.remaining());
                buf.put_slice(&chunk[..n]);
                if n < chunk.len() {
                    self.0.push_front(chunk[n..].to_vec());
                }
            }
            Poll::Ready(Ok(()))
        }
    }

    /// The whole messages of `data`, and the bytes after them.
    fn messages(data: &[u8]) -> (Vec<(u8, Vec<u8>)>, &[u8]) {
        let mut out = Vec::new();
        let mut at = 0;
        while let Some((tag, len)) = header(&data[at..]) {
            if at + 1 + len > data.len() {
                break;
            }
            out.push((tag, data[at + 5..at + 1 + len].to_vec()));
            at += 1 + len;
        }
        (out, &data[at..])
    }

    /// What a reader makes of the messages: CopyData payloads between other messages are
    /// one stream of bytes.
    fn meaning(messages: &[(u8, Vec<u8>)]) -> Vec<(u8, Vec<u8>)> {
        let mut out: Vec<(u8, Vec<u8>)> = Vec::new();
        for (tag, body) in messages {
            match out.last_mut() {
                Some((COPY_DATA, joined)) if *tag == COPY_DATA => joined.extend(body),
                _ => out.push((*tag, body.clone())),
            }
        }
        out
    }

    fn message(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![tag];
        m.extend(((body.len() + 4) as u32).to_be_bytes());
        m.extend(body);
        m
    }

    fn read_all(stream: Vec<u8>, rng: &mut rand::rngs::SmallRng) -> Vec<u8> {
        let mut chunks = VecDeque::new();
        let mut at = 0;
        while at < stream.len() {
            let end = (at + rng.random_range(1..20_000)).min(stream.len());
            chunks.push_back(stream[at..end].to_vec());
            at = end;
        }
        let mut reader = Coalesce::new(Chunks(chunks));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut out = Vec::new();
        loop {
            let mut space = vec![0; rng.random_range(1..10_000)];
            let mut buf = ReadBuf::new(&mut space);
            match Pin::new(&mut reader).poll_read(&mut cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return out,
                Poll::Ready(Ok(())) => out.extend_from_slice(buf.filled()),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn copy_data_runs_are_merged_and_nothing_else_changes() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(9);
        let mut merged = 0;
        for _ in 0..300 {
            let mut stream = Vec::new();
            let mut sent = 0;
            for _ in 0..rng.random_range(0..400) {
                let (tag, size) = match rng.random_range(0..100) {
                    0..=4 => (b"CZTN"[rng.random_range(0..4)], rng.random_range(0..50)),
                    // Larger than the read-ahead: passed on as it comes.
                    5 => (COPY_DATA, rng.random_range(LOOKAHEAD..3 * LOOKAHEAD)),
                    _ => (COPY_DATA, rng.random_range(0..300)),
                };
                let body: Vec<u8> = (0..size).map(|_| rng.random()).collect();
                stream.extend(message(tag, &body));
                sent += 1;
            }
            // Sometimes cut inside the last message, as a dropped connection would.
            let cut = if rng.random_range(0..4) == 0 && !stream.is_empty() {
                rng.random_range(0..stream.len())
            } else {
                stream.len()
            };
            stream.truncate(cut);
            let (want, want_rest) = messages(&stream);
            let want_rest = want_rest.to_vec();
            let out = read_all(stream, &mut rng);
            let (got, got_rest) = messages(&out);
            assert_eq!(meaning(&got), meaning(&want));
            assert_eq!(got_rest, want_rest, "an incomplete message passes as it is");
            merged += sent - got.len();
        }
        assert!(merged > 10_000, "runs were merged: {merged} messages fewer");
    }

    #[test]
    fn a_malformed_length_reaches_the_reader_as_it_came() {
        let mut stream = [message(COPY_DATA, b"ab"), message(COPY_DATA, b"cd")].concat();
        let bad = [COPY_DATA, 0, 0, 0, 2, 9, 9, 9];
        stream.extend(bad);
        stream.extend(message(COPY_DATA, b"ef"));
        let mut reader = Coalesce::new(Chunks(VecDeque::from([stream])));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut space = vec![0; 1024];
        let mut buf = ReadBuf::new(&mut space);
        assert!(
            Pin::new(&mut reader)
                .poll_read(&mut cx, &mut buf)
                .is_ready()
        );
        // The good messages merged, then the bad header as it was sent.
        let want = [&message(COPY_DATA, b"abcd")[..], &bad[..5]].concat();
        assert_eq!(&buf.filled()[..want.len()], &want[..]);
    }
}
