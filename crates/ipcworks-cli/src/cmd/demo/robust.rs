//! `ipcworks demo mutex` and `ipcworks demo semaphore`: what happens when
//! the holder of a lock or of a permit is killed (SIGKILL) while holding
//! it — the case ordinary mutexes and POSIX semaphores get wrong.

use std::time::{Duration, Instant};

use anyhow::Context;
use ipcworks::process::{TiedChild, remove_on_terminate};
use ipcworks::registry::Kind;
use ipcworks::sync::{LockError, Mutex, Semaphore};

use super::{child, step};

/// Starts the child `role` on the object `name`, which takes it and then
/// sleeps until it is killed; returns it once `ready` says it is in
/// position.
fn child_that_holds(
    role: &str,
    name: &str,
    ready: impl Fn() -> bool,
) -> anyhow::Result<TiedChild<'static>> {
    let c = child::start("robust", role, &[name.to_string()], &[])?;
    let start = Instant::now();
    while !ready() {
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(10),
            "the child never got ready"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(c)
}

fn kill9(mut child: TiedChild<'static>) -> anyhow::Result<()> {
    let pid = child.id();
    child.kill()?;
    child.wait()?;
    println!("    parent: kill -9 {pid} — it dies holding it, without running any cleanup");
    Ok(())
}

fn on_ctrl_c(seg_names: &[String]) {
    let v: Vec<_> = seg_names.iter().map(|n| (Kind::Shm, n.as_str())).collect();
    let _ = remove_on_terminate(&v);
}

/// The children of both demos: `ROLE NAME`.
pub(super) fn child(role: &str, args: &[String]) -> anyhow::Result<()> {
    let name = args.first().context("the object's name")?;
    let me = std::process::id();
    match role {
        // Locks, debits account A and "dies" before crediting B.
        "mutex-debit" => {
            let m = Mutex::<[u64; 2]>::open(name)?;
            let mut g = m.lock().map_err(ipcworks::Error::from)?;
            g.update(|[a, _]| *a -= 30)?; // debit... and die before the credit
            println!("    child {me}: locked, moved 30 out of account A, not yet into B");
            std::mem::forget(g);
            std::mem::forget(m);
        }
        "mutex-hold" => {
            let m = Mutex::<[u64; 2]>::open(name)?;
            let g = m.lock().map_err(ipcworks::Error::from)?;
            std::mem::forget(g);
            std::mem::forget(m);
        }
        "sem-consumer" => {
            let s = Semaphore::open(name)?;
            let t = Instant::now();
            println!("    consumer {me}: wait() on value 0 — sleeps");
            s.wait()?;
            println!(
                "    consumer {me}: woke after {:.2} s: the producer's post() let it through",
                t.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        "sem-hold" => {
            let s = Semaphore::open(name)?;
            let p = s.acquire()?;
            println!("    worker {me}: acquire() → holding a permit");
            std::mem::forget(p);
            std::mem::forget(s);
        }
        other => anyhow::bail!("unknown role {other:?}"),
    }
    // Hold it until the parent kills us (or dies: then so do we).
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
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
    let child = child_that_holds("mutex-debit", &name, || m.try_lock().is_err())?;
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
    let child = child_that_holds("mutex-hold", &name2, || m2.try_lock().is_err())?;
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
    let consumer = child::start("robust", "sem-consumer", std::slice::from_ref(&name), &[])?;
    std::thread::sleep(Duration::from_millis(500));
    println!("    producer {}: post()", std::process::id());
    sem.post()?;
    let status = consumer.wait()?;
    anyhow::ensure!(status.success(), "the consumer failed: {status}");
    println!("    value now {}", sem.value()?);

    step(
        2,
        "A pool of 2 permits: a worker is killed while holding one",
    );
    sem.post()?;
    sem.post()?;
    println!("    value {} (two permits)", sem.value()?);
    let child = child_that_holds("sem-hold", &name, || sem.value().is_ok_and(|v| v == 1))?;
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
