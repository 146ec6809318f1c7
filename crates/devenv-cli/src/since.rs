//! `--since` values: a duration ago (`10m`, `1h30m`) or a point in time (RFC 3339).

use std::time::{Duration, SystemTime};

#[derive(Debug, thiserror::Error)]
#[error("invalid time `{input}`: expected a duration like 10m or 1h, or an RFC 3339 time like 2024-05-01T12:00:00Z")]
pub struct SinceError {
    input: String,
}

/// Clap value parser: relative to now.
pub fn parse_since(s: &str) -> Result<SystemTime, SinceError> {
    parse_since_at(s, SystemTime::now())
}

pub fn parse_since_at(s: &str, now: SystemTime) -> Result<SystemTime, SinceError> {
    let s = s.trim();
    let err = || SinceError {
        input: s.to_string(),
    };
    if let Ok(ago) = humantime::parse_duration(s) {
        return now.checked_sub(ago).ok_or_else(err);
    }
    parse_rfc3339_with_offset(s).ok_or_else(err)
}

/// humantime accepts only UTC (`Z` or none); this also accepts a `+HH:MM`/`-HH:MM` offset.
fn parse_rfc3339_with_offset(s: &str) -> Option<SystemTime> {
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return Some(t);
    }
    let split = s.len().checked_sub(6)?;
    let (base, offset) = s.split_at(split);
    // An offset only follows a time, never the date part.
    if !base.contains('T') && !base.contains(' ') {
        return None;
    }
    let sign = match offset.as_bytes()[0] {
        b'+' => 1i64,
        b'-' => -1,
        _ => return None,
    };
    let (h, m) = offset[1..].split_once(':')?;
    let (h, m): (u64, u64) = (h.parse().ok()?, m.parse().ok()?);
    if h > 23 || m > 59 {
        return None;
    }
    let local = humantime::parse_rfc3339_weak(base).ok()?;
    let shift = Duration::from_secs(h * 3600 + m * 60);
    // Local time minus its offset is UTC.
    if sign > 0 {
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
    fn durations_are_relative_to_now() {
        let now = at(100_000);
        assert_eq!(parse_since_at("10m", now).unwrap(), at(100_000 - 600));
        assert_eq!(parse_since_at("1h", now).unwrap(), at(100_000 - 3600));
        assert_eq!(parse_since_at("1h30m", now).unwrap(), at(100_000 - 5400));
        assert_eq!(parse_since_at("45s", now).unwrap(), at(100_000 - 45));
    }

    #[test]
    fn rfc3339_times() {
        let now = at(0);
        assert_eq!(
            parse_since_at("1970-01-02T00:00:00Z", now).unwrap(),
            at(86_400)
        );
        assert_eq!(
            parse_since_at("1970-01-02T01:00:00+01:00", now).unwrap(),
            at(86_400)
        );
        assert_eq!(
            parse_since_at("1970-01-01T23:00:00-01:00", now).unwrap(),
            at(86_400)
        );
    }

    #[test]
    fn garbage_is_rejected_with_the_input() {
        let err = parse_since_at("yesterday", at(0)).unwrap_err();
        assert!(err.to_string().contains("`yesterday`"));
        assert!(parse_since_at("1970-01-01+01:00", at(0)).is_err());
    }
}
