//! Reading a request body as its head frames it: a `Content-Length` or chunked transfer coding
//! (RFC 9112 section 7.1), over any buffered reader.

use std::io::{self, BufRead, Read};

use super::head::Framing;

/// Longest chunk-size line (size, extensions) or trailer line accepted.
const MAX_LINE: usize = 4096;

/// The body of one request. Reads end where the body ends, never past it, so that the next
/// request on the connection starts where it should.
pub(crate) struct Body<R> {
    inner: R,
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
    Done,
}

impl<R: BufRead> Body<R> {
    pub fn new(inner: R, framing: Framing) -> Body<R> {
        Body {
            inner,
            framing,
            left: match framing {
                Framing::Length(n) => n,
                Framing::Empty | Framing::Chunked => 0,
            },
            chunked: ChunkState::Size,
            broken: false,
        }
    }

    /// Whether a read of the body failed; nothing more will be read from it.
    pub fn broken(&self) -> bool {
        self.broken
    }

    /// Whether every byte of the body has been read.
    pub fn finished(&self) -> bool {
        match self.framing {
            Framing::Empty => true,
            Framing::Length(_) => self.left == 0,
            Framing::Chunked => self.chunked == ChunkState::Done,
        }
    }

    fn read_chunked(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.chunked {
                ChunkState::Done => return Ok(0),
                ChunkState::Size => {
                    let line = self.line()?;
                    let size = line.split(';').next().unwrap_or("").trim();
                    // `1*HEXDIG` (RFC 9112 section 7.1): `from_str_radix` alone takes a sign.
                    self.left = u64::from_str_radix(size, 16)
                        .ok()
                        .filter(|_| {
                            !size.is_empty()
                                && size.len() <= 15
                                && size.bytes().all(|b| b.is_ascii_hexdigit())
                        })
                        .ok_or_else(|| bad(format!("chunk size `{size}` is not a hex number")))?;
                    if self.left == 0 {
                        // Trailers, if any, up to the empty line; their contents mean nothing here.
                        while !self.line()?.is_empty() {}
                        self.chunked = ChunkState::Done;
                        return Ok(0);
                    }
                    self.chunked = ChunkState::Data;
                }
                ChunkState::Data => {
                    let n = self.read_data(buf)?;
                    if self.left == 0 {
                        self.chunked = ChunkState::DataEnd;
                    }
                    if n > 0 || buf.is_empty() {
                        return Ok(n);
                    }
                }
                ChunkState::DataEnd => {
                    if !self.line()?.is_empty() {
                        return Err(bad("chunk data is longer than its size".into()));
                    }
                    self.chunked = ChunkState::Size;
                }
            }
        }
    }

    /// Up to `self.left` bytes of data; an early end of the stream is an error.
    fn read_data(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
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
        self.left -= n as u64;
        Ok(n)
    }

    /// One CRLF-terminated line, without its terminator.
    fn line(&mut self) -> io::Result<String> {
        let mut line = Vec::new();
        (&mut self.inner)
            .take(MAX_LINE as u64 + 2)
            .read_until(b'\n', &mut line)?;
        if line.last() != Some(&b'\n') {
            return Err(if line.len() > MAX_LINE {
                bad(format!("a chunk line is longer than {MAX_LINE} bytes"))
            } else {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the client closed the connection inside a chunked body",
                )
            });
        }
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        String::from_utf8(line).map_err(|_| bad("a chunk line is not text".into()))
    }
}

impl<R: BufRead> Read for Body<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.broken {
            return Err(io::Error::other("an earlier read of this body failed"));
        }
        let result = match self.framing {
            Framing::Empty => Ok(0),
            Framing::Length(_) => self.read_data(buf),
            Framing::Chunked => self.read_chunked(buf),
        };
        self.broken = result.is_err();
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
