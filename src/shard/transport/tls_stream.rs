//! A non-blocking TLS stream over a mio socket: rustls driven by the shard's readiness events.
//!
//! Reads pull TLS records from the socket until plaintext is available (answering handshake
//! messages on the way); writes hand plaintext to rustls, which encrypts into its own buffer
//! (bounded by [`BUFFER_LIMIT`]), and push as much TLS as the socket takes. Whatever remains is
//! pushed by [`TlsStream::flush`] on the next writable event.

use std::io::{self, IoSlice, Read, Write};
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::{ServerConfig, ServerConnection};

/// Plaintext and TLS bytes rustls may hold for one connection before a write is refused
/// (`WouldBlock`): the connection's share of backpressure.
const BUFFER_LIMIT: usize = 64 * 1024;

pub struct TlsStream {
    conn: ServerConnection,
    sock: TcpStream,
}

impl TlsStream {
    pub fn new(config: Arc<ServerConfig>, sock: TcpStream) -> io::Result<TlsStream> {
        let mut conn = ServerConnection::new(config).map_err(io::Error::other)?;
        conn.set_buffer_limit(Some(BUFFER_LIMIT));
        Ok(TlsStream { conn, sock })
    }

    pub fn socket(&mut self) -> &mut TcpStream {
        &mut self.sock
    }

    /// Pushes pending TLS bytes to the socket; `WouldBlock` if some remain.
    fn push_tls(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            self.conn.write_tls(&mut self.sock)?;
        }
        Ok(())
    }

    /// Sends close_notify (best effort) before the socket is dropped.
    pub fn close(&mut self) {
        self.conn.send_close_notify();
        let _ = self.push_tls();
    }
}

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if self.conn.read_tls(&mut self.sock)? == 0 {
                return Ok(0);
            }
            if let Err(e) = self.conn.process_new_packets() {
                // Tell the peer why (the alert rustls queued), then fail the connection.
                let _ = self.push_tls();
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("TLS: {e}"),
                ));
            }
            // Handshake answers, if any; a full socket is retried on the next writable event.
            match self.push_tls() {
                Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Err(e),
                _ => {}
            }
        }
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut taken = 0;
        for b in bufs {
            let n = self.conn.writer().write(b)?;
            taken += n;
            if n < b.len() {
                break;
            }
        }
        match self.push_tls() {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Err(e),
            _ => {}
        }
        if taken == 0 && bufs.iter().any(|b| !b.is_empty()) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.push_tls()
    }
}
