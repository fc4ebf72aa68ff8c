//! Loom models of the queue's wake-up protocol (`wake.rs`): a WaitSet's
//! helper (a *poller*) registering while a commit publishes, alone and
//! with a blocked receiver asleep beside it. Threads stand in for
//! processes; a slot word stands in for the slot table (the commit is the
//! same `SeqCst` compare-and-swap, the look the same relaxed load); a
//! sleep is a yield, and the environment counts what the commit woke.
//!
//! Run: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p ipcworks
//! --lib --release queue::loom_wake`.

use std::sync::atomic::Ordering::{Relaxed, SeqCst};

use loom::sync::Arc;
use loom::sync::atomic::AtomicU32 as Counter;

use super::wake;
use crate::primitive::{AtomicU32, AtomicU64};
use crate::sync::SemaphoreState;
use crate::sync::semaphore::raw::{self, Env};
use crate::sys::time::Deadline;

struct Shared {
    /// The receive side's sleepers register (`recv_sleepers`).
    sleepers: AtomicU32,
    /// The receive side's wake-up semaphore (`filled`).
    sem: SemaphoreState,
    /// One slot's word: 0 free, 1 a message committed.
    slot: AtomicU64,
    /// `FUTEX_WAKE` of one sleeper, and of all, by the commit.
    woke_one: Counter,
    woke_all: Counter,
}

fn shared() -> Arc<Shared> {
    Arc::new(Shared {
        sleepers: AtomicU32::new(0),
        sem: SemaphoreState::new(0),
        slot: AtomicU64::new(0),
        woke_one: Counter::new(0),
        woke_all: Counter::new(0),
    })
}

impl Shared {
    /// A send's commit, then its wake-up, as `ops::Queue::send_at`.
    fn commit(&self) {
        assert!(self.slot.compare_exchange(0, 1, SeqCst, Relaxed).is_ok());
        wake::wake(&self.sleepers, &self.sem, self);
    }

    /// The non-consuming look (`Queue::anything`: relaxed loads).
    fn look(&self) -> bool {
        self.slot.load(Relaxed) == 1
    }
}

impl Env for Shared {
    fn me(&self) -> u64 {
        1 << 32
    }
    fn is_alive(&self, _ident: u64) -> bool {
        true
    }
    fn sleep(&self, _w: &AtomicU32, _e: u32, _d: Deadline, _watch: bool) -> bool {
        loom::thread::yield_now();
        true
    }
    fn wake(&self, _w: &AtomicU32) {
        self.woke_one.fetch_add(1, SeqCst);
    }
    fn wake_all(&self, _w: &AtomicU32) {
        self.woke_all.fetch_add(1, SeqCst);
    }
    fn pause(&self, _round: u32) {
        loom::thread::yield_now();
    }
    fn scan_due(&self, _last: &mut Option<std::time::Instant>) -> bool {
        false
    }
}

/// The helper's first round, as `wake::poll_wait` makes it: registers as
/// a poller on the semaphore, sets the pollers' bit, reads the futex
/// word, looks. Returns the value it would sleep on and whether it saw
/// the message.
fn poller(sh: Arc<Shared>) -> loom::thread::JoinHandle<(u32, bool)> {
    loom::thread::spawn(move || {
        raw::poll_arm(&sh.sem);
        let seen = wake::poll_prepare(&sh.sleepers, &sh.sem);
        (seen, sh.look())
    })
}

/// The futex word's value now.
fn futex(sh: &Shared) -> u32 {
    raw::futex_word(&sh.sem).load(SeqCst)
}

/// A poller alone registers while a commit publishes: either its look
/// sees the message, or the commit saw it registered and moved the futex
/// word away from the value it read (so its `FUTEX_WAIT` returns at
/// once) and woke every sleeper on it. No permit is posted for it: the
/// poller takes none, and one left over would only wake a later receiver
/// for nothing. (With the old protocol the helper registered as one more
/// sleeper, and the commit posted a permit for it to take.)
#[test]
fn a_poller_alone_is_woken_by_a_commit_and_no_permit_is_posted() {
    loom::model(|| {
        let sh = shared();
        let p = poller(sh.clone());
        sh.commit();
        let (seen, saw) = p.join().unwrap();
        if !saw {
            assert_ne!(
                futex(&sh),
                seen,
                "the poller would sleep through the commit"
            );
            assert!(sh.woke_all.load(SeqCst) >= 1, "the poller was not woken");
        }
        assert_eq!(
            sh.sem.value().unwrap(),
            0,
            "a commit posted a wake-up permit for a poller"
        );
        raw::poll_disarm(&sh.sem);
    });
}

