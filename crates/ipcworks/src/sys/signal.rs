//! A termination flag set by `SIGINT`/`SIGTERM`, for event loops that shut
//! down gracefully (`sigaction` with a handler that only stores an atomic),
//! and removal of named objects when a run is interrupted.

use std::ffi::CString;
#[cfg(feature = "server")]
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicPtr, Ordering};

use rustix::io::Errno;

#[cfg(feature = "server")]
static TERMINATE: AtomicBool = AtomicBool::new(false);

#[cfg(feature = "server")]
extern "C" fn on_signal(_sig: libc::c_int) {
    // Async-signal-safe: a lock-free atomic store and nothing else.
    TERMINATE.store(true, Ordering::SeqCst);
}

/// Installs a handler for `SIGINT` and `SIGTERM` that sets a flag
/// ([`terminate_requested`]) instead of killing the process. Without
/// `SA_RESTART`, so a blocking `epoll_wait` returns `EINTR` at once.
#[cfg(feature = "server")]
pub fn catch_terminate() -> Result<(), Errno> {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only performs an atomic store, which is
        // async-signal-safe; the struct is zeroed then fully set up.
        let rc = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(Errno::INVAL);
        }
    }
    Ok(())
}

/// Whether `SIGINT` or `SIGTERM` arrived since [`catch_terminate`].
#[cfg(feature = "server")]
pub fn terminate_requested() -> bool {
    TERMINATE.load(Ordering::SeqCst)
}

/// A named object to remove when the process is interrupted.
#[derive(Debug, Clone)]
pub enum Removal {
    /// A file: `/dev/shm/NAME`, a FIFO, a socket, a registry entry (`unlink`).
    Path(String),
    /// A POSIX message queue by name, with its leading `/` (`mq_unlink`).
    Mq(String),
    /// A System V message queue by key (`msgctl(IPC_RMID)`).
    Sysv(i32),
}

/// A removal in the form the signal handler can use without allocating.
enum Raw {
    Path(CString),
    Mq(CString),
    Sysv(i32),
}

const SLOTS: usize = 32;
static CLEANUP: [AtomicPtr<Raw>; SLOTS] = [const { AtomicPtr::new(std::ptr::null_mut()) }; SLOTS];

extern "C" fn cleanup_and_die(sig: libc::c_int) {
    for slot in &CLEANUP {
        let p = slot.swap(std::ptr::null_mut(), Ordering::SeqCst);
        if p.is_null() {
            continue;
        }
        // SAFETY: `p` came from `Box::into_raw` in `remove_on_terminate`
        // and is never freed (the swap gives it to exactly one handler
        // run). unlink, mq_unlink, msgget and msgctl are system calls
        // (async-signal-safe); the strings are NUL-terminated.
        unsafe {
            match &*p {
                Raw::Path(c) => {
                    libc::unlink(c.as_ptr());
                }
                Raw::Mq(c) => {
                    libc::mq_unlink(c.as_ptr());
                }
                Raw::Sysv(k) => {
                    let id = libc::msgget(*k, 0);
                    if id != -1 {
                        libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut());
                    }
                }
            }
        }
    }
    // SAFETY: `signal` and `raise` are async-signal-safe; with the default
    // disposition restored, the process ends the way the signal means (the
    // shell sees "killed by SIGINT", status 130).
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

/// Arranges for `objects` to be removed if the process is ended by
/// `SIGINT`, `SIGTERM` or `SIGHUP`; then the signal takes its default
/// effect. So a command or demo interrupted with Ctrl-C leaves no segment,
/// queue, FIFO or socket behind. Calls add to the list (at most 32 objects
/// in all). The handler only makes async-signal-safe system calls. For
/// programs that own their signals, not for libraries to call on their own.
pub fn remove_on_terminate(objects: &[Removal]) -> Result<(), Errno> {
    for o in objects {
        let raw = match o {
            Removal::Path(p) => Raw::Path(CString::new(p.as_str()).map_err(|_| Errno::INVAL)?),
            Removal::Mq(n) => Raw::Mq(CString::new(n.as_str()).map_err(|_| Errno::INVAL)?),
            Removal::Sysv(k) => Raw::Sysv(*k),
        };
        let p = Box::into_raw(Box::new(raw));
        let stored = CLEANUP.iter().any(|slot| {
            slot.compare_exchange(std::ptr::null_mut(), p, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        });
        if !stored {
            // SAFETY: `p` came from `Box::into_raw` above and was not stored.
            drop(unsafe { Box::from_raw(p) });
            return Err(Errno::NOSPC);
        }
    }
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler does only async-signal-safe work (see
        // `cleanup_and_die`); the struct is zeroed then set up.
        let rc = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = cleanup_and_die as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(Errno::INVAL);
        }
    }
    Ok(())
}

/// Holds `SIGINT`, `SIGTERM` and `SIGHUP` pending for the calling thread
/// until dropped (`pthread_sigmask(SIG_BLOCK)`, then the old mask back):
/// for a few system calls that must not be cut in two by a handler that
/// ends the process (such as [`remove_on_terminate`]'s), e.g. moving a file
/// into place and removing the directory it was made in. A signal that
/// arrives meanwhile is delivered when the hold ends. Only this thread's
/// mask changes: in a process whose other threads take these signals, the
/// handler may still run there.
#[derive(Debug)]
#[must_use = "the signals are held only while the guard lives"]
pub struct HoldTermination {
    old: libc::sigset_t,
}

impl HoldTermination {
    /// Starts holding; see the type's docs.
    pub fn new() -> HoldTermination {
        // SAFETY: sigset_t is plain data; the sets are initialised with
        // sigemptyset before use, and pthread_sigmask only reads `set` and
        // writes `old`, both live for the call.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigemptyset(&mut old);
            for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                libc::sigaddset(&mut set, sig);
            }
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
            HoldTermination { old }
        }
    }
}

impl Default for HoldTermination {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for HoldTermination {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved in `new`, a valid sigset_t.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut());
        }
    }
}
