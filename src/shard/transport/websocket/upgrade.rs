//! The WebSocket opening handshake as the server sees it (RFC 6455 section 4.2), with no I/O:
//! given the bytes received so far, whether the upgrade request is complete, and the answer —
//! `101 Switching Protocols`, or an HTTP error that tells the client what is wrong.
//!
//! tungstenite's own server handshake checks the method, the `Upgrade`, `Connection` and
//! `Sec-WebSocket-Version` headers before any callback sees the request, and fails without an
//! answer: a client with a wrong version or a plain `GET` saw the connection closed and no
//! reason (issue #17, item 7). It also took an empty `Sec-WebSocket-Key`. So the request is
//! checked here and tungstenite takes over once the WebSocket is open.

use base64::Engine as _;

/// Largest upgrade request head accepted; browsers send well under 2 KiB.
pub(super) const MAX_HEAD: usize = 8 * 1024;
/// Most headers accepted in an upgrade request.
const MAX_HEADERS: usize = 48;

/// What to do with the bytes received so far.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// The request head is not complete yet.
    Partial,
    /// Send `response` (a `101`), then speak WebSocket; the request took `consumed` bytes.
    Accept { response: Vec<u8>, consumed: usize },
    /// Send `response` (an HTTP error) and close.
    Refuse { status: u16, response: Vec<u8> },
}

/// Judges the upgrade request at the start of `buf` for the endpoint at `path`.
pub(super) fn judge(buf: &[u8], path: &str) -> Verdict {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let consumed = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len <= MAX_HEAD => len,
        Ok(httparse::Status::Complete(_)) => return too_large(),
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => return too_large(),
        Ok(httparse::Status::Partial) => return Verdict::Partial,
        Err(e) => return refuse(400, &[], &format!("not a valid HTTP/1.1 request: {e}")),
    };
    let header = |name: &str| {
        request
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(str::trim)
    };
    let has_token = |name: &str, token: &str| {
        request
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .filter_map(|h| std::str::from_utf8(h.value).ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    let target = request.path.unwrap_or_default();
    let asked = target.split_once('?').map_or(target, |(p, _)| p);
    if asked != path {
        return refuse(
            404,
            &[],
            &format!("no MQTT endpoint at {asked}; MQTT over WebSocket is at {path}"),
        );
    }
    // RFC 6455 section 4.1: "The method of the request MUST be GET, and the HTTP version MUST
    // be at least 1.1."
    if request.method != Some("GET") {
        return refuse(
            405,
            &[("Allow", "GET")],
            "this is an MQTT-over-WebSocket endpoint: open a WebSocket with GET",
        );
    }
    if request.version != Some(1) {
        return refuse(
            400,
            &[],
            "this is an MQTT-over-WebSocket endpoint: the upgrade needs HTTP/1.1",
        );
    }
    if !has_token("Upgrade", "websocket") || !has_token("Connection", "upgrade") {
        return refuse(
            400,
            &[],
            &format!("this is an MQTT-over-WebSocket endpoint: connect with a WebSocket client (subprotocol `mqtt`), which sends `Upgrade: websocket` and `Connection: Upgrade`; plain HTTP has nothing at {path}"),
        );
    }
    // RFC 6455 section 4.2.2: a version the server does not speak gets `426 Upgrade Required`
    // with the versions it does.
    if header("Sec-WebSocket-Version") != Some("13") {
        return refuse(
            426,
            &[("Sec-WebSocket-Version", "13")],
            "unsupported WebSocket version: this server speaks Sec-WebSocket-Version 13 (RFC 6455)",
        );
    }
    // RFC 6455 section 4.1: the key is "a randomly selected 16-byte value that has been
    // base64-encoded".
    let key = header("Sec-WebSocket-Key").unwrap_or_default();
    let key_ok = base64::engine::general_purpose::STANDARD
        .decode(key)
        .is_ok_and(|bytes| bytes.len() == 16);
    if !key_ok {
        return refuse(
            400,
            &[],
            "Sec-WebSocket-Key must be 16 random bytes, base64-encoded (RFC 6455 section 4.1)",
        );
    }
    let offered = has_token("Sec-WebSocket-Protocol", "mqtt");
    let any_offered = request
        .headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("Sec-WebSocket-Protocol"));
    if any_offered && !offered {
        return refuse(400, &[], "subprotocol `mqtt` required");
    }
    let mut response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
        tungstenite::handshake::derive_accept_key(key.as_bytes())
    );
    if offered {
        response.push_str("Sec-WebSocket-Protocol: mqtt\r\n");
    }
    response.push_str("\r\n");
    Verdict::Accept {
        response: response.into_bytes(),
        consumed,
    }
}

