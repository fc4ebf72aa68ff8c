//! `ipcworks lock NAME -- COMMAND…`: runs COMMAND holding a named robust
//! mutex, like flock(1).

use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::{Context, bail};
use ipcworks::Error;
use ipcworks::sync::{LockError, Mutex};

/// Arguments of `ipcworks lock`.
#[derive(Debug, clap::Args)]
#[command(
    about = "Run a command holding a named robust mutex, like flock(1)",
    after_help = "The mutex lives in /dev/shm/ipcworks.mutex.NAME (mode 0600) and stays there \
between runs, like flock's lock file; remove it with `ipcworks lock --rm NAME`. If the previous \
holder died while holding it (even by kill -9), one line on stderr says so and the command runs. \
If ipcworks itself is killed, COMMAND is killed too, so it never runs without the lock.

Exit codes: COMMAND's own code (128+N if signal N killed it), 124 if --timeout ran out, \
1 on any other error (one line on stderr).

Examples:
  ipcworks lock backup -- rsync -a /src/ /dst/      # one backup at a time
  ipcworks lock --timeout 5 deploy -- ./deploy.sh   # give up after 5 s (exit 124)
  ipcworks lock --rm backup                         # remove the mutex"
)]
pub struct Args {
    /// Name of the mutex (created on first use).
    name: String,
    /// Give up waiting for the lock after DURATION (`5`, `0.5`, `200ms`,
    /// `1m`); exit 124.
    #[arg(long, value_name = "DURATION", value_parser = super::duration)]
    timeout: Option<Duration>,
    /// Remove the named mutex instead of running a command.
    #[arg(long)]
    rm: bool,
    /// The command and its arguments, after `--`.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    command: Vec<String>,
}

/// Runs `ipcworks lock`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let name = args.name.as_str();
    if args.rm {
        if !args.command.is_empty() {
            bail!("--rm takes no COMMAND");
        }
        Mutex::<()>::remove(name)?;
        return Ok(ExitCode::SUCCESS);
    }
    let Some((program, rest)) = args.command.split_first() else {
        bail!("no COMMAND given: ipcworks lock {name} -- COMMAND [ARGS…]");
    };
    let timeout = args.timeout;

    let (mutex, _created) = Mutex::<()>::options()
        .persist(true)
        .open_or_create(name, ())?;
    let locked = match timeout {
        Some(t) => mutex.lock_timeout(t),
        None => mutex.lock(),
    };
    let _guard = match locked {
        Ok(g) => g,
        Err(LockError::OwnerDead(mut g)) => {
            eprintln!("ipcworks: previous holder of {name} died; continuing");
            g.make_consistent();
            g
        }
        Err(LockError::Failed(e @ Error::NotRecoverable { .. })) => {
            return Err(e).with_context(|| {
                format!("cannot lock {name} (remove it with `ipcworks lock --rm {name}`)")
            });
        }
        Err(LockError::Failed(e)) => return Err(e).context(format!("cannot lock {name}")),
    };

    // Ctrl-C reaches COMMAND (same process group); we outlive it, so the
    // lock is released cleanly and COMMAND's status reported.
    let _quiet = InterruptsGoToChild::install();
    let mut command = Command::new(program);
    command.args(rest);
    die_with_parent(&mut command);
    let status = command
        .status()
        .with_context(|| format!("cannot run {program:?}"))?;
    Ok(exit_code(status))
}

/// COMMAND must not outlive the lock: if this process is killed (and the
/// lock thereby freed for the next holder), the kernel kills COMMAND too
/// (`prctl(PR_SET_PDEATHSIG, SIGKILL)`).
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id();
    // SAFETY: the closure runs in the child between fork and exec and only
    // calls async-signal-safe functions (prctl, getppid, _exit).
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before the prctl took effect.
            if libc::getppid() as u32 != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

/// COMMAND's exit code, or 128+N if signal N killed it.
fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => ExitCode::from(c as u8),
        (None, Some(sig)) => ExitCode::from((128 + sig) as u8),
        (None, None) => ExitCode::from(crate::exit::ERROR),
    }
}

/// While alive, SIGINT and SIGQUIT run a no-op handler in this process (the
/// child, after exec, has the default action back), like system(3).
struct InterruptsGoToChild {
    old: [(libc::c_int, libc::sigaction); 2],
}

extern "C" fn ignore_signal(_: libc::c_int) {}

impl InterruptsGoToChild {
    fn install() -> Self {
        let mut old = [
            (libc::SIGINT, zeroed_sigaction()),
            (libc::SIGQUIT, zeroed_sigaction()),
        ];
        for (sig, prev) in &mut old {
            let mut sa = zeroed_sigaction();
            sa.sa_sigaction = ignore_signal as *const () as usize;
            sa.sa_flags = libc::SA_RESTART;
            // SAFETY: a valid sigaction whose handler does nothing (so it is
            // async-signal-safe); `prev` receives the old action.
            unsafe {
                libc::sigemptyset(&mut sa.sa_mask);
                libc::sigaction(*sig, &sa, prev);
            }
        }
        InterruptsGoToChild { old }
    }
}

impl Drop for InterruptsGoToChild {
    fn drop(&mut self) {
        for (sig, prev) in &self.old {
            // SAFETY: restores the action saved by `install`.
            unsafe { libc::sigaction(*sig, prev, std::ptr::null_mut()) };
        }
    }
}

fn zeroed_sigaction() -> libc::sigaction {
    // SAFETY: all-zero is a valid `struct sigaction` (SIG_DFL, no flags).
    unsafe { std::mem::zeroed() }
}
