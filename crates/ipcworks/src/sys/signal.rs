//! A termination flag set by `SIGINT`/`SIGTERM`, for event loops that shut
//! down gracefully (`sigaction` with a handler that only stores an atomic),
//! and removal of named objects when a run is interrupted.

use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

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

const SLOTS: usize = 8;
static CLEANUP: [AtomicPtr<libc::c_char>; SLOTS] =
    [const { AtomicPtr::new(std::ptr::null_mut()) }; SLOTS];

extern "C" fn cleanup_and_die(sig: libc::c_int) {
    for slot in &CLEANUP {
        let p = slot.swap(std::ptr::null_mut(), Ordering::SeqCst);
        if !p.is_null() {
            // SAFETY: `p` is a NUL-terminated string leaked by
            // `unlink_on_terminate` and never freed; `unlink` is
            // async-signal-safe.
            unsafe { libc::unlink(p) };
        }
    }
    // SAFETY: `signal` and `raise` are async-signal-safe; with the default
    // disposition restored, the process ends the way the signal means.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

/// Arranges for `path` to be removed if the process is ended by `SIGINT`,
/// `SIGTERM` or `SIGHUP` (then the signal takes its default effect), so a
/// command-line tool interrupted with Ctrl-C leaves no FIFO or socket file
/// behind. At most 8 paths; the handler only calls `unlink`, `signal` and
/// `raise`, all async-signal-safe. For programs that own their signals
/// (not for libraries to call on their own).
pub fn unlink_on_terminate(path: &std::path::Path) -> Result<(), Errno> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::INVAL)?;
    let p = c.into_raw();
    for slot in &CLEANUP {
        if slot
            .compare_exchange(std::ptr::null_mut(), p, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
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
            return Ok(());
        }
    }
    // SAFETY: `p` came from `CString::into_raw` above and was not stored.
    drop(unsafe { std::ffi::CString::from_raw(p) });
    Err(Errno::NOSPC)
}

// ---------------------------------------------------------------------------
// Removing named objects of any kind (files, POSIX and System V queues) when
// a demo or command is interrupted: `remove_on_interrupt`.

use std::ffi::CString;
use std::sync::Mutex;

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

extern "C" fn remove_and_exit(sig: libc::c_int) {
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
            sa.sa_sigaction = remove_and_exit as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}
