//! Processes and threads: what a process's memory looks like, region by
//! region ([`regions()`]); who a process is, in a way a reused pid cannot
//! fake ([`Identity`]); starting a child command that dies with this
//! process, and can share its hold on a lock or permit ([`spawn`],
//! [`spawn_holding`], [`spawn_worker`]); and removing named objects when a
//! signal ends this process ([`remove_on_terminate`]).
//!
//! # Memory regions
//!
//! Every process has code (text), data (initialized globals), bss (zeroed
//! globals), a heap, and one stack per thread. Threads of one process share
//! all of them but the stacks; a forked child gets a *copy* of everything.
//! [`regions()`] reads `/proc/PID/maps` and labels each mapping with its
//! region; each thread's stack is found by the stack pointer the kernel
//! reports in `/proc/PID/task/TID/syscall` (or `[stack]` for the main
//! thread).
//!
//! Paths are read as bytes: a mapped file whose name is not UTF-8 is kept
//! as it is ([`PathBuf`](std::path::PathBuf)) and only shown lossily (JSON
//! and tables put U+FFFD for the other bytes). A kernel thread has no user
//! memory at all: [`Regions::kernel_thread`] says so and its region list
//! is empty.
//! Reading another user's process needs ptrace access; the error,
//! [`Error::NotPermitted`](crate::Error::NotPermitted), names the rule.
//!
//! # Children tied to this process
//!
//! A child command can be started tied to this process, optionally under a
//! hold (a locked [`Mutex`](crate::sync::Mutex) or a semaphore
//! [`Permit`](crate::sync::Permit)) that the child then holds too.
//!
//! [`spawn`] and [`spawn_holding`] start a [`std::process::Command`] so
//! that:
//!
//! - **it dies with us**: between `fork` and `exec` the child arms
//!   `prctl(PR_SET_PDEATHSIG, SIGKILL)`, then checks with `getppid` that we
//!   did not die before that took hold (else it exits without running). If
//!   this process is killed, even by `SIGKILL`, the kernel kills the child.
//!   (The signal is sent when the *thread* that started the child ends:
//!   start children from a thread that outlives them.)
//! - **a hold outlives neither of us** ([`spawn_holding`]): the child
//!   records itself in the hold as a *co-holder* (pid and start time)
//!   before `exec`, and whoever would take the lock over or reclaim the
//!   permit after our death checks the co-holder too. The lock or permit is
//!   released only when both are gone. This covers what the death signal
//!   cannot: a child that executes a set-user-ID program (`sudo`, `su`,
//!   `ping`…) loses it (the kernel clears it), and dying takes a moment.
//! - **signals go where a shell user expects**, as with `system(3)`: while
//!   the child runs, `SIGINT` and `SIGQUIT` do nothing to this process (the
//!   terminal sends them to the child too, which ends, and we report how),
//!   and a `SIGTERM` to this process is passed on to the child; we keep
//!   waiting for it, so a hold is released after the child is gone.
//!
//! [`spawn_worker`] is for the other kind of child: a helper process that
//! does part of this program's own work (the `ipcworks demo` children, a
//! pool of workers). It dies with us (the first point), but this process's
//! signal dispositions are left alone: `SIGINT` ends this process as it
//! would without the child (or runs its handler, such as
//! [`remove_on_terminate`]'s), and the worker then dies with it.
//!
//! **Grandchildren** — processes the child starts itself — are not covered:
//! they are neither killed with us nor recorded as co-holders. Only a pid
//! namespace (`unshare --pid --fork`, whose init's death kills everything
//! inside) or a cgroup (killed as a whole, e.g. `systemd-run --scope`)
//! guarantees them; run COMMAND under one of those if it forks workers that
//! must not outlive the hold.
//!
//! ```no_run
//! use std::process::Command;
//! use ipcworks::sync::Semaphore;
//!
//! # fn main() -> ipcworks::Result<()> {
//! let pool = Semaphore::open("jobs")?;
//! let mut permit = pool.acquire()?;
//! let mut make = Command::new("make");
//! make.arg("job");
//! // The permit is held by us and by `make`: if we are killed, it comes
//! // back only once `make` is gone too.
//! let status = ipcworks::process::run_holding(make, &mut permit)?;
//! drop(permit);
//! println!("make: {status}");
//! # Ok(())
//! # }
//! ```

pub(crate) mod child;
mod cleanup;
pub(crate) mod regions;
pub(crate) mod watch;

pub use crate::sys::proc::Identity;
pub use child::{Hold, TiedChild, run_holding, spawn, spawn_holding, spawn_worker};
pub use cleanup::remove_on_terminate;
pub use regions::{Region, RegionKind, Regions, regions};
