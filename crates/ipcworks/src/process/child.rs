//! Starting a child command tied to this process, optionally under a hold
//! that the child then holds too: see the
//! [module docs](super#children-tied-to-this-process).

use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

use crate::sys::child::{ChildSignals, Tie, tie_to_parent};
use crate::sys::proc::{self, Status};
use crate::{Error, Result};

/// Something held that a child command can hold together with this
/// process: a locked [`MutexGuard`](crate::sync::MutexGuard) or a
/// semaphore [`Permit`](crate::sync::Permit). See [`spawn_holding`].
///
/// Sealed: implemented by ipcworks types only.
pub trait Hold: sealed::Sealed {}

pub(crate) mod sealed {
    use std::sync::atomic::AtomicU64;

    /// The word in shared memory where a hold records its co-holder.
    pub trait Sealed {
        /// The co-holder word of this hold: 0, or a process identity.
        fn co_holder(&self) -> &AtomicU64;
    }
}

/// Starts `command` tied to this process: killed (`SIGKILL`) if we die,
/// `SIGINT`/`SIGQUIT` left to it, `SIGTERM` passed on (see the [module
/// docs](super#children-tied-to-this-process)). Wait for it with [`TiedChild::wait`].
///
/// A command that cannot be started gives [`Error::Spawn`]: its source is
/// `NotFound` when the program does not exist, `PermissionDenied` when it
/// is not executable.
pub fn spawn(command: Command) -> Result<TiedChild<'static>> {
    start(command, None, Signals::LikeSystem)
}

/// Starts `command` as a worker of this process: killed (`SIGKILL`) if we
/// die, like [`spawn`]'s children, but with this process's signal
/// dispositions left as they are (see the [module docs](super#children-tied-to-this-process)): Ctrl-C
/// ends this process, or runs its handler, as if no child ran, and the
/// worker dies with it. Wait for it with [`TiedChild::wait`]; dropping
/// the [`TiedChild`] kills it.
///
/// A command that cannot be started gives [`Error::Spawn`]. (What the
/// `ipcworks` demos used `sys::proc::fork` for, private since the kernel
/// layer is: a child is now a program started again, never a bare fork.)
///
/// ```no_run
/// use std::process::Command;
///
/// # fn main() -> ipcworks::Result<()> {
/// // This program again, as a helper that must not outlive us.
/// let mut me = Command::new(std::env::current_exe().map_err(|e| ipcworks::Error::io("current_exe", e))?);
/// me.arg("--worker");
/// let worker = ipcworks::process::spawn_worker(me)?;
/// let status = worker.wait()?;
/// # Ok(())
/// # }
/// ```
pub fn spawn_worker(command: Command) -> Result<TiedChild<'static>> {
    start(command, None, Signals::Untouched)
}

/// Starts `command` as [`spawn`] does, recorded as a co-holder of `hold`:
/// the lock or permit cannot be taken over or reclaimed while the child
/// lives, even after this process died (see the [module docs](super#children-tied-to-this-process)).
/// The child forgets its share of the hold when it is waited for (or
/// killed and reaped when the [`TiedChild`] is dropped); only then can the
/// hold be released, which the borrow of `hold` enforces.
pub fn spawn_holding<'h, H: Hold + ?Sized>(
    command: Command,
    hold: &'h mut H,
) -> Result<TiedChild<'h>> {
    let hold: &'h H = hold;
    start(command, Some(hold.co_holder()), Signals::LikeSystem)
}

/// [`spawn_holding`], then [`TiedChild::wait`]: runs `command` to its end
/// under `hold`, and returns how it ended.
pub fn run_holding<H: Hold + ?Sized>(command: Command, hold: &mut H) -> Result<ExitStatus> {
    spawn_holding(command, hold)?.wait()
}

/// What starting a child does to this process's signal dispositions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signals {
    /// As `system(3)`, for a command run in the foreground ([`spawn`]).
    LikeSystem,
    /// Nothing ([`spawn_worker`]).
    Untouched,
}

fn start(mut command: Command, co: Option<&AtomicU64>, how: Signals) -> Result<TiedChild<'_>> {
    let parent = proc::pid();
    if co.is_some() && !matches!(proc::status(parent), Status::Alive { .. }) {
        return Err(Error::InvalidArgument(
            "a child can hold a lock or permit only where /proc/self/stat is readable \
             (its liveness is judged there)"
                .into(),
        ));
    }
    let signals = match how {
        Signals::LikeSystem => {
            Some(ChildSignals::install().map_err(|e| Error::io("sigaction", e))?)
        }
        Signals::Untouched => None,
    };
    let tie = Tie {
        parent,
        co_holder: co.map(|c| c as *const AtomicU64),
    };
    // SAFETY: `co` borrows an AtomicU64 in the hold's shared mapping for
    // longer than this function, and the fork happens inside
    // `command.spawn()` below; `command` (with the closure holding the
    // address) is dropped before we return, so it cannot fork again later.
    unsafe { tie_to_parent(&mut command, tie) };
    let child = match command.spawn() {
        Ok(c) => c,
        Err(source) => {
            // A child that recorded itself and then failed to exec is dead.
            if let Some(c) = co {
                c.store(0, SeqCst);
            }
            return Err(Error::Spawn {
                program: command.get_program().to_string_lossy().into_owned(),
                source,
            });
        }
    };
    let slot = signals.as_ref().and_then(|s| s.register(child.id()));
    Ok(TiedChild {
        child,
        reaped: false,
        co,
        slot,
        signals,
    })
}

/// A child command started by [`spawn`], [`spawn_holding`] or
/// [`spawn_worker`].
///
/// Dropping it before [`wait`](Self::wait) kills the child (`SIGKILL`) and
/// reaps it: a hold it shares is never released while it runs.
#[derive(Debug)]
#[must_use = "dropping a TiedChild kills the child; wait for it"]
pub struct TiedChild<'h> {
    child: std::process::Child,
    reaped: bool,
    co: Option<&'h AtomicU64>,
    slot: Option<usize>,
    /// `None` for a worker, whose parent's signals are left alone.
    signals: Option<ChildSignals>,
}

impl TiedChild<'_> {
    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the child to end (`waitpid`) and returns how it ended;
    /// then it no longer shares the hold, and this process's signal
    /// dispositions are back to what they were (if [`spawn`] changed them).
    #[doc(alias = "waitpid")]
    pub fn wait(mut self) -> Result<ExitStatus> {
        let status = self.child.wait().map_err(|e| Error::io("waitpid", e))?;
        self.reaped = true;
        Ok(status)
    }

    /// Sends `SIGKILL` to the child (it is reaped by [`wait`](Self::wait)
    /// or on drop).
    pub fn kill(&mut self) -> Result<()> {
        self.child.kill().map_err(|e| Error::io("kill", e))
    }
}

impl Drop for TiedChild<'_> {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if let (Some(slot), Some(signals)) = (self.slot, &self.signals) {
            signals.unregister(slot);
        }
        // The child is gone (reaped): it holds nothing any more.
        if let Some(c) = self.co {
            c.store(0, SeqCst);
        }
    }
}
