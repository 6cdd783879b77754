//! Small helpers with no better home.

use std::time::SystemTime;

/// The current time as RFC 3339 with second precision (`2026-11-22T17:55:45Z`).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// The time now, RFC 3339 with nanoseconds (sorts as it happened).
pub fn now_rfc3339_nanos() -> String {
    humantime::format_rfc3339_nanos(SystemTime::now()).to_string()
}

/// Parses an RFC 3339 time as written by [`now_rfc3339`].
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(s).ok()
}

/// Age in kubectl's style: `45s`, `12m`, `3h`, `5d`.
pub fn age(since: Option<&str>) -> String {
    let Some(t) = since.and_then(parse_rfc3339) else {
        return "<unknown>".into();
    };
    let secs = SystemTime::now()
        .duration_since(t)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}
