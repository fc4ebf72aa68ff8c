//! Exit codes and the one-line error report.

use std::process::ExitCode;

/// Success.
pub const OK: u8 = 0;
/// An error, reported in one line on stderr.
pub const ERROR: u8 = 1;
/// Wrong usage (clap's own code).
pub const USAGE: u8 = 2;
/// A `--timeout` ran out (the code `timeout(1)` uses).
pub const TIMEOUT: u8 = 124;

/// Shown under every `--help`.
pub const EXIT_CODES_HELP: &str = "Exit codes:\n  0    success\n  1    error (one line on stderr says what went wrong and what to do)\n  2    wrong usage\n  124  a --timeout ran out\n  `sem run` and `lock` exit with COMMAND's own code (128+N if a signal N killed it)";

/// Turns a command's result into the process's exit code, printing errors
/// as one line.
pub fn finish(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            let timeout = e.chain().any(|c| {
                matches!(
                    c.downcast_ref::<ipcworks::Error>(),
                    Some(ipcworks::Error::Timeout)
                )
            });
            // One line: the outermost context, then its causes.
            let msg: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("ipcworks: {}", msg.join(": "));
            ExitCode::from(if timeout { TIMEOUT } else { ERROR })
        }
    }
}

#[allow(dead_code)]
const _: (u8, u8) = (OK, USAGE);

/// Writes bytes to stdout; a reader that went away (`| head`) is not an
/// error worth reporting.
pub fn write_stdout(bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}
