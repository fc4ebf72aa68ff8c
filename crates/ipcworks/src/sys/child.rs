//! The raw calls behind [`process::spawn`](crate::process::spawn): what a
//! child does between `fork` and `exec` (`prctl(PR_SET_PDEATHSIG)`, reading
//! its own `/proc/self/stat`, `getppid`), and what its parent does with
//! `SIGINT`, `SIGQUIT` and `SIGTERM` while the child runs (`sigaction`,
//! `kill`).
//!
//! # References
//! - [`prctl(2)`](https://man7.org/linux/man-pages/man2/prctl.2.html), `PR_SET_PDEATHSIG`
//! - [`system(3)`](https://man7.org/linux/man-pages/man3/system.3.html), what it does with `SIGINT`/`SIGQUIT`
//! - [`signal-safety(7)`](https://man7.org/linux/man-pages/man7/signal-safety.7.html)

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering::SeqCst, fence};

use rustix::fs::{Mode, OFlags};
use rustix::process::Signal;

use super::proc::{Identity, Status, parse_stat};

/// What the child of [`tie_to_parent`] does between fork and exec.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tie {
    /// The parent's pid: the child runs only if `getppid()` still returns
    /// it once its death signal is armed (and its co-holder recorded).
    pub parent: u32,
    /// Where the child stores its own identity before it runs, or `None`.
    /// An address inside a `MAP_SHARED` mapping (the parent's hold).
    pub co_holder: Option<*const AtomicU64>,
}

