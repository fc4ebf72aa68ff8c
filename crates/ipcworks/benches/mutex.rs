//! Mutex speed, each beside its baseline in the same run:
//!
//! - uncontended lock + unlock: `ipcworks::sync::Mutex` (in a memfd
//!   segment), `RawMutex` on a heap `MutexState`, `std::sync::Mutex`;
//! - contended: two threads (divan's `threads = 2`) locking, incrementing
//!   and unlocking one mutex, so most unlocks hand the lock to a waiter;
//!   beside `std::sync::Mutex` and a bare futex lock (Drepper's "mutex 3":
//!   CAS 0→1, else swap 2 and `futex_wait`; unlock swaps 0 and wakes one if
//!   it was 2), the floor any futex mutex pays.
//!
//! Run: `cargo bench -p ipcworks --bench mutex`.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU32, Ordering};

use divan::Bencher;
use ipcworks::sync::{Mutex, MutexState, RawMutex};
use ipcworks::sys::futex;

fn main() {
    divan::main();
}

mod uncontended {
    use super::*;

    #[divan::bench]
    fn ipcworks_mutex(b: Bencher) {
        let m = Mutex::anonymous(0u64).unwrap();
        b.bench_local(|| {
            *m.lock().unwrap() += 1;
        });
    }

    #[divan::bench]
    fn ipcworks_raw_mutex(b: Bencher) {
        let st = MutexState::new();
        let raw = RawMutex::new(&st);
        b.bench_local(|| {
            let _ = divan::black_box(raw.lock());
            raw.unlock();
        });
    }

    #[divan::bench]
    fn std_mutex(b: Bencher) {
        let m = std::sync::Mutex::new(0u64);
        b.bench_local(|| {
            *m.lock().unwrap() += 1;
        });
    }

    #[divan::bench]
    fn futex_lock(b: Bencher) {
        let l = FutexLock(AtomicU32::new(0));
        b.bench_local(|| {
            l.lock();
            l.unlock();
        });
    }
}

mod contended_2_threads {
    use super::*;

    static OURS: LazyLock<Mutex<u64>> = LazyLock::new(|| Mutex::anonymous(0).unwrap());
    static STD: std::sync::Mutex<u64> = std::sync::Mutex::new(0);
    static FUTEX: FutexLock = FutexLock(AtomicU32::new(0));
    static FUTEX_COUNT: AtomicU32 = AtomicU32::new(0);

    #[divan::bench(threads = [2], sample_size = 2000)]
    fn ipcworks_mutex(b: Bencher) {
        // Made before timing starts (divan sizes samples by the first run).
        let m = LazyLock::force(&OURS);
        b.bench(|| {
            *m.lock().unwrap() += 1;
        });
    }

    #[divan::bench(threads = [2], sample_size = 2000)]
    fn std_mutex(b: Bencher) {
        b.bench(|| {
            *STD.lock().unwrap() += 1;
        });
    }

    #[divan::bench(threads = [2], sample_size = 2000)]
    fn futex_lock(b: Bencher) {
        b.bench(|| {
            FUTEX.lock();
            FUTEX_COUNT.fetch_add(1, Ordering::Relaxed);
            FUTEX.unlock();
        });
    }
}

/// The bare futex lock: 0 unlocked, 1 locked, 2 locked with waiters.
struct FutexLock(AtomicU32);

impl FutexLock {
    fn lock(&self) {
        if self
            .0
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
        while self.0.swap(2, Ordering::Acquire) != 0 {
            futex::wait(&self.0, 2, None);
        }
    }

    fn unlock(&self) {
        if self.0.swap(0, Ordering::Release) == 2 {
            futex::wake(&self.0, 1);
        }
    }
}
