//! Running a command inside a container.

use std::time::Duration;

use super::exec_stream::{Attached, OutputStream};
use super::{Docker, Result};

/// Output kept from an exec (its tail), enough for a probe's message.
const OUTPUT_LIMIT: usize = 4096;
/// Times the exit code is asked for, 10ms apart, once the output has ended.
const EXIT_POLLS: u32 = 50;

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
        let attached = Attached {
            command,
            env: None,
            timeout,
            exit_polls: EXIT_POLLS,
        };
        // Stdout and stderr interleaved, trimmed as it grows so a chatty
        // command costs at most twice the limit.
        let mut output: Vec<u8> = Vec::new();
        let mut keep = |_: OutputStream, bytes: &[u8]| {
            output.extend_from_slice(bytes);
            if output.len() > 2 * OUTPUT_LIMIT {
                output.drain(..output.len() - OUTPUT_LIMIT);
            }
        };
        let exit_code = self.exec_attached(id, attached, &mut keep).await?;
        let start = output.len().saturating_sub(OUTPUT_LIMIT);
        Ok(ExecOutput {
            exit_code,
            output: String::from_utf8_lossy(&output[start..]).into_owned(),
        })
    }
}
