//! Where a new group begins reading (spec 2.1, SUBSCRIBE user property `start`). Parsed by the
//! session, resolved by the backend worker: `Ago` needs a wall clock, which the session has not.

use std::time::{Duration, SystemTime};

/// The start position a SUBSCRIBE asked for; it matters only to a group that does not exist yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartAt {
    /// The first retained event.
    Earliest,
    /// The end of the log as of SUBACK (the default).
    #[default]
    Latest,
    /// The first event whose time is at or after this instant.
    Time(SystemTime),
    /// `now - duration`, resolved by the backend when it fixes the position.
    Ago(Duration),
}

/// The forms `start` accepts, for the refusal's Reason String.
pub const START_FORMS: &str = "earliest, latest, an RFC 3339 time or -<duration> like -15m";

impl StartAt {
    /// Parses the value of the `start` user property; `None` for anything else.
    pub fn parse(value: &str) -> Option<StartAt> {
        match value {
            "earliest" => Some(StartAt::Earliest),
            "latest" => Some(StartAt::Latest),
            _ => match value.strip_prefix('-') {
                Some(ago) => humantime::parse_duration(ago.trim()).ok().map(StartAt::Ago),
                None => parse_rfc3339(value).map(StartAt::Time),
            },
        }
    }

    /// The instant to look up, `None` for `Earliest`/`Latest`. `now` is the shell's wall clock.
    pub fn instant(self, now: SystemTime) -> Option<SystemTime> {
        match self {
            StartAt::Earliest | StartAt::Latest => None,
            StartAt::Time(t) => Some(t),
            // Further back than the epoch: everything there is.
            StartAt::Ago(d) => Some(
                now.checked_sub(d)
                    .map_or(SystemTime::UNIX_EPOCH, |t| t.max(SystemTime::UNIX_EPOCH)),
            ),
        }
    }
}

/// An RFC 3339 time (`2026-12-07T17:00:00Z`, `…T17:00:00.5+02:00`), as the CloudEvent `time`
/// attribute carries it. humantime reads only UTC (`Z`), so a numeric offset is applied here.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    // Date and time at least: `YYYY-MM-DDTHH:MM:SS`.
    if b.len() < 20 || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if matches!(b[b.len() - 1], b'Z' | b'z') {
        return humantime::parse_rfc3339_weak(&s[..s.len() - 1]).ok();
    }
    let (local, offset) = s.split_at(s.len() - 6);
    let o = offset.as_bytes();
    if !matches!(o[0], b'+' | b'-') || o[3] != b':' {
        return None;
    }
    let hours: u64 = offset.get(1..3)?.parse().ok()?;
    let minutes: u64 = offset.get(4..6)?.parse().ok()?;
    if hours > 23 || minutes > 59 {
        return None;
    }
    let shift = Duration::from_secs(hours * 3600 + minutes * 60);
    let local = humantime::parse_rfc3339_weak(local).ok()?;
    // `+02:00` is two hours ahead of UTC: UTC = local - offset.
    if o[0] == b'+' {
        local.checked_sub(shift)
    } else {
        local.checked_add(shift)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn keywords() {
        assert_eq!(StartAt::parse("earliest"), Some(StartAt::Earliest));
        assert_eq!(StartAt::parse("latest"), Some(StartAt::Latest));
        assert_eq!(StartAt::default(), StartAt::Latest);
        assert_eq!(StartAt::parse("Earliest"), None);
        assert_eq!(StartAt::parse(""), None);
    }

    #[test]
    fn durations_back_from_now() {
        assert_eq!(
            StartAt::parse("-15m"),
            Some(StartAt::Ago(Duration::from_secs(900)))
        );
        assert_eq!(
            StartAt::parse("-2h"),
            Some(StartAt::Ago(Duration::from_secs(7200)))
        );
        assert_eq!(
            StartAt::parse("-1h 30m"),
            Some(StartAt::Ago(Duration::from_secs(5400)))
        );
        assert_eq!(StartAt::parse("-"), None);
        assert_eq!(StartAt::parse("-soon"), None);
        assert_eq!(StartAt::parse("15m"), None);
        assert_eq!(
            StartAt::Ago(Duration::from_secs(10)).instant(at(100)),
            Some(at(90))
        );
        assert_eq!(
            StartAt::Ago(Duration::from_secs(1000)).instant(at(100)),
            Some(SystemTime::UNIX_EPOCH)
        );
        assert_eq!(StartAt::Earliest.instant(at(100)), None);
        assert_eq!(StartAt::Latest.instant(at(100)), None);
    }

    #[test]
    fn rfc3339_times() {
        // 2026-12-07T17:00:00Z
        let t = at(1_796_662_800);
        assert_eq!(
            StartAt::parse("2026-12-07T17:00:00Z"),
            Some(StartAt::Time(t))
        );
        assert_eq!(parse_rfc3339("2026-12-07T19:00:00+02:00"), Some(t));
        assert_eq!(parse_rfc3339("2026-12-07T16:30:00-00:30"), Some(t));
        assert_eq!(
            parse_rfc3339("2026-12-07T17:00:00.250Z"),
            Some(t + Duration::from_millis(250))
        );
        assert_eq!(parse_rfc3339("2026-12-07T17:00:00"), None, "no zone");
        assert_eq!(parse_rfc3339("2026-12-07"), None);
        assert_eq!(parse_rfc3339("2026-13-07T17:00:00Z"), None);
        assert_eq!(parse_rfc3339("2026-12-07T17:00:00+25:00"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
