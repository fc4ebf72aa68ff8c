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

/// A child's exit code, or 128+N if signal N killed it (as shells report
/// it).
pub fn from_status(status: std::process::ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => ExitCode::from(c as u8),
        (None, Some(sig)) => ExitCode::from((128 + sig) as u8),
        (None, None) => ExitCode::from(ERROR),
    }
}

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

/// Runs the command so that a reader of our stdout going away (`ipcworks
/// ls | head -1`) ends it quietly with success, as for `cat`, instead of
/// `println!`'s panic message. The panic still unwinds, so every object
/// the command made is removed by its destructor on the way out.
pub fn quiet_on_closed_stdout(run: impl FnOnce() -> ExitCode + std::panic::UnwindSafe) -> ExitCode {
    fn is_closed_stdout(msg: &str) -> bool {
        msg.contains("failed printing to stdout") && msg.contains("Broken pipe")
    }
    fn message(payload: &(dyn std::any::Any + Send)) -> &str {
        payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("")
    }
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !is_closed_stdout(message(info.payload())) {
            default_hook(info);
        }
    }));
    match std::panic::catch_unwind(run) {
        Ok(code) => code,
        Err(p) if is_closed_stdout(message(p.as_ref())) => ExitCode::SUCCESS,
        Err(p) => std::panic::resume_unwind(p),
    }
}
