//! `ipcworks demo race`: a shared counter incremented without a lock loses
//! updates; with the robust mutex it is exact; under a counting semaphore
//! of N, at most N are ever inside at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Context;
use ipcworks::shm::Segment;
use ipcworks::sync::{Mutex, Semaphore};
use ipcworks::sys::proc::{self, Forked};

use super::step;

const WORKERS: u64 = 4;
const ROUNDS: u64 = 200_000;

/// `counter = counter + 1` as two steps (read, then write), the way a
/// compiler turns `x += 1` into a load and a store. Atomics keep each step
/// well-defined in Rust; the race between the steps is the point.
fn racy_increment(c: &AtomicU64) {
    let v = c.load(Ordering::Relaxed);
    std::hint::spin_loop();
    c.store(v + 1, Ordering::Relaxed);
}

fn counter_in(seg: &Segment) -> &AtomicU64 {
    // SAFETY: the segment is page-aligned and at least 8 bytes long, and
    // outlives the borrow; other processes write it only through atomics.
    unsafe { &*(seg.as_ptr() as *const AtomicU64) }
}

fn report(what: &str, got: u64, started: Instant) {
    let want = WORKERS * ROUNDS;
    let verdict = if got == want {
        "exact".to_string()
    } else {
        format!(
            "LOST {} updates ({:.1}%)",
            want - got,
            (want - got) as f64 * 100.0 / want as f64
        )
    };
    println!(
        "    {what}: counter = {got} of {want} expected — {verdict} [{:.0} ms]",
        started.elapsed().as_secs_f64() * 1e3
    );
}

/// Runs `work` in `WORKERS` forked children, started together, and waits
/// for them all.
fn in_processes(work: impl Fn()) -> anyhow::Result<()> {
    let gate = Segment::anonymous(4096).context("creating the start gate")?;
    let ready = counter_in(&gate);
    let mut children = Vec::new();
    for _ in 0..WORKERS {
        // SAFETY: the demo runs single-threaded (threads of earlier steps
        // were joined); the child only runs `work` on shared memory and
        // leaves with _exit.
        match unsafe { proc::fork() }.context("fork")? {
            Forked::Child => {
                let _ = proc::die_with_parent();
                ready.fetch_add(1, Ordering::SeqCst);
                while ready.load(Ordering::SeqCst) < WORKERS {
                    std::hint::spin_loop();
                }
                work();
                proc::exit_now(0);
            }
            Forked::Parent(pid) => children.push(pid),
        }
    }
    for pid in children {
        proc::wait_child(pid).context("waitpid")?;
    }
    Ok(())
}

pub fn run() -> anyhow::Result<()> {
    println!(
        "{WORKERS} workers each add 1 to a shared counter {ROUNDS} times; the right answer is {}.",
        WORKERS * ROUNDS
    );

    step(
        1,
        "Threads, no lock: read the counter, then write it back plus one",
    );
    let shared = AtomicU64::new(0);
    let t = Instant::now();
    let start = std::sync::Barrier::new(WORKERS as usize);
    std::thread::scope(|s| {
        for _ in 0..WORKERS {
            s.spawn(|| {
                start.wait(); // all begin together, so they overlap
                (0..ROUNDS).for_each(|_| racy_increment(&shared))
            });
        }
    });
    report("threads, no lock", shared.load(Ordering::SeqCst), t);
    println!("    Two threads read the same value, both write value+1: one update is lost.");

    step(2, "Threads, with the mutex around the read and the write");
    let m = Mutex::anonymous(0u64).context("creating the mutex")?;
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..WORKERS {
            s.spawn(|| {
                for _ in 0..ROUNDS {
                    let mut g = m.lock().expect("nobody dies in this step");
                    g.update(|n| *n += 1).expect("nobody truncates it");
                }
            });
        }
    });
    report(
        "threads, mutex",
        m.lock().map_err(ipcworks::Error::from)?.get()?,
        t,
    );

    step(3, "Processes sharing a segment, no lock");
    let seg = Segment::anonymous(4096).context("creating the shared segment")?;
    let t = Instant::now();
    in_processes(|| (0..ROUNDS).for_each(|_| racy_increment(counter_in(&seg))))?;
    report(
        "processes, no lock",
        counter_in(&seg).load(Ordering::SeqCst),
        t,
    );

    step(
        4,
        "Processes, with the same robust mutex living in shared memory",
    );
    let m = Mutex::anonymous(0u64).context("creating the mutex")?;
    let t = Instant::now();
    in_processes(|| {
        for _ in 0..ROUNDS {
            let mut g = m.lock().expect("nobody dies in this step");
            g.update(|n| *n += 1).expect("nobody truncates it");
        }
    })?;
    report(
        "processes, mutex",
        m.lock().map_err(ipcworks::Error::from)?.get()?,
        t,
    );
    println!(
        "    The lock makes read-and-write one indivisible step; it costs time, not correctness."
    );

    step(
        5,
        "A counting semaphore of 2: at most two processes inside at once",
    );
    let sem = Semaphore::anonymous(2).context("creating the semaphore")?;
    let gauge = Segment::anonymous(4096).context("creating the gauge")?;
    let t = Instant::now();
    in_processes(|| {
        // Word 0: how many are inside now; word 1: the most ever seen.
        let (inside, most) = (counter_in(&gauge), word1(&gauge));
        for _ in 0..2_000 {
            let permit = sem.acquire().expect("nobody dies in this step"); // P
            let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            std::hint::spin_loop();
            inside.fetch_sub(1, Ordering::SeqCst);
            drop(permit); // V
        }
    })?;
    println!(
        "    {WORKERS} processes x 2000 turns: at most {} inside at once (the semaphore's value is 2) [{:.0} ms]",
        word1(&gauge).load(Ordering::SeqCst),
        t.elapsed().as_secs_f64() * 1e3
    );
    println!("    P (wait) takes a permit or sleeps until one is free; V (post) gives it back.");
    Ok(())
}

fn word1(seg: &Segment) -> &AtomicU64 {
    // SAFETY: as counter_in: in bounds (4096-byte segment), aligned,
    // outlives the borrow, written by others only through atomics.
    unsafe { &*(seg.as_ptr() as *const AtomicU64).add(1) }
}
