//! MQTT over WebSocket (subprotocol `mqtt`, binary frames): tungstenite driven non-blocking.
//!
//! The WebSocket carries a byte stream: an MQTT packet may span frames and a frame may hold
//! several packets, so received binary messages are handed to the session as plain bytes. The
//! upgrade is refused unless the path is the listener's and, when the client names
//! subprotocols, one of them is `mqtt`.

use std::io::{self, IoSlice, Read, Write};

use bytes::{Buf, Bytes};
use tungstenite::handshake::server::{ErrorResponse, Request, Response, ServerHandshake};
use tungstenite::handshake::{HandshakeError, MidHandshake};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Error as WsError, Message, WebSocket};

/// Checks the upgrade request (path, subprotocol) and answers with subprotocol `mqtt`.
pub struct Upgrade {
    path: String,
}

impl tungstenite::handshake::server::Callback for Upgrade {
    fn on_request(
        self,
        request: &Request,
        mut response: Response,
    ) -> Result<Response, ErrorResponse> {
        if request.uri().path() != self.path {
            return Err(refuse(
                404,
                format!(
                    "no MQTT endpoint at {}; use {}",
                    request.uri().path(),
                    self.path
                ),
            ));
        }
        let offered: Vec<&str> = request
            .headers()
            .get_all("Sec-WebSocket-Protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        if !offered.is_empty() {
            if !offered.iter().any(|p| p.eq_ignore_ascii_case("mqtt")) {
                return Err(refuse(400, "subprotocol `mqtt` required".into()));
            }
            response.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                tungstenite::http::HeaderValue::from_static("mqtt"),
            );
        }
        Ok(response)
    }
}

fn refuse(status: u16, why: String) -> ErrorResponse {
    let mut r = ErrorResponse::new(Some(why));
    *r.status_mut() = tungstenite::http::StatusCode::from_u16(status)
        .unwrap_or(tungstenite::http::StatusCode::BAD_REQUEST);
    r
}

enum State<S: Read + Write> {
    /// Not started: the stream waits for the HTTP upgrade request.
    Fresh(S),
    Handshaking(MidHandshake<ServerHandshake<S, Upgrade>>),
    Open(WebSocket<S>),
    Closed,
}

pub struct WsStream<S: Read + Write> {
    state: State<S>,
    path: String,
    config: WebSocketConfig,
    /// Bytes of a received message not yet handed to the session.
    pending_in: Bytes,
    /// A written message still sitting in tungstenite's buffer (socket was full).
    unflushed: bool,
}

impl<S: Read + Write> WsStream<S> {
    pub fn new(stream: S, path: &str, max_message: usize) -> WsStream<S> {
        let config = WebSocketConfig::default()
            // Small buffers: idle connections are most connections.
            .read_buffer_size(4096)
            .write_buffer_size(0)
            .max_write_buffer_size(max_message.saturating_mul(2).max(1 << 20))
            .max_message_size(Some(max_message))
            .max_frame_size(Some(max_message));
        WsStream {
            state: State::Fresh(stream),
            path: path.to_owned(),
            config,
            pending_in: Bytes::new(),
            unflushed: false,
        }
    }

    pub fn inner(&mut self) -> Option<&mut S> {
        match &mut self.state {
            State::Fresh(s) => Some(s),
            State::Handshaking(m) => Some(m.get_mut().get_mut()),
            State::Open(ws) => Some(ws.get_mut()),
            State::Closed => None,
        }
    }

    /// Advances the upgrade; true once the WebSocket is open.
    fn handshake(&mut self) -> io::Result<bool> {
        let result = match std::mem::replace(&mut self.state, State::Closed) {
            State::Fresh(stream) => ServerHandshake::start(
                stream,
                Upgrade {
                    path: self.path.clone(),
                },
                Some(self.config),
            )
            .handshake(),
            State::Handshaking(mid) => mid.handshake(),
            open @ State::Open(_) => {
                self.state = open;
                return Ok(true);
            }
            State::Closed => return Err(io::ErrorKind::NotConnected.into()),
        };
        match result {
            Ok(ws) => {
                self.state = State::Open(ws);
                Ok(true)
            }
            Err(HandshakeError::Interrupted(mid)) => {
                self.state = State::Handshaking(mid);
                Ok(false)
            }
            Err(HandshakeError::Failure(e)) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("WebSocket upgrade failed: {e}"),
            )),
        }
    }

    /// Sends a Close frame (best effort).
    pub fn close(&mut self) {
        if let State::Open(ws) = &mut self.state {
            let _ = ws.close(None);
            let _ = ws.flush();
        }
    }
}

fn ws_io(e: WsError) -> io::Error {
    match e {
        WsError::Io(e) => e,
        WsError::ConnectionClosed | WsError::AlreadyClosed => {
            io::ErrorKind::ConnectionAborted.into()
        }
        other => io::Error::new(io::ErrorKind::InvalidData, format!("WebSocket: {other}")),
    }
}

impl<S: Read + Write> Read for WsStream<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.pending_in.is_empty() {
            let n = buf.len().min(self.pending_in.len());
            buf[..n].copy_from_slice(&self.pending_in[..n]);
            self.pending_in.advance(n);
            return Ok(n);
        }
        if !self.handshake()? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let State::Open(ws) = &mut self.state else {
            return Ok(0);
        };
        loop {
            match ws.read() {
                Ok(Message::Binary(data)) => {
                    if data.is_empty() {
                        continue;
                    }
                    self.pending_in = data;
                    return self.read(buf);
                }
                // [MQTT-6.0.0-1] MQTT control packets travel in binary frames only.
                Ok(Message::Text(_)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "WebSocket text frame: MQTT needs binary frames",
                    ))
                }
                Ok(Message::Close(_)) => return Ok(0),
                // Pings are answered by tungstenite (flushed with the next write or flush).
                Ok(_) => {
                    let _ = ws.flush();
                    continue;
                }
                Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => return Ok(0),
                Err(e) => return Err(ws_io(e)),
            }
        }
    }
}

impl<S: Read + Write> Write for WsStream<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    /// Sends everything given as one binary message, once the previous one left the buffer.
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if self.unflushed {
            self.flush()?;
        }
        let State::Open(ws) = &mut self.state else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total == 0 {
            return Ok(0);
        }
        let mut message = Vec::with_capacity(total);
        for b in bufs {
            message.extend_from_slice(b);
        }
        // tungstenite queues the whole frame before it writes: a WouldBlock from `write` or
        // `flush` means "queued, not yet sent", so the bytes are taken either way and must not
        // be offered again (that would send them twice).
        let sent = ws
            .write(Message::Binary(Bytes::from(message)))
            .and_then(|()| ws.flush());
        match sent {
            Ok(()) => {}
            Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => self.unflushed = true,
            Err(e) => return Err(ws_io(e)),
        }
        Ok(total)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.state {
            State::Open(ws) => {
                ws.flush().map_err(ws_io)?;
                self.unflushed = false;
                Ok(())
            }
            // The upgrade answer goes out as the handshake advances.
            State::Fresh(_) | State::Handshaking(_) => self.handshake().map(|_| ()),
            State::Closed => Ok(()),
        }
    }
}
