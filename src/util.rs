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

/// Moves the calling thread (only it) into the network namespace of process
/// `pid`. Sockets it creates afterwards live in that namespace for good,
/// wherever they are used: link listeners (`services::link::relay`) and the
/// proxy's backend sockets (`proxy::dial`).
pub fn enter_netns(pid: u32) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
    // SAFETY: setns(2) on a valid, open namespace fd.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