fn too_large() -> Verdict {
    refuse(
        431,
        &[],
        &format!("the upgrade request head is larger than {MAX_HEAD} bytes"),
    )
}

fn refuse(status: u16, headers: &[(&str, &str)], why: &str) -> Verdict {
    let reason = match status {
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    };
    let mut response = format!("HTTP/1.1 {status} {reason}\r\n");
    for (name, value) in headers {
        response.push_str(&format!("{name}: {value}\r\n"));
    }
    let body = format!("{why}\n");
    response.push_str(&format!(
        "Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    Verdict::Refuse {
        status,
        response: response.into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn upgrade(extra: &str) -> String {
        format!("GET /mqtt HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n{extra}\r\n")
    }

    fn status(request: &str) -> (u16, String) {
        match judge(request.as_bytes(), "/mqtt") {
            Verdict::Refuse { status, response } => (status, String::from_utf8(response).unwrap()),
            Verdict::Accept { response, .. } => (101, String::from_utf8(response).unwrap()),
            Verdict::Partial => (0, String::new()),
        }
    }

    #[test]
    fn accepts_the_rfc_example_and_offers_mqtt() {
        let request = upgrade(&format!(
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Protocol: mqtt, mqttv3.1\r\n"
        ));
        for cut in 0..request.len() {
            assert_eq!(judge(&request.as_bytes()[..cut], "/mqtt"), Verdict::Partial);
        }
        let mut wire = request.clone().into_bytes();
        wire.extend_from_slice(b"\x82\x00");
        let Verdict::Accept { response, consumed } = judge(&wire, "/mqtt") else {
            panic!("refused")
        };
        assert_eq!(consumed, request.len());
        let response = String::from_utf8(response).unwrap();
        // The accept value of RFC 6455 section 1.3.
        assert!(response.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        assert!(
            response.contains("Sec-WebSocket-Protocol: mqtt\r\n"),
            "{response}"
        );
        let (code, response) = status(&upgrade(&format!(
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n"
        )));
        assert_eq!(code, 101);
        assert!(!response.contains("Sec-WebSocket-Protocol"));
    }

    #[test]
    fn refusals_are_answered() {
        let v13 = format!("Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n");
        let (code, r) = status(&upgrade(&format!(
            "Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: {KEY}\r\n"
        )));
        assert_eq!(code, 426);
        assert!(r.contains("\r\nSec-WebSocket-Version: 13\r\n"), "{r}");
        assert_eq!(
            status(&upgrade(&format!("Sec-WebSocket-Key: {KEY}\r\n"))).0,
            426
        );
        let (code, r) = status("GET /mqtt HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(code, 400);
        assert!(r.contains("MQTT-over-WebSocket endpoint"), "{r}");
        for key in [
            "",
            "x",
            "dGhlIHNhbXBsZSBub25jZQ",
            "dGhlIHNhbXBsZSBub25jZXg=",
            "!!!!!!!!!!!!!!!!!!!!!!==",
        ] {
            let (code, r) = status(&upgrade(&format!(
                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n"
            )));
            assert_eq!(code, 400, "{key:?}");
            assert!(r.contains("Sec-WebSocket-Key"), "{r}");
        }
        assert_eq!(status(&upgrade("Sec-WebSocket-Version: 13\r\n")).0, 400);
        assert_eq!(
            status(&upgrade(&format!("{v13}Sec-WebSocket-Protocol: wamp\r\n"))).0,
            400
        );
        assert_eq!(status(&upgrade(&v13).replace("/mqtt", "/other")).0, 404);
        assert_eq!(status(&upgrade(&v13).replace("GET", "POST")).0, 405);
        assert_eq!(
            status(&upgrade(&v13).replace("HTTP/1.1", "HTTP/1.0")).0,
            400
        );
        assert_eq!(status("GE\x01 / HTTP/1.1\r\n\r\n").0, 400);
        let long = format!("GET /mqtt HTTP/1.1\r\nX: {}\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(status(&long).0, 431);
    }
}
