//! The head of an HTTP/1.1 request (request line and headers), parsed with `httparse`, and what
//! it says about the rest of the exchange: how the body is framed, whether the connection stays
//! open, whether the client waits for `100 Continue`. Knows nothing of sockets.

use std::fmt;

/// Largest request head accepted (request line and headers together).
pub(crate) const MAX_HEAD: usize = 16 * 1024;
/// Most headers accepted in one request.
const MAX_HEADERS: usize = 64;

/// The methods the routes tell apart; any other is carried by name for the `405` text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Head,
    Post,
    Other(String),
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Other(name) => name,
        })
    }
}

#[derive(Debug)]
pub(crate) struct Head {
    pub method: Method,
    /// The request target as sent (path and query).
    pub target: String,
    /// HTTP/1.0: the connection closes after the response unless the client asks otherwise.
    pub http10: bool,
    headers: Vec<(String, String)>,
}

/// How the body that follows the head is delimited (RFC 9112 section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Empty,
    Length(u64),
    Chunked,
}

/// A head that cannot be served; the connection closes after the answer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct HeadError {
    pub status: u16,
    pub message: String,
}

impl HeadError {
    fn new(status: u16, message: impl Into<String>) -> HeadError {
        HeadError {
            status,
            message: message.into(),
        }
    }
}

/// Parses a head from the start of `buf`: `Ok(None)` while it is incomplete, else the head and
/// its length in bytes.
pub(crate) fn parse(buf: &[u8]) -> Result<Option<(Head, usize)>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let too_large = || {
        HeadError::new(
            431,
            format!(
                "the request head is larger than {MAX_HEAD} bytes; send fewer or shorter headers"
            ),
        )
    };
    let len = match request.parse(buf) {
        // The read buffer is larger than the limit: a long head can arrive whole in one read.
        Ok(httparse::Status::Complete(len)) if len > MAX_HEAD => return Err(too_large()),
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => return Err(too_large()),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HeadError::new(
                431,
                format!("the request has more than {MAX_HEADERS} headers"),
            ))
        }
        Err(e) => {
            return Err(HeadError::new(
                400,
                format!("the request is not valid HTTP/1.1: {e}"),
            ))
        }
    };
    let method = match request.method.unwrap_or_default() {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        other => Method::Other(other.to_owned()),
    };
    let head = Head {
        method,
        target: request.path.unwrap_or_default().to_owned(),
        http10: request.version == Some(0),
        headers: request
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_owned(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect(),
    };
    Ok(Some((head, len)))
}

impl Head {
    /// The value of the first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    }

    /// How the body is delimited. A request with both `Transfer-Encoding` and `Content-Length`,
    /// or with two different lengths, is refused: it is how requests are smuggled past proxies.
    pub fn framing(&self) -> Result<Framing, HeadError> {
        let mut lengths = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.trim());
        let length = match (lengths.next(), lengths.next()) {
            (None, _) => None,
            (Some(first), second) if second.map_or(true, |s| s == first) => {
                // `1*DIGIT` (RFC 9110 section 8.6): no sign, no space, nothing else, which
                // `u64::from_str` alone would let through (`+2`).
                let digits = !first.is_empty() && first.bytes().all(|b| b.is_ascii_digit());
                Some(
                    first
                        .parse::<u64>()
                        .ok()
                        .filter(|_| digits)
                        .ok_or_else(|| {
                            HeadError::new(
                                400,
                                format!(
                                    "Content-Length `{}` is not a decimal number of bytes",
                                    first.escape_debug()
                                ),
                            )
                        })?,
                )
            }
            _ => {
                return Err(HeadError::new(
                    400,
                    "the request has conflicting Content-Length headers",
                ))
            }
        };
        match (self.header("transfer-encoding"), length) {
            (None, None) => Ok(Framing::Empty),
            (None, Some(n)) => Ok(Framing::Length(n)),
            (Some(_), Some(_)) => Err(HeadError::new(
                400,
                "the request has both Transfer-Encoding and Content-Length; send one",
            )),
            (Some(coding), None) if coding.eq_ignore_ascii_case("chunked") => Ok(Framing::Chunked),
            (Some(coding), None) => Err(HeadError::new(
                501,
                format!("Transfer-Encoding `{coding}` is not supported; send `chunked` or a Content-Length"),
            )),
        }
    }

    /// Whether the client keeps the connection open after this exchange.
    pub fn keep_alive(&self) -> bool {
        let has = |token: &str| {
            self.header("connection")
                .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        };
        if self.http10 {
            has("keep-alive")
        } else {
            !has("close")
        }
    }

    /// Whether the client waits for `100 Continue` before it sends the body.
    pub fn expects_continue(&self) -> bool {
        !self.http10
            && self
                .header("expect")
                .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Head {
        let (head, len) = parse(text.as_bytes()).unwrap().unwrap();
        assert_eq!(len, text.len());
        head
    }

    #[test]
    fn parses_in_pieces_and_reads_what_the_head_says() {
        let text = "POST /api/v1/apps/a/events?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\nExpect: 100-continue\r\n\r\n";
        for cut in 0..text.len() {
            assert!(parse(&text.as_bytes()[..cut]).unwrap().is_none(), "{cut}");
        }
        let h = head(text);
        assert_eq!(h.method, Method::Post);
        assert_eq!(h.target, "/api/v1/apps/a/events?x=1");
        assert_eq!(h.header("content-LENGTH"), Some("12"));
        assert_eq!(h.framing().unwrap(), Framing::Length(12));
        assert!(h.keep_alive() && h.expects_continue());
    }

    #[test]
    fn framing_and_keep_alive() {
        let h = head("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
        assert_eq!(h.framing().unwrap(), Framing::Chunked);
        assert!(!h.keep_alive());
        let h = head("GET / HTTP/1.0\r\n\r\n");
        assert_eq!(h.framing().unwrap(), Framing::Empty);
        assert!(!h.keep_alive() && !h.expects_continue());
        assert!(head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive());
        let same = head("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n");
        assert_eq!(same.framing().unwrap(), Framing::Length(3));
    }

    #[test]
    fn refuses_what_cannot_be_served() {
        for (text, status) in [
            (
                "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
                400,
            ),
            ("POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nContent-Length: +2\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nContent-Length: -0\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n", 400),
            (
                "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
                400,
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
                400,
            ),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        ] {
            assert_eq!(head(text).framing().unwrap_err().status, status, "{text}");
        }
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n")
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(parse(b"G\x01T / HTTP/1.1\r\n\r\n").unwrap_err().status, 400);
        let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(parse(long.as_bytes()).unwrap_err().status, 431);
        // The limit is the head's length, complete or not, exactly at the boundary.
        let sized = |len: usize| {
            let fixed = "GET / HTTP/1.1\r\nX: \r\n\r\n".len();
            format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(len - fixed))
        };
        assert_eq!(sized(MAX_HEAD).len(), MAX_HEAD);
        assert!(parse(sized(MAX_HEAD).as_bytes()).unwrap().is_some());
        assert_eq!(
            parse(sized(MAX_HEAD + 1).as_bytes()).unwrap_err().status,
            431
        );
        let many: String = (0..70).map(|i| format!("X-{i}: v\r\n")).collect();
        let text = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert_eq!(parse(text.as_bytes()).unwrap_err().status, 431);
    }
}
