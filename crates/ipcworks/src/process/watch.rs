//! Instant notice of a peer's death: one watcher thread per process waits
//! in `epoll` on the pidfds of the peers that blocked calls care about,
//! and runs each one's `on_exit` (which kicks the sleeper's futex word) the
//! moment the kernel reports the process gone.
//!
//! Why a thread: a receive blocked in `futex(FUTEX_WAIT)` cannot also wait
//! on a descriptor, and the blocking fast path must stay a bare futex
//! wait (the `shm-block` benchmark row). The thread costs nothing while
//! no peer dies: it sleeps in `epoll_wait` without a timeout. It starts
//! the first time something is watched and lives as long as the process
//! (a forked child, which has no copy of it, starts its own).
//!
//! Race-free against pid reuse: a pidfd is opened and then confirmed
//! against the start time the peer recorded in shared memory
//! ([`Identity::pidfd`]); a pidfd never names another process later.
//!
//! Registration happens only when the set of peers changes (the caller
//! compares a generation word), never per wait.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::sys::poll;
use crate::sys::proc::{self, Identity, Watch};

/// What to do when a watched process exits (runs on the watcher thread,
/// under its lock: keep it short and never block).
pub(crate) type OnExit = Arc<dyn Fn() + Send + Sync>;

struct Entry {
    pidfd: OwnedFd,
    on_exit: OnExit,
}

struct Watcher {
    /// The process that started the thread (a forked child starts its own).
    pid: u32,
    epoll: OwnedFd,
    entries: Mutex<HashMap<u64, Entry>>,
    next: AtomicU64,
}

static WATCHER: Mutex<Option<Arc<Watcher>>> = Mutex::new(None);

/// The watcher of this process, started on first use.
fn watcher() -> std::io::Result<Arc<Watcher>> {
    let mut w = WATCHER.lock().unwrap_or_else(|p| p.into_inner());
    let me = proc::pid();
    if let Some(w) = w.as_ref().filter(|w| w.pid == me) {
        return Ok(w.clone());
    }
    let watcher = Arc::new(Watcher {
        pid: me,
        epoll: poll::epoll_create()?,
        entries: Mutex::new(HashMap::new()),
        next: AtomicU64::new(1),
    });
    let run = watcher.clone();
    std::thread::Builder::new()
        .name("ipcworks-pidfd".into())
        .spawn(move || run.run())?;
    *w = Some(watcher.clone());
    Ok(watcher)
}

impl Watcher {
    fn run(&self) {
        let mut ready = Vec::new();
        loop {
            ready.clear();
            match poll::epoll_wait(&self.epoll, &mut ready, None) {
                Ok(()) => {}
                Err(crate::sys::Errno::INTR) => continue,
                // The epoll descriptor itself failed: nothing more can be
                // watched; callers keep their /proc look.
                Err(_) => return,
            }
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            for r in &ready {
                if let Some(e) = entries.remove(&r.token) {
                    let _ = poll::epoll_del(&self.epoll, &e.pidfd);
                    (e.on_exit)();
                }
            }
        }
    }
}

/// A registration with the watcher: removed when dropped.
pub(crate) struct Watched {
    watcher: Arc<Watcher>,
    token: u64,
}

impl Drop for Watched {
    fn drop(&mut self) {
        let mut entries = self
            .watcher
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(e) = entries.remove(&self.token) {
            let _ = poll::epoll_del(&self.watcher.epoll, &e.pidfd);
        }
    }
}

impl std::fmt::Debug for Watched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watched")
            .field("token", &self.token)
            .finish()
    }
}

/// What [`watch`] did.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The process runs and is watched: `on_exit` runs when it exits.
    Watching(Watched),
    /// Already gone (or its pid names another process now): `on_exit`
    /// was not run; the caller acts at once.
    Dead,
    /// Cannot be watched (no pidfd, `/proc` hidden): the caller keeps
    /// looking through `/proc` now and then.
    Unwatchable,
}

/// [`watch`] with an `on_exit` that borrows (the native queue's wake-up
/// semaphore in its mapping, for the length of one blocking call).
///
/// # Safety
///
/// A [`Outcome::Watching`] result must be dropped, not leaked
/// (`mem::forget`), before `'a` ends: dropping it removes the entry under
/// the lock `on_exit` runs under, so after the drop `on_exit` is neither
/// running nor will run again; a leaked one would let it run after what
/// it borrows is gone.
pub(crate) unsafe fn watch_scoped<'a>(
    id: Identity,
    on_exit: Arc<dyn Fn() + Send + Sync + 'a>,
) -> Outcome {
    // SAFETY: only the lifetime changes (same layout); the caller keeps
    // the registration from outliving 'a, and the registration's drop
    // removes (and so stops) the closure, see above.
    let on_exit: OnExit =
        unsafe { std::mem::transmute::<Arc<dyn Fn() + Send + Sync + 'a>, OnExit>(on_exit) };
    watch(id, on_exit)
}

/// [`watch_scoped`] for a *thread* identity (a mutex holder): `on_exit`
/// runs once that thread exits (see [`Identity::pidfd_thread`]).
///
/// # Safety
///
/// As for [`watch_scoped`].
pub(crate) unsafe fn watch_thread_scoped<'a>(
    id: Identity,
    on_exit: Arc<dyn Fn() + Send + Sync + 'a>,
) -> Outcome {
    // SAFETY: as in `watch_scoped`.
    let on_exit: OnExit =
        unsafe { std::mem::transmute::<Arc<dyn Fn() + Send + Sync + 'a>, OnExit>(on_exit) };
    register(id.pidfd_thread(), on_exit)
}

/// Watches the process `id` names: `on_exit` runs on the watcher thread
/// once it exits.
pub(crate) fn watch(id: Identity, on_exit: OnExit) -> Outcome {
    register(id.pidfd(), on_exit)
}

/// Adds a confirmed pidfd to the watcher.
fn register(found: Watch, on_exit: OnExit) -> Outcome {
    let fd = match found {
        Watch::Alive(fd) => fd,
        Watch::Dead => return Outcome::Dead,
        Watch::Unknown => return Outcome::Unwatchable,
    };
    let Ok(watcher) = watcher() else {
        return Outcome::Unwatchable;
    };
    let token = watcher.next.fetch_add(1, Ordering::Relaxed);
    let mut entries = watcher.entries.lock().unwrap_or_else(|p| p.into_inner());
    if poll::epoll_add(&watcher.epoll, &fd, token, false).is_err() {
        return Outcome::Unwatchable;
    }
    entries.insert(token, Entry { pidfd: fd, on_exit });
    drop(entries);
    Outcome::Watching(Watched { watcher, token })
}
