//! The receiving side of one HTTP connection: a read buffer that the head parser can look at
//! whole and the body reader can consume from, over a socket with a short read timeout.
//!
//! The socket's timeout only lets the connection thread look up now and then: a read that times
//! out is retried until the client has been silent for longer than it may be (then it is an
//! error), or, between requests, until the server stops.

use std::io::{self, BufRead, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Read buffer size; also the most a request head may take (see [`super::head::MAX_HEAD`]).
const BUFFER: usize = 64 * 1024;

pub(crate) struct Inbound<'s, S> {
    stream: S,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// How long the client may stay silent: between requests, and within one.
    idle: Duration,
    stall: Duration,
    /// The most a whole request head may take, from its first byte (`http.head_timeout`).
    head_timeout: Duration,
    /// When the head being read started arriving (`None` between heads).
    head_since: Option<Instant>,
    stopping: &'s AtomicBool,
    /// Whether a request is being read (its head started arriving).
    in_request: bool,
}

/// Why no further request comes from this connection.
#[derive(Debug)]
pub(crate) enum Gone {
    /// Closed by the client, idle too long, or the server is stopping: nothing to answer.
    Quietly,
    /// A request started but did not complete in time (`408`), or the socket failed.
    Broken(io::Error),
}

impl<'s, S: Read> Inbound<'s, S> {
    pub fn new(
        stream: S,
        idle: Duration,
        stall: Duration,
        head_timeout: Duration,
        stopping: &'s AtomicBool,
    ) -> Self {
        Inbound {
            head_timeout,
            head_since: None,
            stream,
            buf: vec![0; BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
            idle,
            stall,
            stopping,
            in_request: false,
        }
    }

    /// The bytes received and not consumed yet.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Marks the end of a request: the next bytes are the next request's.
    pub fn request_done(&mut self) {
        self.in_request = false;
    }

    /// Marks the end of a head: the body that follows has no overall deadline, only `stall`.
    pub fn head_done(&mut self) {
        self.head_since = None;
    }

    /// `TimedOut` once the head being read took longer than `head_timeout` (a client trickling
    /// it a byte at a time would otherwise hold the connection for as long as it likes).
    fn head_overdue(&self) -> io::Result<()> {
        match self.head_since {
            Some(since) if since.elapsed() >= self.head_timeout => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the request head was not complete within {:.1} s of its first byte",
                    self.head_timeout.as_secs_f64()
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Receives more bytes after those buffered (for a head that is not complete yet).
    pub fn receive_more(&mut self) -> Result<(), Gone> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            // The head parser refuses heads this long before asking for more.
            return Err(Gone::Broken(io::Error::other(
                "request head overflows the buffer",
            )));
        }
        let idle = self.start == self.end && !self.in_request;
        if !idle && self.head_since.is_none() {
            // Part of the next head came with the previous request: its clock runs from now.
            self.head_since = Some(Instant::now());
        }
        self.head_overdue().map_err(Gone::Broken)?;
        match self.read_stream(self.end) {
            Ok(0) if idle => Err(Gone::Quietly),
            Ok(0) => Err(Gone::Broken(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the client closed the connection in the middle of a request head",
            ))),
            Ok(n) => {
                self.end += n;
                self.in_request = true;
                self.head_since.get_or_insert_with(Instant::now);
                Ok(())
            }
            Err(_) if idle => Err(Gone::Quietly),
            Err(e) => Err(Gone::Broken(e)),
        }
    }

    /// Reads into `self.buf[at..]`, retrying timeouts while the client may still be silent.
    fn read_stream(&mut self, at: usize) -> io::Result<usize> {
        let since = Instant::now();
        loop {
            match self.stream.read(&mut self.buf[at..]) {
                Ok(n) => return Ok(n),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    let patience = if self.in_request {
                        self.stall
                    } else {
                        self.idle
                    };
                    if !self.in_request && self.stopping.load(Ordering::Acquire) {
                        return Err(io::Error::other("the server is stopping"));
                    }
                    self.head_overdue()?;
                    if since.elapsed() >= patience {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("the client sent nothing for {} s", patience.as_secs()),
                        ));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl<S: Read> BufRead for Inbound<'_, S> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.start == self.end {
            // Empty before reading, so that a failed read leaves nothing stale behind.
            (self.start, self.end) = (0, 0);
            self.end = self.read_stream(0)?;
        }
        Ok(&self.buf[self.start..self.end])
    }

    fn consume(&mut self, amount: usize) {
        self.start = (self.start + amount).min(self.end);
    }
}

impl<S: Read> Read for Inbound<'_, S> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}
