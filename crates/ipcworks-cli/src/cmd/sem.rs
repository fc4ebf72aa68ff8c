//! `ipcworks sem …`: named counting semaphores from the shell — the native
//! robust one (default) or a POSIX one (`--posix`, `/dev/shm/sem.NAME`).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;
use ipcworks::Error;
use ipcworks::sync::{PosixSemaphore, Semaphore};

const EXAMPLES: &str = "Examples:
  ipcworks sem create jobs --value 2          # a pool of 2 permits, mode 0600
  ipcworks sem run jobs -- make -j1 thing     # at most 2 of these at once
  ipcworks sem run -j 4 builds -- ./build.sh  # creates `builds` with 4 permits if needed
  ipcworks sem wait jobs -t 5                 # P; exit 124 after 5 s
  ipcworks sem post jobs                      # V
  ipcworks sem value jobs                     # permits now (dead holders' given back)
  ipcworks sem rm jobs
  ipcworks sem create ready --value 0 --posix # /dev/shm/sem.ready, for C or Python peers

`sem run -j N NAME -- COMMAND` creates NAME with N permits on first use (like GNU
sem -j N); it stays until `sem rm`.

Native semaphores give back the permits of a `sem run` (or any acquire) whose
process died, even by kill -9; POSIX ones cannot. A `sem run` killed while its
COMMAND runs kills COMMAND too (parent-death signal), and its permit is not
handed on until COMMAND is gone, even if COMMAND outlived the signal (a
set-user-ID program loses it). Processes COMMAND starts itself are not covered:
run it under `unshare --pid --fork` or in a cgroup for that. Ctrl-C goes to
COMMAND; a SIGTERM to ipcworks is passed on to COMMAND.
";

/// Arguments of `ipcworks sem`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    #[command(subcommand)]
    cmd: Sem,
}

/// Options every subcommand shares.
#[derive(Debug, clap::Args)]
struct Common {
    /// Use a POSIX named semaphore (sem_open(3), /dev/shm/sem.NAME) instead
    /// of the native robust one.
    #[arg(long)]
    posix: bool,
    /// Permission bits in octal: exactly these when creating; when opening,
    /// a semaphore granting more than these is refused.
    #[arg(long, default_value = "600", value_parser = parse_mode)]
    mode: u32,
}

#[derive(Debug, Subcommand)]
enum Sem {
    /// Create a named semaphore with an initial value (1 = binary); it
    /// stays until `sem rm`.
    #[command(after_help = EXAMPLES)]
    Create {
        /// The name (letters, digits, `.`, `-`, `_`; no `/`).
        name: String,
        /// Initial value: the number of permits.
        #[arg(long)]
        value: u32,
        /// Native only: how many permits can be out through `acquire`/`sem
        /// run` at once (default: the value, at least 64, at most 1024).
        #[arg(long)]
        max_holders: Option<u32>,
        #[command(flatten)]
        common: Common,
    },
    /// P: take a permit, waiting while there is none (not tracked: give it
    /// back with `sem post`).
    #[command(after_help = EXAMPLES)]
    Wait {
        /// The name.
        name: String,
        /// Give up after DURATION (`5`, `0.5`, `200ms`, `1m`; exit code 124).
        #[arg(short = 't', long, value_name = "DURATION", value_parser = super::duration)]
        timeout: Option<Duration>,
        #[command(flatten)]
        common: Common,
    },
    /// V: give a permit back (count + 1), waking one waiter.
    #[command(after_help = EXAMPLES)]
    Post {
        /// The name.
        name: String,
        #[command(flatten)]
        common: Common,
    },
    /// Print the number of permits available (native: after giving back
    /// the permits of holders that died).
    #[command(after_help = EXAMPLES)]
    Value {
        /// The name.
        name: String,
        /// Native only: also list the processes holding permits.
        #[arg(long)]
        holders: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Remove a named semaphore.
    #[command(after_help = EXAMPLES)]
    Rm {
        /// The name.
        name: String,
        /// Remove the POSIX semaphore /dev/shm/sem.NAME.
        #[arg(long)]
        posix: bool,
    },
    /// Run COMMAND holding one permit of a native semaphore, given back
    /// when COMMAND ends however it ends. COMMAND holds the permit together
    /// with ipcworks: if ipcworks is killed, COMMAND is killed too, and the
    /// permit comes back only once both are gone.
    #[command(after_help = EXAMPLES)]
    Run {
        /// The name.
        name: String,
        /// Give up waiting for a permit after DURATION (`5`, `200ms`, `1m`;
        /// exit code 124).
        #[arg(short = 't', long, value_name = "DURATION", value_parser = super::duration)]
        timeout: Option<Duration>,
        /// Create the semaphore with N permits if it does not exist (it
        /// then stays until `sem rm`, like GNU sem's); an existing one must
        /// have been created with N.
        #[arg(short = 'j', long = "jobs", value_name = "N",
              value_parser = clap::value_parser!(u32).range(1..=i32::MAX as i64))]
        jobs: Option<u32>,
        /// Permission bits the semaphore may have at most (octal); with
        /// `-j`, exactly these when it is created.
        #[arg(long, default_value = "600", value_parser = parse_mode)]
        mode: u32,
        /// The command and its arguments.
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
}

