//! `ipcworks demo mutex` and `ipcworks demo semaphore`: what happens when
//! the holder of a lock or of a permit is killed (SIGKILL) while holding
//! it — the case ordinary mutexes and POSIX semaphores get wrong.

use std::time::{Duration, Instant};

use anyhow::Context;
use ipcworks::registry::{self, Kind};
use ipcworks::sync::{LockError, Mutex, Semaphore};
use ipcworks::sys::proc::{self, Forked};
use ipcworks::sys::signal::remove_on_terminate;

use super::step;

/// Forks a child that runs `f` and then sleeps until it is killed; returns
/// its pid once `ready` says it is in position.
fn child_that_holds(f: impl FnOnce(), ready: impl Fn() -> bool) -> anyhow::Result<u32> {
    // SAFETY: the demo is single-threaded here; the child only uses
    // shared memory, prints, and sleeps until it is killed.
    match unsafe { proc::fork() }.context("fork")? {
        Forked::Child => {
            let _ = proc::die_with_parent();
            f();
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        Forked::Parent(pid) => {
            let start = Instant::now();
            while !ready() {
                anyhow::ensure!(
                    start.elapsed() < Duration::from_secs(10),
                    "the child never got ready"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(pid)
        }
    }
}

fn kill9(pid: u32) -> anyhow::Result<()> {
    let p = rustix::process::Pid::from_raw(pid as i32).context("bad pid")?;
    rustix::process::kill_process(p, rustix::process::Signal::KILL).context("kill")?;
    proc::wait_child(pid).context("waitpid")?;
    println!("    parent: kill -9 {pid} — it dies holding it, without running any cleanup");
    Ok(())
}

fn on_ctrl_c(seg_names: &[String]) {
    let v: Vec<_> = seg_names
        .iter()
        .flat_map(|n| registry::removals(Kind::Shm, n))
        .collect();
    let _ = remove_on_terminate(&v);
}

/// `ipcworks demo mutex`.
pub fn mutex() -> anyhow::Result<()> {
    let name = format!("ipcworks-demo-mutex-{}", std::process::id());
    let name2 = format!("{name}-b");
    on_ctrl_c(&[
        format!("ipcworks.mutex.{name}"),
        format!("ipcworks.mutex.{name2}"),
    ]);
    // The data: a transfer between two accounts, which must always sum to 100.
    let m = Mutex::create(&name, [100u64, 0u64]).context("creating the mutex")?;
    println!(
        "created robust mutex {name} guarding two accounts [100, 0] (their sum must stay 100)"
    );

    step(1, "A child locks it and dies in the middle of a transfer");
    let child = child_that_holds(
        || {
            let m = Mutex::<[u64; 2]>::open(&name).expect("open");
            let mut g = m.lock().expect("first lock");
            g.update(|[a, _]| *a -= 30).expect("intact"); // debit... and die before the credit
            println!(
                "    child {}: locked, moved 30 out of account A, not yet into B",
                proc::pid()
            );
            std::mem::forget(g);
            std::mem::forget(m);
        },
        || m.try_lock().is_err(),
    )?;
    kill9(child)?;

    step(
        2,
        "The next locker is told the holder died (OwnerDead) and repairs the data",
    );
    let t = Instant::now();
    match m.lock() {
        Ok(_) => anyhow::bail!("expected OwnerDead"),
        Err(LockError::Failed(e)) => return Err(e.into()),
        Err(LockError::OwnerDead(mut g)) => {
            let [a, b] = g.get()?; // a copy: the guard lends no reference
            println!(
                "    parent: lock() → OwnerDead after {:.0} ms; accounts read {:?}, sum {} (inconsistent!)",
                t.elapsed().as_secs_f64() * 1e3,
                [a, b],
                a + b
            );
            g.set([a, 100 - a])?; // redo the credit
            g.make_consistent();
            println!(
                "    parent: repaired to {:?} and called make_consistent()",
                g.get()?
            );
        }
    }
    let g = m.lock().map_err(ipcworks::Error::from)?;
    println!(
        "    next lock(): Ok, accounts {:?} — business as usual",
        g.get()?
    );
    drop(g);
    println!("    (An ordinary mutex would stay locked for ever: every later locker would hang.)");

    step(
        3,
        "If the recoverer gives up without make_consistent(), the mutex is retired",
    );
    let m2 = Mutex::create(&name2, [100u64, 0u64]).context("creating the second mutex")?;
    let child = child_that_holds(
        || {
            let m = Mutex::<[u64; 2]>::open(&name2).expect("open");
            let g = m.lock().expect("first lock");
            std::mem::forget(g);
            std::mem::forget(m);
        },
        || m2.try_lock().is_err(),
    )?;
    kill9(child)?;
    match m2.lock() {
        Err(LockError::OwnerDead(g)) => {
            println!("    parent: OwnerDead again; dropping the guard without repairing");
            drop(g);
        }
        other => anyhow::bail!("expected OwnerDead, got {}", other.is_ok()),
    }
    match m2.lock() {
        Err(LockError::Failed(e)) => println!("    next lock(): {e}"),
        _ => anyhow::bail!("expected NotRecoverable"),
    }
    println!("    Nobody can use data that nobody vouched for.");
    println!(
        "    (Passing OwnerDead on as an error instead, `m.lock()?`, unlocks and leaves it owner-dead for the next locker to repair.)"
    );
    drop((m, m2));
    println!("\nremoved both mutexes");
    Ok(())
}

/// `ipcworks demo semaphore`.
pub fn semaphore() -> anyhow::Result<()> {
    let name = format!("ipcworks-demo-sem-{}", std::process::id());
    on_ctrl_c(&[format!("ipcworks.sem.{name}")]);
    let sem = Semaphore::create(&name, 0).context("creating the semaphore")?;
    println!("created semaphore {name} with value 0");

    step(
        1,
        "Signalling: a consumer waits (P) until a producer posts (V)",
    );
    // SAFETY: single-threaded here; the child waits, prints and _exits.
    let child = match unsafe { proc::fork() }.context("fork")? {
        Forked::Child => {
            let _ = proc::die_with_parent();
            let s = Semaphore::open(&name).expect("open");
            let t = Instant::now();
            println!("    consumer {}: wait() on value 0 — sleeps", proc::pid());
            s.wait().expect("wait");
            println!(
                "    consumer {}: woke after {:.2} s: the producer's post() let it through",
                proc::pid(),
                t.elapsed().as_secs_f64()
            );
            proc::exit_now(0);
        }
        Forked::Parent(pid) => pid,
    };
    std::thread::sleep(Duration::from_millis(500));
    println!("    producer {}: post()", proc::pid());
    sem.post()?;
    proc::wait_child(child).context("waitpid")?;
    println!("    value now {}", sem.value()?);

    step(
        2,
        "A pool of 2 permits: a worker is killed while holding one",
    );
    sem.post()?;
    sem.post()?;
    println!("    value {} (two permits)", sem.value()?);
    let child = child_that_holds(
        || {
            let s = Semaphore::open(&name).expect("open");
            let p = s.acquire().expect("acquire");
            println!("    worker {}: acquire() → holding a permit", proc::pid());
            std::mem::forget(p);
            std::mem::forget(s);
        },
        || sem.value().is_ok_and(|v| v == 1),
    )?;
    println!(
        "    value {} while the worker holds one; holders: {:?}",
        sem.value()?,
        sem.holders().iter().map(|h| h.pid).collect::<Vec<_>>()
    );
    kill9(child)?;
    let back = sem.reclaim()?;
    println!(
        "    reclaim(): {back} permit(s) of dead holders given back; value {}",
        sem.value()?
    );
    println!(
        "    A POSIX semaphore would now be stuck at 1 for ever: the dead worker's permit leaks."
    );
    drop(sem);
    println!("\nremoved {name}");
    Ok(())
}
