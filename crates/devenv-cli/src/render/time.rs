//! Protobuf timestamps to `SystemTime` and text.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn to_system_time(ts: &prost_types::Timestamp) -> Option<SystemTime> {
    let secs = u64::try_from(ts.seconds).ok()?;
    let nanos = u32::try_from(ts.nanos).ok()?;
    UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

pub fn from_system_time(t: SystemTime) -> prost_types::Timestamp {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    prost_types::Timestamp {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// RFC 3339 in UTC with milliseconds, or empty when unset.
pub fn rfc3339(ts: Option<&prost_types::Timestamp>) -> String {
    ts.and_then(to_system_time)
        .map(|t| humantime::format_rfc3339_millis(t).to_string())
        .unwrap_or_default()
}

/// `0.4s`, `12s`, `3m`, `2h`: short, for progress and uptime.
pub fn short_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 10.0 {
        format!("{secs:.1}s")
    } else if secs < 120.0 {
        format!("{}s", d.as_secs())
    } else if secs < 7200.0 {
        format!("{}m", d.as_secs() / 60)
    } else if secs < 172_800.0 {
        format!("{}h{}m", d.as_secs() / 3600, d.as_secs() % 3600 / 60)
    } else {
        format!("{}d{}h", d.as_secs() / 86_400, d.as_secs() % 86_400 / 3600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123_000_000);
        assert_eq!(to_system_time(&from_system_time(t)), Some(t));
        assert_eq!(
            rfc3339(Some(&from_system_time(t))),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(rfc3339(None), "");
    }

    #[test]
    fn short_durations() {
        assert_eq!(short_duration(Duration::from_millis(400)), "0.4s");
        assert_eq!(short_duration(Duration::from_secs(42)), "42s");
        assert_eq!(short_duration(Duration::from_secs(600)), "10m");
        assert_eq!(short_duration(Duration::from_secs(3 * 3600 + 120)), "3h2m");
        assert_eq!(short_duration(Duration::from_secs(3 * 86_400)), "3d0h");
    }
}
