//! How a connection's bytes travel: plain TCP, TLS, WebSocket, or WebSocket over TLS.
//!
//! Every kind reads MQTT bytes and takes MQTT bytes to write through the same calls, so the event
//! loop and the session do not care which it is. Plain TCP keeps the zero-copy vectored write;
//! TLS and WebSocket copy once into their own framing, which they must do anyway.

mod tls_stream;
mod websocket;

use std::io::{self, IoSlice, Read, Write};
use std::sync::Arc;

use mio::net::TcpStream;

pub use tls_stream::TlsStream;
pub use websocket::WsStream;

use crate::config::ListenerKind;
use crate::metrics::Protocol;
use crate::tls::TlsAcceptor;

/// What a listener hands its connections.
#[derive(Debug)]
pub struct ListenerSpec {
    pub kind: ListenerKind,
    pub tls: Option<Arc<TlsAcceptor>>,
    /// WebSocket path (ws, wss).
    pub path: String,
    /// Largest WebSocket message accepted (the MQTT maximum packet size, with framing room).
    pub max_message: usize,
}

impl ListenerSpec {
    pub fn protocol(&self) -> Protocol {
        match self.kind {
            ListenerKind::Mqtt => Protocol::Mqtt,
            ListenerKind::Mqtts => Protocol::Mqtts,
            ListenerKind::Ws => Protocol::Ws,
            ListenerKind::Wss => Protocol::Wss,
        }
    }
}

pub enum Transport {
    Tcp(TcpStream),
    Tls(Box<TlsStream>),
    Ws(Box<WsStream<TcpStream>>),
    Wss(Box<WsStream<TlsStream>>),
}

impl Transport {
    /// Wraps an accepted socket as the listener says.
    pub fn new(spec: &ListenerSpec, sock: TcpStream) -> io::Result<Transport> {
        let tls = || {
            spec.tls
                .as_ref()
                .map(|t| t.config())
                .ok_or_else(|| io::Error::other("TLS listener without a TLS configuration"))
        };
        Ok(match spec.kind {
            ListenerKind::Mqtt => Transport::Tcp(sock),
            ListenerKind::Mqtts => Transport::Tls(Box::new(TlsStream::new(tls()?, sock)?)),
            ListenerKind::Ws => {
                Transport::Ws(Box::new(WsStream::new(sock, &spec.path, spec.max_message)))
            }
            ListenerKind::Wss => {
                let tls = TlsStream::new(tls()?, sock)?;
                Transport::Wss(Box::new(WsStream::new(tls, &spec.path, spec.max_message)))
            }
        })
    }

    /// The socket, for registering with the poll.
    pub fn socket(&mut self) -> Option<&mut TcpStream> {
        match self {
            Transport::Tcp(s) => Some(s),
            Transport::Tls(t) => Some(t.socket()),
            Transport::Ws(w) => w.inner(),
            Transport::Wss(w) => w.inner().map(TlsStream::socket),
        }
    }

    /// Reads MQTT bytes: `Ok(0)` at end of stream, `WouldBlock` when there are none yet.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Tcp(s) => s.read(buf),
            Transport::Tls(t) => t.read(buf),
            Transport::Ws(w) => w.read(buf),
            Transport::Wss(w) => w.read(buf),
        }
    }

    /// Takes MQTT bytes to send; returns how many were taken (the rest is offered again).
    pub fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Transport::Tcp(s) => s.write_vectored(bufs),
            Transport::Tls(t) => t.write_vectored(bufs),
            Transport::Ws(w) => w.write_vectored(bufs),
            Transport::Wss(w) => w.write_vectored(bufs),
        }
    }

    /// Pushes bytes the transport holds (TLS records, WebSocket frames, handshake answers).
    pub fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Tcp(_) => Ok(()),
            Transport::Tls(t) => t.flush(),
            Transport::Ws(w) => w.flush(),
            Transport::Wss(w) => w.flush(),
        }
    }

    /// Closes politely where the protocol has a way (TLS close_notify, WebSocket Close).
    pub fn close(&mut self) {
        match self {
            Transport::Tcp(_) => {}
            Transport::Tls(t) => t.close(),
            Transport::Ws(w) => w.close(),
            Transport::Wss(w) => {
                w.close();
                if let Some(t) = w.inner() {
                    t.close();
                }
            }
        }
    }
}
