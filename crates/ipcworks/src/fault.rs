//! Fault injection for tests: a hook that runs at a named point inside a
//! race window, so a test can act there deterministically (swap a file,
//! run a second binder) instead of hoping a scheduler does; and abort
//! points, named by the environment, where a process kills itself
//! (SIGKILL), so a test can stop a real process (a relay) exactly between
//! two steps.
//!
//! Hidden from the docs and not part of the API. A hook is set per thread
//! and taken when it fires (it runs once), so production code pays one
//! thread-local read at each point and nothing else; an abort point, one
//! read of a value parsed once from the environment.

use std::cell::RefCell;

/// The race windows a test can reach into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Point {
    /// A FIFO has been made, its exact mode not yet set.
    FifoBeforeMode,
    /// A socket file at the path was judged stale, not yet replaced.
    StaleSocketBeforeReplace,
    /// A new socket file is in place; its private directory not yet gone.
    SocketPlaced,
}

type Hook = Box<dyn FnOnce()>;

thread_local! {
    static HOOK: RefCell<Option<(Point, Hook)>> = const { RefCell::new(None) };
}

/// Runs `hook` the next time this thread reaches `point` (once).
pub fn on(point: Point, hook: impl FnOnce() + 'static) {
    HOOK.with(|h| *h.borrow_mut() = Some((point, Box::new(hook))));
}

/// Removes this thread's hook, fired or not.
pub fn clear() {
    HOOK.with(|h| *h.borrow_mut() = None);
}

/// Called at `point`: runs this thread's hook if it waits for this point.
pub(crate) fn hit(point: Point) {
    let hook = HOOK.with(|h| {
        let mut h = h.borrow_mut();
        match h.take() {
            Some((p, f)) if p == point => Some(f),
            other => {
                *h = other;
                None
            }
        }
    });
    if let Some(f) = hook {
        f();
    }
}

/// The environment variable that names an abort point:
/// `IPCWORKS_ABORT_AT=NAME:N` makes the process kill itself (SIGKILL) the
/// `N`th time (from 1) it reaches the abort point `NAME` (e.g.
/// `relay-sent:3`).
pub const ABORT_VAR: &str = "IPCWORKS_ABORT_AT";

/// Called at the abort point `name`: kills this process (SIGKILL) when
/// [`ABORT_VAR`] names this point and this is its `N`th hit.
pub(crate) fn abort_point(name: &str) {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    static WANT: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static HITS: AtomicU64 = AtomicU64::new(0);
    let want = WANT.get_or_init(|| {
        let v = std::env::var(ABORT_VAR).ok()?;
        let (point, n) = v.rsplit_once(':')?;
        Some((point.to_string(), n.parse().ok()?))
    });
    if let Some((point, n)) = want
        && point == name
        && HITS.fetch_add(1, Relaxed) + 1 == *n
    {
        crate::sys::proc::kill_self();
    }
}
