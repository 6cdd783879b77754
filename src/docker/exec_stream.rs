//! Running a command in a container with its output streamed to the caller
//! (jobs: the whole stdout of a backup, a tail of both for the record); the
//! attached-exec sequence here is also the one behind `exec.rs`.

use std::time::Duration;

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use futures::StreamExt;

use super::{Docker, Error, Result, CALL_TIMEOUT};

/// Which stream a chunk of exec output came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// An exec's command, environment and time bound.
#[derive(Clone, Debug)]
pub struct ExecRequest<'a> {
    pub command: &'a [String],
    /// `NAME=value` entries added to the container's environment.
    pub env: Vec<String>,
    pub timeout: Duration,
}

/// Times the exit code is asked for, 10ms apart, once a streamed exec's
/// output has ended.
const EXIT_POLLS: u32 = 100;

impl Docker {
    /// Runs the request in container `id`, handing every chunk of output to
    /// `sink` as it arrives, and returns the exit code. [`Error::Timeout`]
    /// past the request's timeout (the process is left running: Docker
    /// cannot kill an exec).
    pub async fn exec_streaming(
        &self,
        id: &str,
        req: &ExecRequest<'_>,
        sink: &mut (dyn FnMut(OutputStream, &[u8]) + Send),
    ) -> Result<i64> {
        let attached = Attached {
            command: req.command,
            env: Some(req.env.clone()),
            timeout: req.timeout,
            exit_polls: EXIT_POLLS,
        };
        self.exec_attached(id, attached, sink).await
    }

    /// The one exec sequence behind [`Docker::exec_streaming`] and
    /// [`Docker::exec_output`]: create, start attached, hand the output to
    /// `sink`, then ask for the exit code, all within `timeout`.
    pub(super) async fn exec_attached(
        &self,
        id: &str,
        exec: Attached<'_>,
        sink: &mut (dyn FnMut(OutputStream, &[u8]) + Send),
    ) -> Result<i64> {
        let Attached {
            command,
            env,
            timeout,
            exit_polls,
        } = exec;
        if command.is_empty() {
            return Err(Error::Other("exec: empty command".into()));
        }
        let options = CreateExecOptions {
            cmd: Some(command.to_vec()),
            env,
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let run = async {
            let created = self
                .call(
                    "create exec",
                    id,
                    CALL_TIMEOUT,
                    self.inner.create_exec(id, options),
                )
                .await?;
            let start = StartExecOptions {
                detach: false,
                tty: false,
                output_capacity: None,
            };
            let started = self
                .call(
                    "start exec",
                    id,
                    CALL_TIMEOUT,
                    self.inner.start_exec(&created.id, Some(start)),
                )
                .await?;
            if let StartExecResults::Attached {
                output: mut stream, ..
            } = started
            {
                while let Some(chunk) = stream.next().await {
                    match chunk {
                        Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                            sink(OutputStream::Stdout, &message)
                        }
                        Ok(LogOutput::StdErr { message }) => sink(OutputStream::Stderr, &message),
                        Ok(LogOutput::StdIn { .. }) => {}
                        Err(e) => return Err(Error::from_bollard(e, &self.host, id)),
                    }
                }
            }
            // The output ends when the process does; its exit code may take
            // a moment to be recorded.
            for _ in 0..exit_polls {
                let info = self
                    .call(
                        "inspect exec",
                        id,
                        CALL_TIMEOUT,
                        self.inner.inspect_exec(&created.id),
                    )
                    .await?;
                if info.running != Some(true) {
                    if let Some(code) = info.exit_code {
                        return Ok(code);
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(Error::Other(format!("exec in {id}: no exit code reported")))
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout {
                what: format!("exec {:?} in {id}", command.join(" ")),
                after: timeout,
            }),
        }
    }
}

/// One attached exec (stdout and stderr): its command, environment and
/// bounds.
pub(super) struct Attached<'a> {
    pub command: &'a [String],
    /// `NAME=value` entries added to the container's environment; `None`
    /// sends none.
    pub env: Option<Vec<String>>,
    pub timeout: Duration,
    /// Times the exit code is asked for, 10ms apart, after the output ends.
    pub exit_polls: u32,
}
