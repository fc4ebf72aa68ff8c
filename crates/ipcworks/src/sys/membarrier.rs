//! `membarrier(2)`: the asymmetric fence between processes.
//!
//! A publisher that stores and then loads (the channel's "store the stamp,
//! then look whether the consumer sleeps") needs a full fence between the
//! two, or a sleeper that set its flag and re-checked may miss the store
//! while the publisher misses the flag. With `membarrier` the fence moves
//! to the rare side: the sleeper calls
//! `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` between setting its flag
//! and its re-check, which runs a full memory barrier on every CPU that is
//! running a thread of a process registered with
//! `MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED` (and a thread not running
//! passes one when it is switched in). The publisher then needs only
//! program order.
//!
//! The `GLOBAL` commands and not the `PRIVATE` ones: a private barrier
//! reaches only the caller's own process, and the channel's publisher is
//! usually another process — threaded tests would pass and cross-process
//! wake-ups would be lost.
//!
//! Registration is per process (it does not survive `execve`; the pid is
//! remembered so a forked child registers again). A process whose
//! registration fails (a kernel without the command, a seccomp filter)
//! publishes with full fences, and so does every process when the
//! sleeper's barrier cannot be issued (see [`fence_others`]).
//!
//! # References
//! - [Linux `membarrier(2)`](https://man7.org/linux/man-pages/man2/membarrier.2.html)

use std::sync::atomic::{AtomicU8, AtomicU32, Ordering::Relaxed};

use rustix::thread::{MembarrierCommand, membarrier};

/// The process id this process registered under (0: not yet, or failed).
static REGISTERED_PID: AtomicU32 = AtomicU32::new(0);
/// Whether `GLOBAL_EXPEDITED` barriers can be issued here: 0 unknown, 1
/// yes, 2 no.
static CAN_FENCE: AtomicU8 = AtomicU8::new(0);

/// `membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0, 0)` for this
/// process, once per process id: after it, another process's
/// [`fence_others`] runs a full barrier on the CPUs running this process's
/// threads. Returns whether this process is registered (and whether the
/// barrier is available at all: a process that can be fenced but cannot
/// fence others would lose wake-ups in its own sleeps, so both must work).
#[doc(alias = "membarrier")]
pub fn register() -> bool {
    let pid = rustix::process::getpid().as_raw_nonzero().get() as u32;
    if REGISTERED_PID.load(Relaxed) == pid {
        return true;
    }
    if !can_fence() {
        return false;
    }
    match membarrier(MembarrierCommand::RegisterGlobalExpedited) {
        Ok(()) => {
            REGISTERED_PID.store(pid, Relaxed);
            true
        }
        Err(_) => false,
    }
}

/// Whether `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` works here,
/// asked once (`MEMBARRIER_CMD_QUERY`).
fn can_fence() -> bool {
    match CAN_FENCE.load(Relaxed) {
        1 => true,
        2 => false,
        _ => {
            let q = rustix::thread::membarrier_query();
            let ok = q.contains_command(MembarrierCommand::GlobalExpedited)
                && q.contains_command(MembarrierCommand::RegisterGlobalExpedited);
            CAN_FENCE.store(if ok { 1 } else { 2 }, Relaxed);
            ok
        }
    }
}

/// `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0)`: a full memory
/// barrier on every CPU running a thread of a registered process, before
/// this returns. Returns `false` when the call failed (the caller then
/// cannot rely on it; publishers that registered would not fence, so
/// [`register`] refuses everywhere the call is unavailable).
#[doc(alias = "membarrier")]
pub fn fence_others() -> bool {
    membarrier(MembarrierCommand::GlobalExpedited).is_ok()
}
