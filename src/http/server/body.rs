//! Reading a request body as its head frames it: a `Content-Length` or chunked transfer coding
//! (RFC 9112 section 7.1), over any buffered reader.
//!
//! Resumable: over a non-blocking reader, a read that needs bytes not received yet fails with
//! `WouldBlock` and consumes nothing it cannot account for (a chunk line is taken only once it is
//! whole), so the same [`Body`] carries on when more bytes arrive. The event loop keeps the
//! decoder's [`BodyState`] between reads.

use std::io::{self, BufRead, Read};

use super::head::Framing;

/// Longest chunk-size line (size, extensions) or trailer line accepted.
const MAX_LINE: usize = 4096;

/// The body of one request. Reads end where the body ends, never past it, so that the next
/// request on the connection starts where it should.
pub(crate) struct Body<R> {
    inner: R,
    state: BodyState,
}

/// Where a body's decoding stands, kept between reads of a non-blocking connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyState {
    framing: Framing,
    /// Bytes left: of the whole body (`Length`) or of the current chunk (`Chunked`).
    left: u64,
    chunked: ChunkState,
    /// A read failed (the client went silent or sent a broken chunk): the rest is unreadable.
    broken: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    Size,
    Data,
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailer lines after the last chunk, up to an empty line.
    Trailers,
    Done,
}

impl BodyState {
    pub fn new(framing: Framing) -> BodyState {
        BodyState {
            framing,
            left: match framing {
                Framing::Length(n) => n,
                Framing::Empty | Framing::Chunked => 0,
            },
            chunked: ChunkState::Size,
            broken: false,
        }
    }

    /// Whether every byte of the body has been read.
    pub fn finished(&self) -> bool {
        match self.framing {
            Framing::Empty => true,
            Framing::Length(_) => self.left == 0,
            Framing::Chunked => self.chunked == ChunkState::Done,
        }
    }
}

impl<R: BufRead> Body<R> {
    #[cfg(test)]
    pub fn new(inner: R, framing: Framing) -> Body<R> {
        Body::resume(inner, BodyState::new(framing))
    }

    /// Carries on decoding a body from where `state` says it stands.
    pub fn resume(inner: R, state: BodyState) -> Body<R> {
        Body { inner, state }
    }

    /// Where the decoding stands, to [`Body::resume`] it later.
    pub fn state(&self) -> BodyState {
        self.state
    }

    /// Whether every byte of the body has been read.
    pub fn finished(&self) -> bool {
        self.state.finished()
    }

    fn read_chunked(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.state.chunked {
                ChunkState::Done => return Ok(0),
                ChunkState::Size => {
                    let line = self.line()?;
                    let size = line.split(';').next().unwrap_or("").trim();
                    // `1*HEXDIG` (RFC 9112 section 7.1): `from_str_radix` alone takes a sign.
                    self.state.left = u64::from_str_radix(size, 16)
                        .ok()
                        .filter(|_| {
                            !size.is_empty()
                                && size.len() <= 15
                                && size.bytes().all(|b| b.is_ascii_hexdigit())
                        })
                        .ok_or_else(|| bad(format!("chunk size `{size}` is not a hex number")))?;
                    if self.state.left == 0 {
                        self.state.chunked = ChunkState::Trailers;
                        continue;
                    }
                    self.state.chunked = ChunkState::Data;
                }
                ChunkState::Data => {
                    let n = self.read_data(buf)?;
                    if self.state.left == 0 {
                        self.state.chunked = ChunkState::DataEnd;
                    }
                    if n > 0 || buf.is_empty() {
                        return Ok(n);
                    }
                }
                ChunkState::Trailers => {
                    // Their contents mean nothing here.
                    if self.line()?.is_empty() {
                        self.state.chunked = ChunkState::Done;
                        return Ok(0);
                    }
                }
                ChunkState::DataEnd => {
                    if !self.line()?.is_empty() {
                        return Err(bad("chunk data is longer than its size".into()));
                    }
                    self.state.chunked = ChunkState::Size;
                }
            }
        }
    }

    /// Up to `self.state.left` bytes of data; an early end of the stream is an error.
    fn read_data(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf
            .len()
            .min(usize::try_from(self.state.left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the client closed the connection before the end of the body",
            ));
        }
        self.state.left -= n as u64;
        Ok(n)
    }

    /// One CRLF-terminated line, without its terminator. Taken only once it is whole: until then
    /// `WouldBlock` (more may come) and nothing is consumed; an empty reader is the end of the
    /// stream.
    fn line(&mut self) -> io::Result<String> {
        let buffered = self.inner.fill_buf()?;
        if buffered.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the client closed the connection inside a chunked body",
            ));
        }
        let Some(end) = buffered.iter().take(MAX_LINE + 2).position(|&b| b == b'\n') else {
            return Err(if buffered.len() > MAX_LINE {
                bad(format!("a chunk line is longer than {MAX_LINE} bytes"))
            } else {
                io::Error::new(
                    io::ErrorKind::WouldBlock,
                    "a chunk line is not complete yet",
                )
            });
        };
        let mut line = buffered[..end].to_vec();
        self.inner.consume(end + 1);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        String::from_utf8(line).map_err(|_| bad("a chunk line is not text".into()))
    }
}

impl<R: BufRead> Read for Body<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.state.broken {
            return Err(io::Error::other("an earlier read of this body failed"));
        }
        let result = match self.state.framing {
            Framing::Empty => Ok(0),
            Framing::Length(_) => self.read_data(buf),
            Framing::Chunked => self.read_chunked(buf),
        };
        // Waiting for bytes is not a failure: the read is tried again once they arrive.
        self.state.broken = matches!(&result, Err(e) if e.kind() != io::ErrorKind::WouldBlock);
        result
    }
}

fn bad(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(wire: &[u8], framing: Framing) -> (io::Result<Vec<u8>>, usize) {
        let mut reader = wire;
        let mut body = Body::new(&mut reader, framing);
        let mut out = Vec::new();
        // Small reads, to cross every boundary.
        let mut buf = [0u8; 3];
        let result = loop {
            match body.read(&mut buf) {
                Ok(0) => break Ok(out),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) => break Err(e),
            }
        };
        let finished = body.finished();
        let rest = reader.len();
        assert!(result.is_err() || finished);
        (result, rest)
    }

    #[test]
    fn reads_exactly_the_body() {
        let (body, rest) = read_all(b"hello world, next", Framing::Length(11));
        assert_eq!((body.unwrap(), rest), (b"hello world".to_vec(), 6));
        let wire = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\nGET /";
        let (body, rest) = read_all(wire, Framing::Chunked);
        assert_eq!((body.unwrap(), rest), (b"hello world".to_vec(), 5));
        let (body, rest) = read_all(b"GET /", Framing::Empty);
        assert_eq!((body.unwrap(), rest), (Vec::new(), 5));
    }

    #[test]
    fn a_broken_body_is_an_error() {
        for (wire, framing) in [
            (&b"hel"[..], Framing::Length(5)),
            (b"5\r\nhel", Framing::Chunked),
            (b"zz\r\nhello\r\n0\r\n\r\n", Framing::Chunked),
            (b"+5\r\nhello\r\n0\r\n\r\n", Framing::Chunked),
            (b"-0\r\n\r\n", Framing::Chunked),
            (b"3\r\nhello\r\n0\r\n\r\n", Framing::Chunked),
            (b"", Framing::Chunked),
        ] {
            assert!(read_all(wire, framing).0.is_err(), "{wire:?}");
        }
    }
}
