//! Running the `berth` binary as a user would.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::etcd::TestEtcd;

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

/// A `berth` process run in the background, its stdout read line by line.
pub struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    stdout: Vec<String>,
}

impl Running {
    pub fn start(etcd: &TestEtcd, args: &[&str]) -> Running {
        let mut child = Command::new(BERTH)
            .args(["--etcd", &etcd.endpoint(), "--root", etcd.root()])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn berth");
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Running {
            child,
            lines,
            stdout: Vec::new(),
        }
    }

    /// Waits for a stdout line containing `text`.
    pub fn line(&mut self, text: &str) -> String {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(20)) {
                Ok(l) => {
                    self.stdout.push(l.clone());
                    if l.contains(text) {
                        return l;
                    }
                }
                Err(e) => panic!("no line with {text:?} ({e}); got {:?}", self.stdout),
            }
        }
    }

    /// Waits for the process to end (bounded) and returns what it printed.
    pub fn finish(mut self) -> Output {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break s;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("berth did not end; stdout so far {:?}", self.stdout);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        self.stdout.extend(self.lines.iter());
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut stderr);
        }
        Output {
            code: status.code().unwrap_or(-1),
            stdout: self.stdout.join("\n"),
            stderr,
        }
    }
}

impl Drop for Running {
    /// A watch (`-w`) left running by a test ends with it.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
