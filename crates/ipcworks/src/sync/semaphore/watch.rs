//! A sleeping `acquire`'s watch over the permits' holders: their pidfds,
//! so that a holder killed with its permit gives it back at once instead
//! of at the next 100 ms scan of the holder table.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Duration;

use super::raw::{self, FREE, IDENT_MASK, STATE_SHIFT, SemaphoreState};
use crate::process::watch::{self, Outcome, Watched};
use crate::sys::proc::Identity;
use crate::sys::time::Deadline;

/// How long a waiter sleeps on one set of holders before it watches them:
/// permits handed on quicker than this pay nothing for the watch.
const WATCH_AFTER: Duration = Duration::from_millis(1);

#[derive(Default)]
struct State {
    /// The holders (process identities) last seen in the table.
    idents: Vec<u64>,
    /// When to watch them.
    due: Option<Deadline>,
    /// Their registrations, once watched.
    regs: Option<Vec<Watched>>,
    /// Set when a watched holder exits (made at the first registration).
    dead: Option<Arc<AtomicBool>>,
}

/// The holders' watch of one blocking call (see the module docs). Made
/// with every [`Watching`](super::named) environment; allocates nothing
/// until a waiter has slept [`WATCH_AFTER`] on the same holders.
pub(super) struct HolderWatch<'a> {
    st: &'a SemaphoreState,
    slots: &'a [AtomicU64],
    state: RefCell<State>,
}

impl<'a> HolderWatch<'a> {
    pub(super) fn new(st: &'a SemaphoreState, slots: &'a [AtomicU64]) -> Self {
        HolderWatch {
            st,
            slots,
            state: RefCell::new(State::default()),
        }
    }

    /// Before a sleep while holders are recorded: watches the holders once
    /// the waiter has slept [`WATCH_AFTER`] on them, and returns how long
    /// the sleep may last (until then; [`Deadline::Now`] when one is found
    /// gone already).
    pub(super) fn before_sleep(&self) -> Deadline {
        // Untrusted words: a garbage identity names a process that is not
        // there (or another one): `watch` reports it dead, and the scan it
        // triggers judges it as it always did.
        let mut idents: Vec<u64> = self
            .slots
            .iter()
            .map(|s| s.load(SeqCst))
            .filter(|&w| w != FREE)
            .map(|w| w & IDENT_MASK)
            .collect();
        idents.sort_unstable();
        idents.dedup();
        let mut s = self.state.borrow_mut();
        if s.idents != idents {
            s.idents = idents;
            s.due = Some(Deadline::after(WATCH_AFTER));
            s.regs = None;
        }
        if s.regs.is_some() {
            return Deadline::Never;
        }
        let due = s.due.unwrap_or(Deadline::Now);
        if !due.expired() {
            return due;
        }
        let dead = s
            .dead
            .get_or_insert_with(|| Arc::new(AtomicBool::new(false)))
            .clone();
        let mut regs = Vec::new();
        let mut gone = false;
        for &id in &s.idents {
            let (st, flag) = (self.st, dead.clone());
            let on_exit: Arc<dyn Fn() + Send + Sync + 'a> = Arc::new(move || {
                flag.store(true, SeqCst);
                raw::interrupt(st);
            });
            // SAFETY: the registration is kept in `self.state`, dropped
            // with this `HolderWatch`, which borrows `st` for 'a (a
            // private type made only by `Semaphore::env`, never leaked).
            match unsafe { watch::watch_scoped(Identity::from_raw(id), on_exit) } {
                Outcome::Watching(w) => regs.push(w),
                Outcome::Dead => gone = true,
                Outcome::Unwatchable => {}
            }
        }
        s.regs = Some(regs);
        if gone {
            dead.store(true, SeqCst);
            return Deadline::Now;
        }
        Deadline::Never
    }

    /// Whether a watched holder exited since the last call (the scan for
    /// dead holders is due at once).
    pub(super) fn take_dead(&self) -> bool {
        let s = self.state.borrow();
        s.dead.as_ref().is_some_and(|d| d.swap(false, SeqCst))
    }
}

// The slot word's state bits (see `raw`): FREE is 0 whatever the owner.
const _: () = assert!(FREE == 0 && STATE_SHIFT == 62);
