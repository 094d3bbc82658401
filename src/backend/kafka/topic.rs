//! Kafka topic names of applications (spec 4), as Drogue Cloud derives them.

use md5::{Digest, Md5};

/// Longest topic name the rule produces (Kafka allows 249; Drogue Cloud keeps names usable as
/// Kubernetes resource names).
const MAX_LEN: usize = 63;

/// The events topic of application `app`: `events-<app>` when `app` is a DNS label
/// (`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`) and `events-<app>` is shorter than 63 chars; otherwise
/// `evt-<md5 hex of app>-<app>`, lower-cased, every char outside `[-a-z0-9]` replaced by `-`,
/// cut to 63 chars, trailing `-` trimmed.
pub fn events_topic(app: &str) -> String {
    let plain = format!("events-{app}");
    if is_dns_label(app) && plain.len() < MAX_LEN {
        return plain;
    }
    let digest = Md5::digest(app.as_bytes());
    let mut hex = String::with_capacity(32);
    for b in digest {
        hex.push_str(&format!("{b:02x}"));
    }
    let raw = format!("evt-{hex}-{app}").to_lowercase();
    let mut out: String = raw
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '-' => c,
            _ => '-',
        })
        .take(MAX_LEN)
        .collect();
    while out.ends_with('-') {
        out.pop();
    }
    out
}

fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    let edge = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    match (b.first(), b.last()) {
        (Some(&f), Some(&l)) => edge(f) && edge(l) && b.iter().all(|&c| edge(c) || c == b'-'),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names() {
        assert_eq!(events_topic("demo"), "events-demo");
        assert_eq!(events_topic("a"), "events-a");
        assert_eq!(events_topic("my-app-1"), "events-my-app-1");
        // 55 chars + "events-" = 62 < 63: still plain.
        let app = "a".repeat(55);
        assert_eq!(events_topic(&app), format!("events-{app}"));
    }

    #[test]
    fn hashed_names() {
        let hex = |s: &str| {
            Md5::digest(s.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        assert_eq!(hex(""), "d41d8cd98f00b204e9800998ecf8427e", "md5 sanity");
        assert_eq!(hex("abc"), "900150983cd24fb0d6963f7d28e17f72", "md5 sanity");
        // Upper case: lower-cased after hashing the original name.
        assert_eq!(
            events_topic("My_App"),
            format!("evt-{}-my-app", hex("My_App"))
        );
        // Dots and a trailing dash: not a DNS label.
        assert_eq!(events_topic("a.b"), format!("evt-{}-a-b", hex("a.b")));
        assert_eq!(events_topic("ab-"), format!("evt-{}-ab", hex("ab-")));
        // 56 chars: "events-" + 56 = 63, too long.
        let app = "b".repeat(56);
        let t = events_topic(&app);
        assert_eq!(t.len(), 63);
        assert_eq!(t, format!("evt-{}-{}", hex(&app), &app[..26]));
        // Cut at 63 leaving a dash at the end: trimmed.
        let app = format!("{}.x", "c".repeat(25));
        let t = events_topic(&app);
        assert_eq!(t, format!("evt-{}-{}", hex(&app), "c".repeat(25)));
        // Non-ASCII: one dash per char.
        assert_eq!(events_topic("é"), format!("evt-{}", hex("é")));
        assert_eq!(events_topic("xé1"), format!("evt-{}-x-1", hex("xé1")));
    }
}
