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
If ipcworks itself is killed, COMMAND is killed too, and the lock is not taken over until COMMAND \
is gone (it holds the lock with ipcworks: a COMMAND that outlives the kill, e.g. a set-user-ID \
program, keeps the lock until it ends). Processes that COMMAND starts itself are not covered \
(run it under `unshare --pid --fork` or in a cgroup for that). Ctrl-C goes to COMMAND; a SIGTERM \
to ipcworks is passed on to COMMAND.

Like flock(1): `-n` fails at once if the lock is taken (but with exit code 124, as \
`--timeout 0`, where flock -n exits 1), `-t`/`--timeout` waits at most that long.

Examples:
  ipcworks lock backup -- rsync -a /src/ /dst/      # one backup at a time
  ipcworks lock -t 5 deploy -- ./deploy.sh          # give up after 5 s (exit 124)
  ipcworks lock -n nightly -- ./report.sh           # skip if one is running (exit 124)
  ipcworks lock --rm backup                         # remove the mutex"
)]
pub struct Args {
    /// Name of the mutex (created on first use).
    name: String,
    /// Give up waiting for the lock after DURATION (`5`, `0.5`, `200ms`,
    /// `1m`); exit 124.
    #[arg(short = 't', long, value_name = "DURATION", value_parser = super::duration)]
    timeout: Option<Duration>,
    /// Do not wait: exit 124 at once if the lock is taken (the same as
    /// `--timeout 0`; flock's `-n`).
    #[arg(short = 'n', long, visible_alias = "nb", conflicts_with = "timeout")]
    nonblock: bool,
    /// Remove the named mutex instead of running a command.
    #[arg(long, conflicts_with_all = ["timeout", "nonblock", "command"])]
    rm: bool,
    /// The command and its arguments, after `--`.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND",
        required_unless_present = "rm"
    )]
    command: Vec<String>,
}

/// Runs `ipcworks lock`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let name = args.name.as_str();
    if args.rm {
        Mutex::<()>::remove(name)?;
        return Ok(ExitCode::SUCCESS);
    }
    // clap requires COMMAND unless --rm (a usage error, exit 2).
    let Some((program, rest)) = args.command.split_first() else {
        bail!("no COMMAND given: ipcworks lock {name} -- COMMAND [ARGS…]");
    };
    let timeout = if args.nonblock {
        Some(Duration::ZERO)
    } else {
        args.timeout
    };

    let (mutex, _created) = Mutex::<()>::options()
        .persist(true)
        .open_or_create(name, ())?;
    let locked = match timeout {
        Some(t) => mutex.lock_timeout(t),
        None => mutex.lock(),
    };
    let mut guard = match locked {
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

    // COMMAND holds the lock with us: it dies if we are killed, and the
    // lock is not taken over while it runs. Ctrl-C reaches COMMAND (same
    // process group); we outlive it, release the lock and report its status.
    let mut command = Command::new(program);
    command.args(rest);
    let status = ipcworks::process::run_holding(command, &mut guard)?;
    Ok(crate::exit::from_status(status))
}
