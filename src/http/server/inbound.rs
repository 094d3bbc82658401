//! The receiving side of one HTTP connection: the bytes received and not consumed yet, which the
//! head parser looks at whole and the body decoder consumes from.
//!
//! Bounded ([`BUFFER`]) and empty between requests: an idle connection holds no buffer (ten
//! thousand keep-alive devices would otherwise hold 64 KiB each). Reads go through the loop's
//! scratch buffer and only what arrived is kept.

use std::io::{self, BufRead, Read};

/// Most bytes held unconsumed; also more than the longest request head accepted
/// (see [`super::head::MAX_HEAD`]), so a head that does not fit is refused by its size.
pub(crate) const BUFFER: usize = 64 * 1024;

/// Capacity above which an emptied buffer is given back.
const KEEP: usize = 4 * 1024;

#[derive(Default)]
pub(crate) struct Inbound {
    buf: Vec<u8>,
    start: usize,
    /// The client shut its side: nothing more will arrive.
    pub eof: bool,
}

impl Inbound {
    /// The bytes received and not consumed yet.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Whether there is room for more bytes.
    pub fn has_room(&self) -> bool {
        self.buf.len() - self.start < BUFFER
    }

    /// Reads once from `stream` through `scratch`: whether the read filled all it asked for
    /// (if not, the socket had no more for now). The end of the stream sets [`Inbound::eof`].
    pub fn receive(&mut self, stream: &mut impl Read, scratch: &mut [u8]) -> io::Result<bool> {
        let room = BUFFER - (self.buf.len() - self.start);
        let want = room.min(scratch.len());
        let n = stream.read(&mut scratch[..want])?;
        if n == 0 {
            self.eof = true;
            return Ok(false);
        }
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(&scratch[..n]);
        Ok(n == want)
    }

    /// Drops whatever is buffered (a connection that only lingers).
    pub fn discard(&mut self) {
        self.consume(self.buf.len() - self.start);
    }
}

impl BufRead for Inbound {
    /// What is buffered; `WouldBlock` when nothing is but more may come, empty at the end.
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.start == self.buf.len() && !self.eof {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(&self.buf[self.start..])
    }

    fn consume(&mut self, amount: usize) {
        self.start = (self.start + amount).min(self.buf.len());
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
            if self.buf.capacity() > KEEP {
                self.buf = Vec::new();
            }
        }
    }
}

impl Read for Inbound {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::server::body::Body;
    use crate::http::server::head::Framing;

    /// A chunked body fed a byte at a time decodes as it does whole.
    #[test]
    fn a_body_decodes_across_any_split() {
        let wire = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\nGET /";
        let mut inbound = Inbound::default();
        let mut state = crate::http::server::body::BodyState::new(Framing::Chunked);
        let mut out = Vec::new();
        let mut scratch = [0u8; 16];
        for byte in wire {
            inbound.receive(&mut &[*byte][..], &mut scratch).unwrap();
            if state.finished() {
                continue;
            }
            let mut body = Body::resume(&mut inbound, state);
            let mut buf = [0u8; 4];
            loop {
                match body.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("{e}"),
                }
            }
            state = body.state();
        }
        assert!(state.finished());
        assert_eq!(out, b"hello world");
        assert_eq!(inbound.buffered(), b"GET /");
    }
}
