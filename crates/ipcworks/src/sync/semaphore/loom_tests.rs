//! Model checks of the semaphore protocol under loom (threads stand in for
//! processes; a "kill" stops a thread right after a protocol step and marks
//! it dead for the liveness oracle).
//!
//! Run: `LOOM_MAX_PREEMPTIONS=2 RUSTFLAGS="--cfg loom" cargo test -p ipcworks --lib --release sync::semaphore`

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicU32 as LAtomicU32};

use super::*;
use crate::primitive::fence;
use crate::sync::semaphore::robust::Pool;

struct Shared {
    st: SemaphoreState,
    slots: Vec<AtomicU64>,
    co: Vec<AtomicU64>,
    alive: Vec<AtomicBool>,
    inside: LAtomicU32,
    /// How many times a post woke every sleeper (`Env::wake_all`).
    woke_all: LAtomicU32,
}

impl Shared {
    fn new(value: u32, slots: usize) -> Arc<Self> {
        Arc::new(Shared {
            st: SemaphoreState::new(value),
            slots: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            co: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            alive: (0..4).map(|_| AtomicBool::new(true)).collect(),
            inside: LAtomicU32::new(0),
            woke_all: LAtomicU32::new(0),
        })
    }
    fn pool(&self) -> Pool<'_> {
        Pool {
            st: &self.st,
            slots: &self.slots,
            co: &self.co,
        }
    }
}

struct LoomEnv {
    id: u64,
    shared: Arc<Shared>,
    crash_at: Option<Step>,
}

impl Env for LoomEnv {
    fn me(&self) -> u64 {
        (self.id << 32) | 7
    }
    fn is_alive(&self, ident: u64) -> bool {
        let id = (ident >> 32) as usize;
        id < 4 && self.shared.alive[id].load(SeqCst)
    }
    fn sleep(&self, _w: &AtomicU32, _e: u32, _d: Deadline, _watch: bool) -> bool {
        loom::thread::yield_now();
        true
    }
    fn wake(&self, _w: &AtomicU32) {}
    fn wake_all(&self, _w: &AtomicU32) {
        self.shared.woke_all.fetch_add(1, SeqCst);
    }
    fn pause(&self, _round: u32) {
        loom::thread::yield_now();
    }
    fn scan_due(&self, _last: &mut Option<std::time::Instant>) -> bool {
        true
    }
    fn crash(&self, at: Step) -> bool {
        if self.crash_at == Some(at) {
            self.shared.alive[self.id as usize].store(false, SeqCst);
            true
        } else {
            false
        }
    }
}

fn env(id: u64, shared: &Arc<Shared>, crash_at: Option<Step>) -> LoomEnv {
    LoomEnv {
        id,
        shared: shared.clone(),
        crash_at,
    }
}

#[test]
fn post_wakes_a_waiter() {
    loom::model(|| {
        let sh = Shared::new(0, 0);
        let sh2 = sh.clone();
        let t = loom::thread::spawn(move || {
            let e = env(1, &sh2, None);
            wait(&sh2.st, &e, Deadline::Never, &|| false, || Ok(())).unwrap();
        });
        post(&sh.st, &env(2, &sh, None)).unwrap();
        t.join().unwrap();
        assert_eq!(sh.st.value().unwrap(), 0);
    });
}

