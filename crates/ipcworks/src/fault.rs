//! Fault injection for tests: a hook that runs at a named point inside a
//! race window, so a test can act there deterministically (swap a file,
//! run a second binder) instead of hoping a scheduler does.
//!
//! Hidden from the docs and not part of the API. A hook is set per thread
//! and taken when it fires (it runs once), so production code pays one
//! thread-local read at each point and nothing else.

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
