//! Running the `berth` binary as a user would.

use std::io::Write;
use std::process::{Command, Stdio};

pub const BERTH: &str = env!("CARGO_BIN_EXE_berth");

#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Panics with the whole output unless the command succeeded.
    pub fn ok(self) -> Output {
        assert_eq!(self.code, 0, "berth failed: {self:#?}");
        self
    }
    /// The stderr of a failed command, checked to be exactly one line.
    pub fn one_line_error(&self) -> &str {
        assert_ne!(self.code, 0, "expected failure: {self:#?}");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "error must be one line: {self:#?}");
        lines[0]
    }
}

/// Runs `berth --etcd EP --root ROOT ARGS...` with optional stdin.
pub fn berth(endpoint: &str, root: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BERTH)
        .args(["--etcd", endpoint, "--root", root])
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn berth");
    // Feed stdin from a thread: berth may stop reading early (an input over
    // its size limit), which shows up here as a broken pipe, not a failure.
    let writer = stdin.map(|input| {
        let mut s = child.stdin.take().expect("stdin");
        let input = input.to_string();
        std::thread::spawn(move || {
            let _ = s.write_all(input.as_bytes());
        })
    });
    let out = child.wait_with_output().expect("wait berth");
    if let Some(w) = writer {
        let _ = w.join();
    }
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}