/// A poller registers while a commit publishes, a receiver asleep beside
/// it (registered, looked, P()ing the semaphore): the receiver gets the
/// message or a permit, and whenever the poller may sleep on (its look
/// missed the message) while the receiver needed a wake-up, the commit
/// woke every sleeper — so the kernel cannot give the receiver's wake-up
/// to the poller, which would take it and leave the receiver asleep
/// beside the message. The poller takes nothing. (With the old protocol,
/// a sleeper like the receiver, the helper got one `FUTEX_WAKE(1)`
/// shared with it: this model fails on `woke_all`.)
#[test]
fn a_poller_registering_while_a_commit_publishes_is_woken_with_the_receiver() {
    loom::model(|| {
        let sh = shared();
        let r = {
            let sh = sh.clone();
            loom::thread::spawn(move || {
                wake::register(&sh.sleepers);
                let saw = sh.look();
                if !saw {
                    // Its sleep: until a permit is there (a yield stands in
                    // for the futex, so a permit never posted hangs here,
                    // which loom reports).
                    raw::wait(&sh.sem, &*sh, Deadline::Never, &|| false, || Ok(())).unwrap();
                }
                wake::deregister(&sh.sleepers);
                saw
            })
        };
        let p = poller(sh.clone());
        sh.commit();
        let receiver_saw = r.join().unwrap();
        let (seen, poller_saw) = p.join().unwrap();
        if !poller_saw {
            assert_ne!(
                futex(&sh),
                seen,
                "the poller would sleep through the commit"
            );
            if !receiver_saw {
                assert!(
                    sh.woke_all.load(SeqCst) >= 1,
                    "a commit woke one sleeper ({} wake-ups of one) while a poller was \
                     registered beside an asleep receiver",
                    sh.woke_one.load(SeqCst)
                );
            }
        }
        // The receiver took the permit it was given; at most one left
        // over (posted for it after its own look saw the message).
        let left = sh.sem.value().unwrap();
        assert!(left <= 1, "{left} permits left");
        if !receiver_saw {
            assert_eq!(left, 0, "the receiver slept without taking its permit");
        }
    });
}

/// Two pollers (two processes' WaitSets) register while a commit
/// publishes: the commit rings the pollers' bit once for both — each
/// either sees the message, or will not sleep through the commit and was
/// woken with every sleeper. No permit is posted.
#[test]
fn two_pollers_registering_while_a_commit_publishes_are_both_woken() {
    loom::model(|| {
        let sh = shared();
        let p1 = poller(sh.clone());
        let p2 = poller(sh.clone());
        sh.commit();
        for p in [p1, p2] {
            let (seen, saw) = p.join().unwrap();
            if !saw {
                assert_ne!(futex(&sh), seen, "a poller would sleep through the commit");
                assert!(sh.woke_all.load(SeqCst) >= 1, "a poller was not woken");
            }
        }
        assert_eq!(
            sh.sem.value().unwrap(),
            0,
            "a permit was posted for pollers"
        );
    });
}

/// A poller that stopped (or was killed) after it registered costs the
/// commits after it one wake-up in all, not one each: the first clears
/// the bit, the next finds the register zero (the senders' fast path).
/// (A count of pollers, as first written, kept a dead one registered and
/// made every later commit wake.)
#[test]
fn a_gone_poller_costs_one_wake_up_not_one_per_commit() {
    loom::model(|| {
        let sh = shared();
        let p = poller(sh.clone());
        let (_, saw) = p.join().unwrap();
        assert!(!saw);
        // The poller's process dies here, registered.
        sh.commit();
        assert_eq!(sh.woke_all.load(SeqCst), 1);
        assert_eq!(sh.sleepers.load(SeqCst), 0, "the bit was not cleared");
        sh.slot.store(0, SeqCst); // taken by a try_recv
        sh.commit();
        assert_eq!(sh.woke_all.load(SeqCst), 1, "a second commit woke again");
    });
}
