//! `ipcworks demo queue`: a message queue reorders by priority, and makes a
//! sender wait while it is full.

use std::time::{Duration, Instant};

use anyhow::Context;
use ipcworks::mq::posix::Queue;
use ipcworks::sys::proc::{self, Forked};
use ipcworks::sys::signal::remove_on_terminate;

use super::step;

pub fn run() -> anyhow::Result<()> {
    let name = format!("ipcworks-demo-queue-{}", std::process::id());
    let _ = remove_on_terminate(&ipcworks::registry::removals(
        ipcworks::registry::Kind::PosixQueue,
        &name,
    ));
    let q = Queue::options()
        .capacity(4)
        .max_message(64)
        .remove_on_drop(true)
        .create(&name)
        .context("creating the demo queue")?;
    println!("created POSIX message queue /{name}: capacity 4 messages of up to 64 bytes");

    step(
        1,
        "Priorities: the kernel hands out the highest priority first, FIFO within one",
    );
    for (msg, prio) in [("low", 1), ("urgent", 5), ("normal", 3), ("urgent too", 5)] {
        q.send(msg.as_bytes(), prio)?;
        println!("    send {msg:<12} priority {prio}");
    }
    for _ in 0..4 {
        let (m, p) = q.recv()?;
        println!("    recv {:<12} priority {p}", String::from_utf8_lossy(&m));
    }
    println!(
        "    Out came the two priority-5 messages in the order they were sent, then 3, then 1."
    );

    step(2, "A full queue makes the sender wait (the bounded buffer)");
    for i in 1..=4 {
        q.send(format!("job {i}").as_bytes(), 0)?;
    }
    println!("    filled it: depth {}/4", q.attributes()?.depth);
    // SAFETY: this process has a single thread here, and the child only
    // sends, prints and leaves with _exit.
    match unsafe { proc::fork() }.context("fork")? {
        Forked::Child => {
            let _ = proc::die_with_parent();
            let start = Instant::now();
            println!(
                "    child {}: send job 5 ... (queue full, blocking in mq_send)",
                proc::pid()
            );
            let r = q.send(b"job 5", 0);
            let outcome = match r {
                Ok(()) => "sent".to_string(),
                Err(e) => format!("failed: {e}"),
            };
            println!(
                "    child {}: job 5 {outcome} after waiting {:.2} s",
                proc::pid(),
                start.elapsed().as_secs_f64()
            );
            proc::exit_now(0);
        }
        Forked::Parent(child) => {
            std::thread::sleep(Duration::from_secs(1));
            println!(
                "    parent: one second later the child is still blocked; depth {}/4",
                q.attributes()?.depth
            );
            let (m, _) = q.recv()?;
            println!(
                "    parent: recv {:?} — a slot is free, the kernel wakes the sender",
                String::from_utf8_lossy(&m)
            );
            proc::wait_child(child).context("waitpid")?;
            let mut left = Vec::new();
            while let Ok((m, _)) = q.try_recv() {
                left.push(String::from_utf8_lossy(&m).into_owned());
            }
            println!("    left in the queue, in order: {left:?}");
        }
    }
    println!("\nremoving /{name}");
    Ok(())
}
