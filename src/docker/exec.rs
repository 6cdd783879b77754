//! Running a command inside a container.

use std::time::Duration;

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use futures::StreamExt;

use super::{Docker, Error, Result, CALL_TIMEOUT};

/// Output kept from an exec (its tail), enough for a probe's message.
const OUTPUT_LIMIT: usize = 4096;

/// What an exec produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecOutput {
    pub exit_code: i64,
    /// The last few KiB of stdout and stderr, interleaved.
    pub output: String,
}

impl Docker {
    /// Runs `command` in the running container `id` and returns its exit code.
    /// [`Error::Timeout`] when it does not finish within `timeout` (the
    /// process is left to finish on its own: Docker cannot kill an exec).
    pub async fn exec(&self, id: &str, command: &[String], timeout: Duration) -> Result<i64> {
        self.exec_output(id, command, timeout)
            .await
            .map(|o| o.exit_code)
    }

    /// [`Docker::exec`], with the tail of the command's output.
    pub async fn exec_output(
        &self,
        id: &str,
        command: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput> {
        if command.is_empty() {
            return Err(Error::Other("exec: empty command".into()));
        }
        let run = async {
            let options = CreateExecOptions {
                cmd: Some(command.to_vec()),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            };
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
            let mut output: Vec<u8> = Vec::new();
            if let StartExecResults::Attached {
                output: mut stream, ..
            } = started
            {
                while let Some(chunk) = stream.next().await {
                    let bytes = match chunk {
                        Ok(LogOutput::StdOut { message })
                        | Ok(LogOutput::StdErr { message })
                        | Ok(LogOutput::Console { message }) => message,
                        Ok(LogOutput::StdIn { .. }) => continue,
                        Err(e) => return Err(Error::from_bollard(e, &self.host, id)),
                    };
                    output.extend_from_slice(&bytes);
                    if output.len() > 2 * OUTPUT_LIMIT {
                        output.drain(..output.len() - OUTPUT_LIMIT);
                    }
                }
            }
            // The output ends when the process does; its exit code may take a
            // moment to be recorded.
            for _ in 0..50 {
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
                        let start = output.len().saturating_sub(OUTPUT_LIMIT);
                        let output = String::from_utf8_lossy(&output[start..]).into_owned();
                        return Ok(ExecOutput {
                            exit_code: code,
                            output,
                        });
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