fn parse_mode(s: &str) -> Result<u32, String> {
    let m = u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .map_err(|_| format!("{s:?} is not an octal mode like 600"))?;
    if m > 0o777 {
        return Err(format!("mode {s} has bits beyond 0777"));
    }
    Ok(m)
}

/// Opens a native semaphore; if only a POSIX one has the name, says so.
fn open_native(name: &str, mode: u32) -> anyhow::Result<Semaphore> {
    match Semaphore::options().mode(mode).open(name) {
        Ok(s) => Ok(s),
        Err(e @ Error::NotFound { .. }) => {
            if PosixSemaphore::exists(name).unwrap_or(false) {
                bail!(
                    "no native semaphore {name:?}, but a POSIX one exists ({}): add --posix",
                    PosixSemaphore::path(name)?
                );
            }
            Err(e.into())
        }
        Err(e) => Err(e.into()),
    }
}

/// `sem run -j N`: opens the native semaphore, or creates it (persistent)
/// with `n` permits; an existing one made with another value is an error.
fn open_or_create_pool(name: &str, n: u32, mode: u32) -> anyhow::Result<Semaphore> {
    let (sem, created) = Semaphore::options()
        .mode(mode)
        .persist(true)
        .open_or_create(name, n)?;
    let had = sem.initial_value();
    if !created && had != n {
        bail!(
            "semaphore {name:?} exists with {had} permits, not {n} (-j {n}):              use -j {had}, or remove it first with `ipcworks sem rm {name}`"
        );
    }
    Ok(sem)
}

fn open_posix(name: &str, mode: u32) -> anyhow::Result<PosixSemaphore> {
    Ok(PosixSemaphore::options().mode(mode).open(name)?)
}

/// Runs `ipcworks sem`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.cmd {
        Sem::Create {
            name,
            value,
            max_holders,
            common,
        } => {
            if common.posix {
                if max_holders.is_some() {
                    bail!("--max-holders applies to native semaphores only (drop --posix)");
                }
                let mut s = PosixSemaphore::options()
                    .mode(common.mode)
                    .create(&name, value)?;
                s.persist();
            } else {
                let mut o = Semaphore::options();
                o.mode(common.mode).persist(true);
                if let Some(n) = max_holders {
                    o.max_holders(n);
                }
                o.create(&name, value)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Sem::Wait {
            name,
            timeout,
            common,
        } => {
            if common.posix {
                let s = open_posix(&name, common.mode)?;
                match timeout {
                    Some(t) => s.wait_timeout(t),
                    None => s.wait(),
                }
            } else {
                let s = open_native(&name, common.mode)?;
                match timeout {
                    Some(t) => s.wait_timeout(t),
                    None => s.wait(),
                }
            }
            .with_context(|| format!("waiting on semaphore {name:?}"))?;
            Ok(ExitCode::SUCCESS)
        }
        Sem::Post { name, common } => {
            if common.posix {
                open_posix(&name, common.mode)?.post()?;
            } else {
                open_native(&name, common.mode)?.post()?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Sem::Value {
            name,
            holders,
            common,
        } => {
            if common.posix {
                if holders {
                    bail!("a POSIX semaphore does not know its holders (drop --holders)");
                }
                println!("{}", open_posix(&name, common.mode)?.value()?);
            } else {
                let s = open_native(&name, common.mode)?;
                let back = s.reclaim()?;
                if back > 0 {
                    eprintln!("ipcworks: gave back {back} permit(s) of holders that died");
                }
                println!("{}", s.value()?);
                if holders {
                    for h in s.holders() {
                        let with = match h.co_holder {
                            Some(c) => format!(
                                ", with COMMAND pid {}{}",
                                c.pid,
                                if c.alive { "" } else { " (dead)" }
                            ),
                            None => String::new(),
                        };
                        println!(
                            "holder pid {} {}{}{with}",
                            h.pid,
                            if h.held {
                                "holds a permit"
                            } else {
                                "is mid-update"
                            },
                            if h.alive { "" } else { " (dead)" }
                        );
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Sem::Rm { name, posix } => {
            if posix {
                PosixSemaphore::remove(&name)?;
            } else {
                match Semaphore::remove(&name) {
                    Err(e @ Error::NotFound { .. }) => {
                        if PosixSemaphore::exists(&name).unwrap_or(false) {
                            bail!(
                                "no native semaphore {name:?}, but a POSIX one exists: add --posix"
                            );
                        }
                        return Err(e.into());
                    }
                    other => other?,
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Sem::Run {
            name,
            timeout,
            jobs,
            mode,
            command,
        } => {
            let sem = match jobs {
                None => open_native(&name, mode)?,
                Some(n) => open_or_create_pool(&name, n, mode)?,
            };
            let mut permit = match timeout {
                Some(t) => sem.acquire_timeout(t),
                None => sem.acquire(),
            }
            .with_context(|| format!("taking a permit of semaphore {name:?}"))?;
            // COMMAND holds the permit with us: it dies if we are killed,
            // and the permit is not reclaimed while it runs.
            let mut child = std::process::Command::new(&command[0]);
            child.args(&command[1..]);
            let status = ipcworks::process::run_holding(child, &mut permit);
            drop(permit);
            Ok(crate::exit::from_status(status?))
        }
    }
}
