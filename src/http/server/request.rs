//! [`Request`]: what a handler sees of one HTTP request.

use std::io::{self, Read, Write};

use super::head::{Framing, Head, Method};

pub(crate) struct Request<'a> {
    head: &'a Head,
    framing: Framing,
    body: &'a mut dyn Read,
    /// Where `100 Continue` goes, while the client waits for it before sending the body.
    continue_to: Option<&'a mut dyn Write>,
}

impl<'a> Request<'a> {
    pub fn new(
        head: &'a Head,
        framing: Framing,
        body: &'a mut dyn Read,
        continue_to: Option<&'a mut dyn Write>,
    ) -> Request<'a> {
        Request {
            head,
            framing,
            body,
            continue_to,
        }
    }

    pub fn method(&self) -> &Method {
        &self.head.method
    }

    /// The request target: path and query, as sent.
    pub fn url(&self) -> &str {
        &self.head.target
    }

    /// The value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.header(name)
    }

    /// The body's announced length (`None` for a chunked body, whose length shows while read).
    pub fn body_length(&self) -> Option<u64> {
        match self.framing {
            Framing::Length(n) => Some(n),
            Framing::Empty => Some(0),
            Framing::Chunked => None,
        }
    }

    /// The body. A client that waits for `100 Continue` gets it now: only handlers that
    /// want the body ask for it, so a refusal (`401`, `413` by length, …) spares the upload.
    pub fn body(&mut self) -> io::Result<&mut dyn Read> {
        if let Some(out) = self.continue_to.take() {
            out.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
            out.flush()?;
        }
        Ok(&mut *self.body)
    }

    /// Whether the client still waits for `100 Continue` (so it sent no body).
    pub fn continue_owed(&self) -> bool {
        self.continue_to.is_some()
    }
}
