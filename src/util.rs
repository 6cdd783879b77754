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

/// The end of `s`, at most `max` bytes, cut on a character boundary.
pub fn tail(s: &str, max: usize) -> &str {
    let mut start = s.len().saturating_sub(max);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// Raises this process's soft limit of open descriptors to its hard limit
/// (what Docker and etcd do): a node's proxy holds two per connection plus
/// spare namespace sockets per container, and the usual soft limit (1024)
/// would turn a busy node's accepts into EMFILE. Returns the limit now in
/// force.
pub fn raise_nofile() -> std::io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid rlimit the call fills/reads.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(lim.rlim_cur)
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