/// Arranges for the child that `command` will start, between `fork` and
/// `exec`, in this order:
///
/// 1. `prctl(PR_SET_PDEATHSIG, SIGKILL)`: the kernel kills it when the
///    thread that forked it ends;
/// 2. when `tie.co_holder` is given, it stores its own identity (pid and
///    start time, read from `/proc/self/stat`) there;
/// 3. `getppid()`: if the parent is not `tie.parent` any more (it died
///    before step 1 took hold), the child fails with `ESRCH` instead of
///    running the command.
///
/// Every step is async-signal-safe: system calls, an atomic store, and
/// parsing a stack buffer without allocating.
///
/// # Safety
///
/// `tie.co_holder`, if given, must point to an `AtomicU64` that is mapped
/// (shared, so the parent sees the store) at the moment `command` forks.
#[doc(alias = "PR_SET_PDEATHSIG")]
pub(crate) unsafe fn tie_to_parent(command: &mut Command, tie: Tie) {
    let parent = tie.parent;
    // Addresses are not `Send`; the number is, and the child has the same
    // mappings at the same addresses.
    let co = tie.co_holder.map(|p| p as usize);
    let child = move || -> io::Result<()> {
        rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
        if let Some(addr) = co {
            let me = own_identity()?;
            // SAFETY: the caller of `tie_to_parent` promised a mapped
            // AtomicU64 at this address at fork time, and fork keeps the
            // mappings; an atomic store is async-signal-safe.
            unsafe { (*(addr as *const AtomicU64)).store(me, SeqCst) };
            // Store, then look at the parent: see "Co-holders" in
            // sync/semaphore/raw.rs for why the fence.
            fence(SeqCst);
        }
        if rustix::process::getppid().map(|p| p.as_raw_nonzero().get() as u32) != Some(parent) {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
        Ok(())
    };
    // SAFETY: `child` runs in the forked child before exec and only makes
    // async-signal-safe system calls (prctl, open, read, close, getppid),
    // stores to an atomic, and parses a stack buffer without allocating.
    unsafe { command.pre_exec(child) };
}

/// The calling process's identity, computed without allocating or taking
/// locks (callable between fork and exec): `getpid()` and field 22 of
/// `/proc/self/stat`, read into a stack buffer.
fn own_identity() -> io::Result<u64> {
    let pid = rustix::process::getpid().as_raw_nonzero().get() as u32;
    let fd = rustix::fs::open(
        c"/proc/self/stat",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut buf = [0u8; 1024];
    let n = rustix::io::read(&fd, &mut buf[..])?;
    drop(fd);
    match parse_stat(&buf[..n]) {
        Some(Status::Alive { start }) => Ok(Identity::new(pid, start).raw()),
        _ => Err(io::Error::from_raw_os_error(libc::EIO)),
    }
}

/// Pids of running tied children that a `SIGTERM` to us is passed on to
/// (0: free slot).
static CHILDREN: [AtomicI32; 32] = [const { AtomicI32::new(0) }; 32];
/// A `SIGTERM` arrived while the handlers were installed; children
/// registered later get it too.
static TERM_SEEN: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_sig: libc::c_int) {
    // Nothing: the terminal sends SIGINT/SIGQUIT to the child too (same
    // process group); we wait for it and report how it ended.
}

extern "C" fn on_term(_sig: libc::c_int) {
    // Async-signal-safe: atomics and kill(2). The flag first, then the
    // slots: a child registered concurrently is either seen here or sees
    // the flag (see `register`).
    TERM_SEEN.store(true, SeqCst);
    for c in &CHILDREN {
        let pid = c.load(SeqCst);
        if pid > 0 {
            // SAFETY: kill(2) with a plain pid and signal number.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
    }
}

/// The dispositions saved by the first [`ChildSignals::install`], and how
/// many installations are alive.
struct Saved {
    users: usize,
    old: [(libc::c_int, libc::sigaction); 3],
}

// SAFETY: `libc::sigaction` is plain data (a handler address, a mask,
// flags); it is only read back into sigaction(2) under the mutex.
unsafe impl Send for Saved {}

static SAVED: Mutex<Option<Saved>> = Mutex::new(None);

/// While alive, this process treats signals as a parent waiting for a
/// child command should, as `system(3)` does and further:
///
/// - `SIGINT` and `SIGQUIT` run a handler that does nothing. The child,
///   after `exec`, has the default actions back (handlers do not survive
///   `exec`, where `SIG_IGN` would), so Ctrl-C ends the child and we
///   report it;
/// - `SIGTERM` is passed on to every [registered](Self::register) child,
///   and we go on waiting for it.
///
/// Installations nest (a counter); the last one dropped restores the
/// dispositions found by the first.
#[derive(Debug)]
pub(crate) struct ChildSignals {
    _private: (),
}

impl ChildSignals {
    /// `sigaction(2)` for `SIGINT`, `SIGQUIT` (no-op handler) and `SIGTERM`
    /// (passed on), with `SA_RESTART`.
    pub(crate) fn install() -> io::Result<ChildSignals> {
        let mut saved = SAVED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = saved.as_mut() {
            s.users += 1;
            return Ok(ChildSignals { _private: () });
        }
        TERM_SEEN.store(false, SeqCst);
        let mut old = [
            (libc::SIGINT, zeroed_sigaction()),
            (libc::SIGQUIT, zeroed_sigaction()),
            (libc::SIGTERM, zeroed_sigaction()),
        ];
        for i in 0..old.len() {
            let (sig, _) = old[i];
            let handler = if sig == libc::SIGTERM {
                on_term as extern "C" fn(libc::c_int) as usize
            } else {
                on_interrupt as extern "C" fn(libc::c_int) as usize
            };
            let mut sa = zeroed_sigaction();
            sa.sa_sigaction = handler;
            sa.sa_flags = libc::SA_RESTART;
            // SAFETY: a valid sigaction whose handler is async-signal-safe
            // (nothing, or atomics and kill); `old[i].1` receives the
            // previous action.
            let rc = unsafe {
                libc::sigemptyset(&mut sa.sa_mask);
                libc::sigaction(sig, &sa, &mut old[i].1)
            };
            if rc != 0 {
                let e = io::Error::last_os_error();
                for (sig, prev) in &old[..i] {
                    // SAFETY: restores an action saved just above.
                    unsafe { libc::sigaction(*sig, prev, std::ptr::null_mut()) };
                }
                return Err(e);
            }
        }
        *saved = Some(Saved { users: 1, old });
        Ok(ChildSignals { _private: () })
    }

    /// Passes later `SIGTERM`s on to `pid` (and one that came already, since
    /// the installation). Returns the slot to [`unregister`](Self::unregister),
    /// or `None` when every slot is taken (then `SIGTERM` is not passed on
    /// to this child; the others keep theirs).
    pub(crate) fn register(&self, pid: u32) -> Option<usize> {
        let pid = i32::try_from(pid).ok()?;
        let slot = CHILDREN
            .iter()
            .position(|c| c.compare_exchange(0, pid, SeqCst, SeqCst).is_ok())?;
        if TERM_SEEN.load(SeqCst) {
            // SAFETY: kill(2) with a plain pid and signal number.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        Some(slot)
    }

    /// Stops passing `SIGTERM` on to the child in `slot`.
    pub(crate) fn unregister(&self, slot: usize) {
        if let Some(c) = CHILDREN.get(slot) {
            c.store(0, SeqCst);
        }
    }
}

impl Drop for ChildSignals {
    fn drop(&mut self) {
        let mut saved = SAVED.lock().unwrap_or_else(|p| p.into_inner());
        let Some(s) = saved.as_mut() else { return };
        s.users -= 1;
        if s.users > 0 {
            return;
        }
        for (sig, prev) in &s.old {
            // SAFETY: restores the action saved by the first `install`.
            unsafe { libc::sigaction(*sig, prev, std::ptr::null_mut()) };
        }
        *saved = None;
    }
}

fn zeroed_sigaction() -> libc::sigaction {
    // SAFETY: all-zero is a valid `struct sigaction` (SIG_DFL, no flags).
    unsafe { std::mem::zeroed() }
}
