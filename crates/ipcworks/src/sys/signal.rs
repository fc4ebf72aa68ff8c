//! Removing named objects when the user presses Ctrl-C.
//!
//! Demos and command-line runs create named objects that must not outlive
//! an interrupted run. [`remove_on_interrupt`] installs `SIGINT`/`SIGTERM`
//! handlers that unlink the listed objects with async-signal-safe system
//! calls, then end the process with the conventional code 128 + signal.

use std::ffi::CString;
use std::sync::Mutex;
use std::sync::atomic::{AtomicPtr, Ordering};

/// A named object to remove on interrupt.
#[derive(Debug, Clone)]
pub enum Removal {
    /// A file: `/dev/shm/NAME`, a FIFO, a socket (`unlink`).
    Path(String),
    /// A POSIX message queue by name, with its leading `/` (`mq_unlink`).
    Mq(String),
    /// A System V message queue by key (`msgctl(IPC_RMID)`).
    Sysv(i32),
}

enum Raw {
    Path(CString),
    Mq(CString),
    Sysv(i32),
}

static LIST: AtomicPtr<Vec<Raw>> = AtomicPtr::new(std::ptr::null_mut());
static INSTALL: Mutex<()> = Mutex::new(());

extern "C" fn on_signal(sig: libc::c_int) {
    let list = LIST.load(Ordering::Acquire);
    if !list.is_null() {
        // SAFETY: the pointer came from Box::into_raw in
        // remove_on_interrupt and is never freed (leaked on purpose), so
        // it is valid for the whole life of the process.
        for r in unsafe { &*list } {
            // SAFETY: unlink, mq_unlink, msgget and msgctl are system calls
            // (async-signal-safe); the strings are valid and NUL-terminated.
            unsafe {
                match r {
                    Raw::Path(p) => {
                        libc::unlink(p.as_ptr());
                    }
                    Raw::Mq(n) => {
                        libc::mq_unlink(n.as_ptr());
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
    }
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(128 + sig) }
}

/// Installs `SIGINT` and `SIGTERM` handlers that remove `objects` and exit
/// with 128 + the signal. Calling it again replaces the list (the old one
/// is leaked: it may be in use by a handler running on another thread).
pub fn remove_on_interrupt(objects: &[Removal]) {
    let raw: Vec<Raw> = objects
        .iter()
        .filter_map(|o| match o {
            Removal::Path(p) => CString::new(p.as_str()).ok().map(Raw::Path),
            Removal::Mq(n) => CString::new(n.as_str()).ok().map(Raw::Mq),
            Removal::Sysv(k) => Some(Raw::Sysv(*k)),
        })
        .collect();
    let _guard = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    LIST.store(Box::into_raw(Box::new(raw)), Ordering::Release);
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask"
        // value; the handler is an extern "C" fn that only makes
        // async-signal-safe calls.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}
