//! The receiver's watch over its senders (their pidfds, so a killed
//! sender is noticed at once) and the channel's side of a
//! [`WaitSet`](crate::waitset::WaitSet).

use std::sync::atomic::Ordering::{Acquire, Relaxed, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};

use super::shared::Shared;
use crate::process::watch::{self, Outcome, Watched};
use crate::sys::futex::{self, Wake};
use crate::sys::proc::Identity;
use crate::sys::time::Deadline;

// How long a helper sleeps before it looks at the segment's size (a cut
// wakes no futex): the same slice as the semaphore's and queue's.
use crate::sync::semaphore::raw::POLL_SLICE;

/// No generation watched yet.
const NONE: u64 = u64::MAX;

/// The pidfds of a receiver's senders, watched by the process's watcher
/// thread ([`process::watch`](crate::process::watch)); shared by the
/// [`Receiver`](super::Receiver) and its WaitSet helper.
pub(crate) struct SenderWatch {
    shared: Arc<Shared>,
    /// Set when a watched sender exits (or is found gone when watched):
    /// the receiver's next look at the senders is the full one.
    dead_seen: Arc<AtomicBool>,
    /// The senders' generation whose pidfds are watched ([`NONE`]: none).
    generation: AtomicU64,
    watching: Mutex<Vec<Watched>>,
}

impl SenderWatch {
    pub(crate) fn new(shared: Arc<Shared>) -> Arc<SenderWatch> {
        Arc::new(SenderWatch {
            shared,
            dead_seen: Arc::new(AtomicBool::new(false)),
            generation: AtomicU64::new(NONE),
            watching: Mutex::new(Vec::new()),
        })
    }

    /// Whether a sender was reported dead since the last look, clearing
    /// the report. One load while none was.
    #[inline]
    pub(crate) fn take_dead_seen(&self) -> bool {
        self.dead_seen.load(Relaxed) && self.dead_seen.swap(false, SeqCst)
    }

    /// Whether a sender was reported dead (not cleared).
    pub(crate) fn dead_seen(&self) -> bool {
        self.dead_seen.load(SeqCst)
    }

    /// Before a sleep: makes sure the pidfd of every attached sender is
    /// watched, so that a sender's death kicks the receiver's futex word at
    /// once instead of waiting for the next [`SLICE`](super::wait::SLICE)'s
    /// look through `/proc`. Registers only when the senders' generation
    /// changed since the last registration: one load otherwise.
    ///
    /// The kick sets `dead_seen`, then bumps the futex word (a `SeqCst`
    /// read-modify-write) and wakes: a sleeper either went to sleep on the
    /// old value (and is woken, or its `FUTEX_WAIT` finds the word
    /// changed) or prepared after the bump, in which case its
    /// `prepare_rx_wait` read the bump and its look sees the flag.
    pub(crate) fn watch_senders(&self) {
        let header = self.shared.header();
        let generation = header.peers.0.generation.load(Acquire);
        if self.generation.load(Relaxed) == generation {
            return;
        }
        let mut watching = self.watching.lock().unwrap_or_else(|p| p.into_inner());
        if self.generation.load(Relaxed) == generation {
            return;
        }
        // The old registrations go first: a sender that stayed is
        // registered again below (a pidfd each; cheap next to a sleep).
        watching.clear();
        for slot in &header.senders {
            // Untrusted: a garbage identity names a process that is not
            // there (or another one), which `watch` reports as dead; the
            // full look then judges it as it always did.
            let id = slot.0.id.load(Acquire);
            if id == 0 {
                continue;
            }
            let (shared, flag) = (self.shared.clone(), self.dead_seen.clone());
            let on_exit: watch::OnExit = Arc::new(move || {
                flag.store(true, SeqCst);
                kick(&shared.header().control.wait.rx.0.word);
            });
            match watch::watch(Identity::from_raw(id), on_exit) {
                Outcome::Watching(w) => watching.push(w),
                Outcome::Dead => self.dead_seen.store(true, SeqCst),
                Outcome::Unwatchable => {}
            }
        }
        self.generation.store(generation, Relaxed);
    }

    /// Whether a receive may find something now, without receiving
    /// (read-only: the receiver's head is its own): a record at the head,
    /// a sender reported dead, or no sender left. A hint.
    pub(crate) fn ready(&self) -> bool {
        if self.dead_seen() {
            return true;
        }
        let Ok(ring) = self.shared.looking() else {
            return true;
        };
        if ring.head_ready() {
            return true;
        }
        let peers = &self.shared.header().peers.0;
        peers.senders_ever.load(Acquire) != 0 && !self.shared.any_sender_alive(false, ring.head())
    }

    /// A [`WaitSet`](crate::waitset::WaitSet) helper's wait: announces a
    /// sleeper on the receiver's futex word, looks ([`ready`](Self::ready)),
    /// and sleeps until a sender's publication, a sender's death or
    /// detach wakes it (`true`), or `stop` is set and
    /// [`poll_interrupt`](Self::poll_interrupt) called (`false`). The same
    /// protocol as a blocked receive's, so the senders' fast path is
    /// unchanged: they wake only when the flag is set.
    pub(crate) fn poll_wait(&self, stop: &AtomicBool) -> bool {
        helper_wait(
            &self.shared,
            &self.shared.header().control.wait.rx.0.word,
            stop,
            || self.watch_senders(),
            |ring| ring.prepare_rx_wait(),
            || self.ready(),
        )
    }

    /// Ends a [`poll_wait`](Self::poll_wait) whose `stop` was set.
    pub(crate) fn poll_interrupt(&self) {
        kick(&self.shared.header().control.wait.rx.0.word);
    }
}

/// Bumps a futex word of the channel's and wakes its sleepers (what
/// [`Ring::kick`](super::ring::Ring::kick) does, for a helper that has the
/// segment but no ring view): a sleeper re-checks.
pub(super) fn kick(word: &crate::primitive::AtomicU32) {
    word.fetch_add(2, SeqCst);
    futex::wake_all(word);
}

/// The wait of a helper thread (a WaitSet's, or an async end's) on one of
/// the channel's futex words: `watch` (arm the pidfd watch), announce a
/// sleeper with `prepare` (the protocol a blocked call uses, so the
/// other side's fast path is unchanged), look (`ready`: `true` at once),
/// then sleep until woken (`true`) or until `stop` is set and the word
/// bumped (`false`). It sleeps in slices: a cut wakes no futex, and a
/// helper asleep on a page the cut took could not be interrupted (its
/// owner could not be dropped), so between slices it looks at the
/// segment's size (`fstat`) and reports a cut as ready (the owner's call
/// then says `Truncated`).
pub(super) fn helper_wait(
    shared: &Arc<Shared>,
    word: &crate::primitive::AtomicU32,
    stop: &AtomicBool,
    watch: impl Fn(),
    prepare: impl Fn(&super::ring::Ring<super::shared::ShmMemory>) -> u32,
    ready: impl Fn() -> bool,
) -> bool {
    loop {
        watch();
        let v = match shared.looking() {
            Ok(ring) => prepare(&ring),
            Err(_) => return true,
        };
        if ready() {
            return true;
        }
        if stop.load(SeqCst) {
            return false;
        }
        match futex::wait(word, v, Deadline::after(POLL_SLICE)) {
            Wake::Fault => return true,
            Wake::TimedOut if shared.check(true).is_err() => return true,
            _ => {}
        }
    }
}