#[test]
fn acquire_release_is_exclusive_for_one_permit() {
    loom::model(|| {
        let sh = Shared::new(1, 2);
        let threads: Vec<_> = (1..=2)
            .map(|id| {
                let sh = sh.clone();
                loom::thread::spawn(move || {
                    let e = env(id, &sh, None);
                    let s = sh.pool().acquire(&e, Deadline::Never, false).unwrap();
                    assert_eq!(sh.inside.fetch_add(1, SeqCst), 0, "two holders");
                    sh.inside.fetch_sub(1, SeqCst);
                    sh.pool().release(&e, s).unwrap();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(sh.st.value().unwrap(), 1);
        assert!(sh.slots.iter().all(|s| s.load(SeqCst) == 0));
    });
}

/// Thread 1 is "killed" right after `step` (or while holding, for None);
/// thread 2 acquires and releases meanwhile. Afterwards a third party's
/// reclaim leaves exactly the initial value and an empty table.
fn crash_case(step: Option<Step>) {
    crash_case_with(step, 1);
}

/// As [`crash_case`], with `others` surviving threads (1 or 2) racing to
/// repair what the victim left.
fn crash_case_with(step: Option<Step>, others: u64) {
    let mut model = loom::model::Builder::new();
    // Waiting threads spin (with yields) and rescan the table each round;
    // with two repairers a path takes more branches than loom's default.
    model.max_branches = 100_000;
    if others > 1 {
        // Three threads plus the final reclaim: one preemption keeps the
        // search to seconds.
        model.preemption_bound = Some(1);
    }
    model.check(move || {
        let sh = Shared::new(1, 2);
        let sh1 = sh.clone();
        let victim = loom::thread::spawn(move || {
            let e = env(1, &sh1, step);
            let s = sh1.pool().acquire(&e, Deadline::Never, false).unwrap();
            if !sh1.alive[1].load(SeqCst) {
                return;
            }
            match step {
                None => sh1.alive[1].store(false, SeqCst),
                Some(_) => sh1.pool().release(&e, s).unwrap(),
            }
        });
        let survivors: Vec<_> = (0..others)
            .map(|i| {
                let sh2 = sh.clone();
                loom::thread::spawn(move || {
                    let e = env(2 + i, &sh2, None);
                    let s = sh2.pool().acquire(&e, Deadline::Never, false).unwrap();
                    sh2.pool().release(&e, s).unwrap();
                })
            })
            .collect();
        victim.join().unwrap();
        for t in survivors {
            t.join().unwrap();
        }
        sh.pool().reclaim(&env(0, &sh, None)).unwrap();
        assert_eq!(sh.st.value().unwrap(), 1, "leaked or duplicated a permit");
        assert!(sh.slots.iter().all(|s| s.load(SeqCst) == 0));
        assert_eq!(sh.st.word.load(SeqCst) >> 32, 0, "claim left over");
    });
}

#[test]
fn killed_after_reserve() {
    crash_case(Some(Step::Reserved));
}

#[test]
fn killed_after_claim() {
    crash_case(Some(Step::Claimed));
}

#[test]
fn killed_after_record() {
    crash_case(Some(Step::Recorded));
}

#[test]
fn killed_while_holding() {
    crash_case(None);
}

#[test]
fn killed_in_release_step_1() {
    crash_case(Some(Step::Released1));
}

#[test]
fn killed_in_release_step_2() {
    crash_case(Some(Step::Released2));
}

#[test]
fn killed_in_release_step_3() {
    crash_case(Some(Step::Released3));
}

#[test]
fn killed_after_claim_two_repairers() {
    crash_case_with(Some(Step::Claimed), 2);
}

#[test]
fn killed_in_release_step_1_two_repairers() {
    crash_case_with(Some(Step::Released1), 2);
}

/// Co-holders (see "Co-holders" in raw.rs): owner 1 holds the only permit
/// and starts a child (3) that records itself as co-holder, then runs only
/// if its owner still lives (`getppid`); the owner is killed at any moment,
/// and a reclaimer (2) tries to take the permit meanwhile. Whatever the
/// interleaving, the reclaimer never gets the permit while the child runs.
#[test]
fn a_running_co_holder_keeps_a_dead_owners_permit() {
    loom::model(|| {
        let sh = Shared::new(1, 2);
        let s = sh
            .pool()
            .acquire(&env(1, &sh, None), Deadline::Never, false)
            .unwrap();
        let running = Arc::new(AtomicBool::new(false));
        let (sh3, run3) = (sh.clone(), running.clone());
        let child = loom::thread::spawn(move || {
            sh3.co[s].store(env(3, &sh3, None).me(), SeqCst);
            fence(SeqCst); // as the child does before getppid
            if sh3.alive[1].load(SeqCst) {
                run3.store(true, SeqCst); // runs COMMAND, never ends here
            } else {
                sh3.alive[3].store(false, SeqCst); // parent gone: exits
            }
        });
        let sh1 = sh.clone();
        let killer = loom::thread::spawn(move || sh1.alive[1].store(false, SeqCst));
        let got = sh.pool().acquire(&env(2, &sh, None), Deadline::Never, true);
        child.join().unwrap();
        killer.join().unwrap();
        match got {
            Ok(_) => assert!(
                !running.load(SeqCst),
                "the reclaimer took the permit of a running co-holder"
            ),
            Err(e) => assert!(matches!(e, Error::WouldBlock), "{e:?}"),
        }
    });
}

/// A poller (a WaitSet's helper) registers while a post publishes: either
/// its look sees the permit, or the post saw it registered, moved `seq`
/// away from the value the poller read (so its `FUTEX_WAIT` returns at
/// once) and woke every sleeper rather than one (so a waiter asleep beside
/// the poller is not left sleeping while the poller took its wake-up).
#[test]
fn a_poller_registering_while_a_post_publishes_is_woken_with_the_waiters() {
    loom::model(|| {
        let sh = Shared::new(0, 0);
        let sh2 = sh.clone();
        let poller = loom::thread::spawn(move || {
            let seen = poll_arm(&sh2.st);
            (seen, poll_ready(&sh2.st))
        });
        post(&sh.st, &env(2, &sh, None)).unwrap();
        let (seen, ready) = poller.join().unwrap();
        if !ready {
            assert_ne!(
                sh.st.seq.load(SeqCst),
                seen,
                "the poller would sleep through the post"
            );
            assert_eq!(
                sh.woke_all.load(SeqCst),
                1,
                "a post woke one sleeper while a poller was registered"
            );
        }
        poll_disarm(&sh.st);
        assert_eq!(sh.st.waiters(), 0);
        assert_eq!(sh.st.value().unwrap(), 1, "the poller took nothing");
    });
}
