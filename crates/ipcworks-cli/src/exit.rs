//! Exit codes and the one-line error report.

use std::process::ExitCode;

/// Success.
pub const OK: u8 = 0;
/// An error, reported in one line on stderr.
pub const ERROR: u8 = 1;
/// Wrong usage: clap's own code, also for an endpoint that does not parse.
pub const USAGE: u8 = 2;
/// A `--timeout` ran out (the code `timeout(1)` uses).
pub const TIMEOUT: u8 = 124;
/// COMMAND was found but cannot be run (the code `env(1)` and `timeout(1)`
/// use).
pub const CANNOT_RUN: u8 = 126;
/// COMMAND was not found (the code `env(1)` and `timeout(1)` use).
pub const NOT_FOUND: u8 = 127;

/// Shown under every `--help`, of every subcommand (see [`with_exit_codes`]).
pub const EXIT_CODES_HELP: &str = "Exit codes:
  0    success
  1    error (one line on stderr says what went wrong and what to do)
  2    wrong usage: an unknown option or endpoint kind, a missing argument, a
       zenoh: endpoint with nowhere to connect or listen, a bad Zenoh config
  124  a --timeout ran out (also `lock -n` when the lock is taken)
  126  lock, sem run: COMMAND was found but cannot be run (not executable)
  127  lock, sem run: COMMAND was not found
  lock and sem run otherwise exit with COMMAND's own code (128+N if signal N
  killed it), as env(1) and timeout(1) do";

/// Adds [`EXIT_CODES_HELP`] under the help of `cmd` and of every subcommand
/// below it, after whatever help they have.
pub fn with_exit_codes(cmd: clap::Command) -> clap::Command {
    let cmd = cmd.mut_subcommands(with_exit_codes);
    let after = match cmd.get_after_help() {
        Some(help) => format!("{}\n\n{EXIT_CODES_HELP}", help.to_string().trim_end()),
        None => EXIT_CODES_HELP.to_string(),
    };
    cmd.after_help(after)
}

/// The exit code for an error: the first cause that has its own code
/// decides; anything else is [`ERROR`].
fn code_of(e: &anyhow::Error) -> u8 {
    use ipcworks::Error;
    e.chain()
        .find_map(|c| match c.downcast_ref::<Error>()? {
            Error::Timeout => Some(TIMEOUT),
            Error::InvalidEndpoint { .. } | Error::InvalidConfig { .. } => Some(USAGE),
            Error::Spawn { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                Some(NOT_FOUND)
            }
            Error::Spawn { .. } => Some(CANNOT_RUN),
            _ => None,
        })
        .unwrap_or(ERROR)
}

/// Turns a command's result into the process's exit code, printing errors
/// as one line.
pub fn finish(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ipcworks: {}", one_line(&e));
            ExitCode::from(code_of(&e))
        }
    }
}

#[allow(dead_code)]
const _: (u8, u8) = (OK, USAGE);

/// An error and its causes in one line, outermost first, joined by `: `.
/// A cause whose text the line already ends with is not repeated: an error
/// type that prints its source in its own message *and* returns it from
/// `source()` would otherwise show the OS error twice.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

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

#[cfg(test)]
mod tests {
    use super::one_line;
    use anyhow::Context;

    #[test]
    fn an_os_error_inside_an_ipcworks_error_is_printed_once() {
        let refused = std::io::Error::from_raw_os_error(111);
        let e = Err::<(), _>(ipcworks::Error::io("connect", refused))
            .context("opening tcp:127.0.0.1:1 for sending")
            .unwrap_err();
        assert_eq!(
            one_line(&e),
            "opening tcp:127.0.0.1:1 for sending: connect failed: Connection refused (os error 111)"
        );
        // Also once it went through std::io::Error and back.
        let io: std::io::Error =
            ipcworks::Error::io("read", std::io::Error::from_raw_os_error(104)).into();
        let e = anyhow::Error::new(io).context("receiving");
        assert_eq!(
            one_line(&e),
            "receiving: read failed: Connection reset by peer (os error 104)"
        );
    }

    /// An error type outside our control that prints its source and also
    /// returns it.
    #[derive(Debug)]
    struct Both(std::io::Error);
    impl std::fmt::Display for Both {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "bind failed: {}", self.0)
        }
    }
    impl std::error::Error for Both {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_cause_already_at_the_end_of_the_line_is_not_repeated() {
        let e = anyhow::Error::new(Both(std::io::Error::from_raw_os_error(98))).context("serving");
        assert_eq!(
            one_line(&e),
            "serving: bind failed: Address already in use (os error 98)"
        );
        // Different causes are all kept, in order.
        let e = anyhow::anyhow!("inner").context("middle").context("outer");
        assert_eq!(one_line(&e), "outer: middle: inner");
    }
}
