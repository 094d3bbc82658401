//! [`Request`]: what a handler sees of one HTTP request (its head; the body comes later, when
//! the handler asks for it with [`super::Answer::Body`]).

use super::head::{Framing, Head, Method};

pub(crate) struct Request<'a> {
    head: &'a Head,
    framing: Framing,
}

impl<'a> Request<'a> {
    pub fn new(head: &'a Head, framing: Framing) -> Request<'a> {
        Request { head, framing }
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
}
