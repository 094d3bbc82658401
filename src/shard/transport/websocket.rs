//! MQTT over WebSocket (subprotocol `mqtt`, binary frames): tungstenite driven non-blocking.
//!
//! The WebSocket carries a byte stream: an MQTT packet may span frames and a frame may hold
//! several packets, so received binary messages are handed to the session as plain bytes. The
//! upgrade ([`upgrade`]) is refused, with an HTTP answer that says why, unless it is a valid
//! RFC 6455 upgrade to the listener's path and, when the client names subprotocols, one of them
//! is `mqtt`.

mod upgrade;

use std::io::{self, IoSlice, Read, Write};

use bytes::{Buf, Bytes};
use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::{Error as WsError, Message, WebSocket};

use upgrade::Verdict;

enum State<S: Read + Write> {
    /// Receiving the HTTP upgrade request (the bytes so far).
    Upgrading {
        stream: S,
        received: Vec<u8>,
    },
    /// Sending the answer to the upgrade: `101` and then the WebSocket (with any bytes received
    /// after the request), or an HTTP error and then the end.
    Answering {
        stream: S,
        answer: Vec<u8>,
        sent: usize,
        then: Option<Vec<u8>>,
    },
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
            state: State::Upgrading {
                stream,
                received: Vec::new(),
            },
            path: path.to_owned(),
            config,
            pending_in: Bytes::new(),
            unflushed: false,
        }
    }

    pub fn inner(&mut self) -> Option<&mut S> {
        match &mut self.state {
            State::Upgrading { stream, .. } | State::Answering { stream, .. } => Some(stream),
            State::Open(ws) => Some(ws.get_mut()),
            State::Closed => None,
        }
    }

    /// Advances the upgrade as far as the socket allows; true once the WebSocket is open.
    fn handshake(&mut self) -> io::Result<bool> {
        loop {
            match &mut self.state {
                State::Open(_) => return Ok(true),
                State::Closed => return Err(io::ErrorKind::NotConnected.into()),
                State::Upgrading { stream, received } => {
                    let mut chunk = [0u8; 2048];
                    let room = (upgrade::MAX_HEAD + 1)
                        .saturating_sub(received.len())
                        .max(1);
                    let want = room.min(chunk.len());
                    let n = match stream.read(&mut chunk[..want]) {
                        Ok(0) => {
                            self.state = State::Closed;
                            return Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                "the client closed the connection during the WebSocket upgrade",
                            ));
                        }
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    };
                    received.extend_from_slice(&chunk[..n]);
                    let (answer, then) = match upgrade::judge(received, &self.path) {
                        Verdict::Partial => continue,
                        Verdict::Accept { response, consumed } => {
                            (response, Some(received.split_off(consumed)))
                        }
                        Verdict::Refuse { status, response } => {
                            tracing::debug!(status, "WebSocket upgrade refused");
                            (response, None)
                        }
                    };
                    let State::Upgrading { stream, .. } =
                        std::mem::replace(&mut self.state, State::Closed)
                    else {
                        unreachable!("the state was just matched");
                    };
                    self.state = State::Answering {
                        stream,
                        answer,
                        sent: 0,
                        then,
                    };
                }
                State::Answering {
                    stream,
                    answer,
                    sent,
                    then,
                } => {
                    while *sent < answer.len() {
                        match stream.write(&answer[*sent..]) {
                            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                            Ok(n) => *sent += n,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => return Err(e),
                        }
                    }
                    stream.flush()?;
                    let tail = then.take();
                    let State::Answering { stream, .. } =
                        std::mem::replace(&mut self.state, State::Closed)
                    else {
                        unreachable!("the state was just matched");
                    };
                    let Some(tail) = tail else {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "WebSocket upgrade refused (answered with an HTTP error)",
                        ));
                    };
                    self.state = State::Open(WebSocket::from_partially_read(
                        stream,
                        tail,
                        Role::Server,
                        Some(self.config),
                    ));
                }
            }
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
            State::Upgrading { .. } | State::Answering { .. } => match self.handshake() {
                Ok(_) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
                Err(e) => Err(e),
            },
            State::Closed => Ok(()),
        }
    }
}
