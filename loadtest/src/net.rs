//! Transports of the rig's connections: non-blocking TCP with a chosen source address, TLS
//! (rustls) and WebSocket framing (RFC 6455, subprotocol `mqtt`) on top, and the open-files limit.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::pki_types::ServerName;

/// How the rig reaches the server.
#[derive(Clone)]
pub struct Transport {
    pub target: SocketAddr,
    /// TLS client config and the server name to check the certificate against.
    pub tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    /// WebSocket: the request path and Host header.
    pub ws: Option<(String, String)>,
    /// Source addresses: connection i binds 127.0.0.(2 + i mod n) before connecting, so each
    /// source address has its own ephemeral port range. 0: let the kernel choose.
    pub source_ips: u32,
}

/// Opens a non-blocking TCP connection (the connect completes later: writable readiness).
pub fn open(t: &Transport, index: usize) -> io::Result<TcpStream> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    s.set_nonblocking(true)?;
    s.set_nodelay(true)?;
    if t.source_ips > 0 && t.target.ip().is_loopback() {
        let ip = Ipv4Addr::new(127, 0, 0, 2 + (index as u32 % t.source_ips) as u8);
        // IP_BIND_ADDRESS_NO_PORT: pick the port at connect time, per destination, instead of
        // reserving one per source address at bind time.
        let one: libc::c_int = 1;
        // SAFETY: a plain setsockopt on a socket we own, with a correctly sized int.
        unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                &one as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        s.bind(&SocketAddr::new(ip.into(), 0).into())?;
    }
    match s.connect(&t.target.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(s.into()))
}

/// A TLS client config trusting the CA certificates (PEM) in `ca_file`.
pub fn tls_config(ca_file: &str) -> Result<Arc<rustls::ClientConfig>, String> {
    let pem = std::fs::read(ca_file).map_err(|e| format!("cannot read --ca {ca_file}: {e}"))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.map_err(|e| format!("bad PEM in {ca_file}: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("unusable certificate in {ca_file}: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!("no certificate in {ca_file}"));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The WebSocket upgrade request (RFC 6455 4.1). The key need not be secret for a load test.
pub fn ws_request(path: &str, host: &str, index: usize) -> Vec<u8> {
    use base64::Engine;
    let key = base64::engine::general_purpose::STANDARD.encode((index as u128).to_be_bytes());
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
    )
    .into_bytes()
}

/// Appends a client binary frame header for `len` payload bytes (RFC 6455 5.2). Client frames
/// must be masked; the masking key is zero, so the payload is sent as it is (XOR with zero) and
/// the rig spends nothing on masking. A server cannot tell (the key is not supposed to be
/// predictable, which matters for proxies, not for a loopback benchmark).
pub fn ws_frame_header(out: &mut Vec<u8>, len: usize) {
    out.push(0x82);
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= 0xFFFF {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&[0, 0, 0, 0]);
}

/// What [`ws_deframe`] found.
pub enum WsEvent {
    /// Everything complete was moved; the rest waits for more bytes.
    More,
    /// The server closed the WebSocket.
    Closed,
    /// A ping: answer with a pong carrying this payload.
    Ping(Vec<u8>),
}

/// Moves the payloads of the complete server frames at the front of `raw` to `out`.
pub fn ws_deframe(raw: &mut Vec<u8>, out: &mut Vec<u8>) -> Result<WsEvent, String> {
    let mut at = 0;
    let result = loop {
        let b = &raw[at..];
        if b.len() < 2 {
            break WsEvent::More;
        }
        let opcode = b[0] & 0x0F;
        let masked = b[1] & 0x80 != 0;
        let (len, mut hdr) = match b[1] & 0x7F {
            126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
            127 if b.len() >= 10 => {
                let mut l = [0u8; 8];
                l.copy_from_slice(&b[2..10]);
                (u64::from_be_bytes(l) as usize, 10)
            }
            126 | 127 => break WsEvent::More,
            n => (n as usize, 2),
        };
        if masked {
            return Err("the server sent a masked WebSocket frame (RFC 6455 5.1)".into());
        }
        if b.len() < hdr + len {
            break WsEvent::More;
        }
        let payload = &b[hdr..hdr + len];
        hdr += len;
        match opcode {
            0 | 2 => out.extend_from_slice(payload),
            8 => break WsEvent::Closed,
            9 => {
                let p = payload.to_vec();
                at += hdr;
                raw.drain(..at);
                return Ok(WsEvent::Ping(p));
            }
            10 => {}
            o => return Err(format!("unexpected WebSocket opcode {o}")),
        }
        at += hdr;
    };
    raw.drain(..at);
    Ok(result)
}

/// A pong frame (masked with a zero key) for `payload`.
pub fn ws_pong(payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0x8A, 0x80 | payload.len().min(125) as u8, 0, 0, 0, 0];
    out.extend_from_slice(&payload[..payload.len().min(125)]);
    out
}

/// Raises the soft open-files limit to the hard limit; returns the limit now in force.
pub fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid, owned struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}

/// Reads what is there without blocking: Ok(0) is end of stream, WouldBlock means drained.
pub fn read_some(sock: &mut TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match sock.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

pub fn write_some(sock: &mut TcpStream, buf: &[u8]) -> io::Result<usize> {
    loop {
        match sock.write(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deframes_split_frames_and_pings() {
        let mut raw = vec![0x82, 3, b'a', b'b'];
        let mut out = Vec::new();
        assert!(matches!(ws_deframe(&mut raw, &mut out), Ok(WsEvent::More)));
        assert!(out.is_empty());
        raw.extend_from_slice(&[b'c', 0x89, 1, b'p', 0x82, 126, 0, 200]);
        assert!(matches!(ws_deframe(&mut raw, &mut out), Ok(WsEvent::Ping(p)) if p == b"p"));
        assert_eq!(out, b"abc");
        raw.extend_from_slice(&[7; 200]);
        assert!(matches!(ws_deframe(&mut raw, &mut out), Ok(WsEvent::More)));
        assert_eq!(out.len(), 203);
        assert!(raw.is_empty());
        let mut h = Vec::new();
        ws_frame_header(&mut h, 300);
        assert_eq!(h, [0x82, 0xFE, 1, 44, 0, 0, 0, 0]);
    }
}
