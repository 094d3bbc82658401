//! JSON string escaping (RFC 8259 section 7) for the structured-mode writer.
//!
//! Only `"`, `\` and control characters must be escaped; the input is `&str`, so everything else
//! is valid UTF-8 already and is copied through. Attribute values rarely need escaping at all, so
//! the writer skips clean 8-byte words at a time and copies runs with one `extend_from_slice`.

/// For each byte: 0 when it is copied as is, else the letter after `\` (`u` for `\u00XX`).
const ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `s` as a quoted JSON string.
pub fn write_string(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = skip_clean_words(bytes, 0);
    while i < bytes.len() {
        let escape = ESCAPE[bytes[i] as usize];
        if escape == 0 {
            i += 1;
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        if escape == b'u' {
            let b = bytes[i];
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ]);
        } else {
            out.extend_from_slice(&[b'\\', escape]);
        }
        i += 1;
        start = i;
        i = skip_clean_words(bytes, i);
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// The index of the first 8-byte word from `i` on that may hold a byte to escape (or of the
/// tail shorter than a word).
fn skip_clean_words(bytes: &[u8], mut i: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    while let Some(word) = bytes.get(i..i + 8) {
        let x = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        // Classic "has a byte less than n" / "has a zero byte" tests: a high bit survives in a
        // lane when that lane is < 0x20, or equal to '"' or '\' (xor makes it zero).
        let control = x.wrapping_sub(ONES * 0x20) & !x;
        let quote = (x ^ (ONES * b'"' as u64)).wrapping_sub(ONES) & !(x ^ (ONES * b'"' as u64));
        let backslash =
            (x ^ (ONES * b'\\' as u64)).wrapping_sub(ONES) & !(x ^ (ONES * b'\\' as u64));
        if (control | quote | backslash) & HIGHS != 0 {
            break;
        }
        i += 8;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn escaped(s: &str) -> String {
        let mut out = Vec::new();
        write_string(&mut out, s);
        String::from_utf8(out).expect("UTF-8")
    }

    #[test]
    fn escapes_what_json_requires() {
        assert_eq!(escaped(""), r#""""#);
        assert_eq!(
            escaped("plain text, long enough"),
            r#""plain text, long enough""#
        );
        assert_eq!(escaped("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(escaped("\n\r\t\u{8}\u{c}"), r#""\n\r\t\b\f""#);
        assert_eq!(escaped("\u{0}\u{1f}\u{7f}"), "\"\\u0000\\u001f\u{7f}\"");
        assert_eq!(escaped("ümlaut 😀 \u{2028}"), "\"ümlaut 😀 \u{2028}\"");
        assert_eq!(escaped("12345678\"12345678\\"), r#""12345678\"12345678\\""#);
    }

    proptest! {
        #[test]
        fn round_trips_through_serde_json(s in any::<String>()) {
            let text = escaped(&s);
            prop_assert_eq!(serde_json::from_str::<String>(&text).unwrap(), s.clone());
            // and agrees with serde_json byte for byte
            prop_assert_eq!(text, serde_json::to_string(&s).unwrap());
        }
    }
}
