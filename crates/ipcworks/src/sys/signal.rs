//! A termination flag set by `SIGINT`/`SIGTERM`, for event loops that shut
//! down gracefully (`sigaction` with a handler that only stores an atomic).

use std::sync::atomic::{AtomicBool, Ordering};

use rustix::io::Errno;

static TERMINATE: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_sig: libc::c_int) {
    // Async-signal-safe: a lock-free atomic store and nothing else.
    TERMINATE.store(true, Ordering::SeqCst);
}

/// Installs a handler for `SIGINT` and `SIGTERM` that sets a flag
/// ([`terminate_requested`]) instead of killing the process. Without
/// `SA_RESTART`, so a blocking `epoll_wait` returns `EINTR` at once.
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
pub fn terminate_requested() -> bool {
    TERMINATE.load(Ordering::SeqCst)
}
