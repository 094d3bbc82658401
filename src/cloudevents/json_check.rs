//! The check that decides whether event data can be embedded in structured mode as is: bytes
//! that are one JSON text.
//!
//! serde_json walks the value into `IgnoredAny`, which allocates nothing. Measured on a 256-byte
//! payload (benches/cloudevents.rs, `validate_json`) it beat simd-json, which needs a mutable
//! copy and tape buffers, by about a third, and a hand-written recursive-descent checker tried
//! here was slower still, so the well-tested parser stays.

use serde::de::IgnoredAny;

/// Whether `data` is one well-formed JSON text (RFC 8259) in valid UTF-8.
///
/// UTF-8 is checked first because serde_json skips the contents of ignored strings unchecked.
/// Nesting deeper than [`MAX_DEPTH`] is refused too: serde_json ignores any depth, but parses
/// values (as cloudevents-sdk and most subscribers do) only up to 127 levels, and the event
/// object around the data takes one. Two gaps remain, both grammatical JSON that serde_json's
/// value parser refuses: escaped lone surrogates (`"\ud800"`) and numbers beyond f64 range
/// (`1e400`); checking them would cost a full parse for what no device sends.
pub fn is_json(data: &[u8]) -> bool {
    std::str::from_utf8(data).is_ok_and(|text| serde_json::from_str::<IgnoredAny>(text).is_ok())
        && !too_deep(data)
}

/// Nesting levels data may have so that the whole event still parses with serde_json.
pub const MAX_DEPTH: usize = 126;

/// Whether well-formed JSON `data` nests deeper than [`MAX_DEPTH`]. Counting brackets first
/// (a loop the compiler vectorizes) settles almost every payload without the exact scan.
fn too_deep(data: &[u8]) -> bool {
    let openers = data.iter().filter(|&&b| b == b'[' || b == b'{').count();
    if openers <= MAX_DEPTH {
        return false;
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in data {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return true;
                }
            }
            b']' | b'}' => depth -= 1,
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_rejects() {
        // (input, whether it is one JSON text)
        for (input, json) in [
            (&b"{}"[..], true),
            (b" [1, 2.5e3, -0.0E+1, \"x\"] \n", true),
            (b"42", true),
            (b"\"s\\u00fC\\n\\/\"", true),
            (b"null", true),
            (
                b"{\"a\":{\"b\":[true,false,null]},\"c\":\"\xc3\xbc\"}",
                true,
            ),
            (b"\"12345678901234567890 long string\"", true),
            (&b""[..], false),
            (b" ", false),
            (b"{", false),
            (b"{} {}", false),
            (b"'a'", false),
            (b"\"\xff\"", false),
            (b"\"a\x01\"", false),
            (b"NaN", false),
            (b"{\"a\":}", false),
            (b"[1,]", false),
            (b"{\"a\":1,}", false),
            (b"01", false),
            (b"1.", false),
            (b"1e", false),
            (b"-", false),
            (b"+1", false),
            (b".5", false),
            (b"tru", false),
            (b"nul", false),
            (b"\"\\x\"", false),
            (b"\"\\u12g4\"", false),
            (b"\"\\u12", false),
            (b"{1:2}", false),
            (b"[1 2]", false),
            (b"\"unterminated", false),
        ] {
            assert_eq!(is_json(input), json, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn refuses_nesting_that_serde_json_cannot_read_inside_an_event() {
        let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let event = |depth: usize| format!("{{\"data\":{}}}", nested(depth));
        assert!(is_json(nested(MAX_DEPTH).as_bytes()));
        assert!(serde_json::from_str::<serde_json::Value>(&event(MAX_DEPTH)).is_ok());
        assert!(!is_json(nested(MAX_DEPTH + 1).as_bytes()));
        assert!(serde_json::from_str::<serde_json::Value>(&event(MAX_DEPTH + 1)).is_err());
        // Many brackets, but shallow, or inside strings: fine.
        let wide = format!("[{}]", vec!["[]"; 300].join(","));
        assert!(is_json(wide.as_bytes()));
        let quoted = format!("[\"{}\\\"\"]", "[".repeat(300));
        assert!(is_json(quoted.as_bytes()));
    }

    /// Pins the gaps named on [`is_json`], so a serde_json change that closes them shows up.
    #[test]
    fn known_gaps() {
        assert!(is_json(br#""\ud800""#));
        assert!(is_json(b"1e400"));
        assert!(serde_json::from_slice::<serde_json::Value>(b"1e400").is_err());
    }
}
