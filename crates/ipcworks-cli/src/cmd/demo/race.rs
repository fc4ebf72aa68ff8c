//! `ipcworks demo race`: a shared counter incremented without a lock loses
//! updates; with the robust mutex it is exact; under a counting semaphore
//! of N, at most N are ever inside at once.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Context;
use ipcworks::shm::Segment;
use ipcworks::sync::{Mutex, Semaphore};

use super::{child, step};

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

/// Word 0 of a segment made here (4096 bytes: always there).
fn counter_in(seg: &Segment) -> &AtomicU64 {
    seg.atomic_u64(0).expect("a segment has a first word")
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

/// Runs the worker `role` in `WORKERS` child processes, started together,
/// each handed a start gate and `fds`, and waits for them all.
fn in_processes(role: &str, fds: &[BorrowedFd<'_>]) -> anyhow::Result<()> {
    let gate = Segment::anonymous(4096).context("creating the start gate")?;
    let mut handed = vec![gate.as_fd()];
    handed.extend_from_slice(fds);
    let mut children = Vec::new();
    for _ in 0..WORKERS {
        children.push(child::start("race", role, &[], &handed)?);
    }
    for c in children {
        let status = c.wait()?;
        anyhow::ensure!(status.success(), "a worker failed: {status}");
    }
    Ok(())
}

/// A worker of steps 3 to 5: waits at the gate until all have arrived
/// (so they overlap), then does its part on the objects handed over.
pub(super) fn child(role: &str, _args: &[String]) -> anyhow::Result<()> {
    let mut fds = child::handed_fds(match role {
        "semaphore" => 3,
        _ => 2,
    })?
    .into_iter();
    let mut next = move || fds.next().context("a descriptor is missing");
    let gate = Segment::from_fd(next()?).context("mapping the gate")?;
    let ready = counter_in(&gate);
    ready.fetch_add(1, Ordering::SeqCst);
    while ready.load(Ordering::SeqCst) < WORKERS {
        std::hint::spin_loop();
    }
    match role {
        "no-lock" => {
            let seg = Segment::from_fd(next()?).context("mapping the counter")?;
            (0..ROUNDS).for_each(|_| racy_increment(counter_in(&seg)));
        }
        "mutex" => {
            let m = Mutex::<u64>::from_fd(next()?).context("mapping the mutex")?;
            for _ in 0..ROUNDS {
                let mut g = m.lock().map_err(ipcworks::Error::from)?;
                g.update(|n| *n += 1)?;
            }
        }
        "semaphore" => {
            let sem = Semaphore::from_fd(next()?).context("mapping the semaphore")?;
            let gauge = Segment::from_fd(next()?).context("mapping the gauge")?;
            // Word 0: how many are inside now; word 1: the most ever seen.
            let (inside, most) = (counter_in(&gauge), word1(&gauge));
            for _ in 0..2_000 {
                let permit = sem.acquire()?; // P
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                std::hint::spin_loop();
                inside.fetch_sub(1, Ordering::SeqCst);
                drop(permit); // V
            }
        }
        other => anyhow::bail!("unknown role {other:?}"),
    }
    Ok(())
}

/// The mutex's segment as a descriptor to hand over a socket (the mutex
/// lends none): close-on-exec like every descriptor of ours, so no other
/// child inherits it by accident.
fn mutex_fd(m: &Mutex<u64>) -> anyhow::Result<OwnedFd> {
    let fd = m.inheritable_fd()?;
    rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC).context("fcntl(F_SETFD)")?;
    Ok(fd)
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
    in_processes("no-lock", &[seg.as_fd()])?;
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
    in_processes("mutex", &[mutex_fd(&m)?.as_fd()])?;
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
    in_processes("semaphore", &[sem.as_fd(), gauge.as_fd()])?;
    println!(
        "    {WORKERS} processes x 2000 turns: at most {} inside at once (the semaphore's value is 2) [{:.0} ms]",
        word1(&gauge).load(Ordering::SeqCst),
        t.elapsed().as_secs_f64() * 1e3
    );
    println!("    P (wait) takes a permit or sleeps until one is free; V (post) gives it back.");
    Ok(())
}

/// Word 1 of a segment made here.
fn word1(seg: &Segment) -> &AtomicU64 {
    seg.atomic_u64(1).expect("a segment has a second word")
}
