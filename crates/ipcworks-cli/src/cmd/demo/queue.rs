//! `ipcworks demo queue`: a message queue reorders by priority, and makes a
//! sender wait while it is full.

use std::time::{Duration, Instant};

use anyhow::Context;
use ipcworks::mq::posix::Queue;
use ipcworks::process::remove_on_terminate;
use ipcworks::registry::Kind;

use super::{child, step};

pub fn run() -> anyhow::Result<()> {
    let name = format!("ipcworks-demo-queue-{}", std::process::id());
    let _ = remove_on_terminate(&[(Kind::PosixQueue, &name)]);
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
    let sender = child::start("queue", "send-job-5", std::slice::from_ref(&name), &[])?;
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
    let status = sender.wait()?;
    anyhow::ensure!(status.success(), "the child failed: {status}");
    let mut left = Vec::new();
    while let Ok((m, _)) = q.try_recv() {
        left.push(String::from_utf8_lossy(&m).into_owned());
    }
    println!("    left in the queue, in order: {left:?}");
    println!("\nremoving /{name}");
    Ok(())
}

/// The child of step 2: `send-job-5 NAME` opens the parent's queue by
/// name and sends into it while it is full.
pub(super) fn child(role: &str, args: &[String]) -> anyhow::Result<()> {
    anyhow::ensure!(role == "send-job-5", "unknown role {role:?}");
    let name = args.first().context("the queue's name")?;
    let q = Queue::open(name).context("opening the queue")?;
    let me = std::process::id();
    let start = Instant::now();
    println!("    child {me}: send job 5 ... (queue full, blocking in mq_send)");
    let outcome = match q.send(b"job 5", 0) {
        Ok(()) => "sent".to_string(),
        Err(e) => format!("failed: {e}"),
    };
    println!(
        "    child {me}: job 5 {outcome} after waiting {:.2} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
