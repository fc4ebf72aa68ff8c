//! Message queues kept by the kernel: a POSIX queue (priorities) and a
//! System V queue (types). Here two threads share them to keep the example
//! short; processes use them the same way (the tests do).
//!
//! `cargo run -p ipcworks --example message_queues`

use std::time::Duration;

use ipcworks::mq::{posix, sysv};

fn main() -> ipcworks::Result<()> {
    // POSIX: named "/ipcworks-example-jobs", at most 4 messages of 128 bytes,
    // mode 0600, removed when `q` drops (queues persist by default).
    let name = format!("ipcworks-example-jobs-{}", std::process::id());
    let q = posix::Queue::options()
        .capacity(4)
        .max_message(128)
        .remove_on_drop(true)
        .create(&name)?;
    std::thread::scope(|s| -> ipcworks::Result<()> {
        s.spawn(|| {
            let q = posix::Queue::open(&name).expect("open");
            for (msg, prio) in [("tidy up", 1), ("fire!", 9), ("lunch", 3)] {
                q.send(msg.as_bytes(), prio).expect("send");
            }
        })
        .join()
        .expect("sender");
        // Highest priority first, FIFO within one priority.
        while let Ok((msg, prio)) = q.recv_timeout(Duration::from_millis(100)) {
            println!("posix: priority {prio}: {}", String::from_utf8_lossy(&msg));
        }
        Ok(())
    })?;

    // System V: a private queue (no key), messages with types.
    let v = sysv::Queue::options().create_private()?;
    for (msg, ty) in [("apple", 3), ("bread", 1), ("cheese", 2)] {
        v.send(msg.as_bytes(), ty)?;
    }
    let (m, t) = v.recv(2)?; // exactly type 2
    println!(
        "sysv: recv(2)  -> type {t}: {}",
        String::from_utf8_lossy(&m)
    );
    let (m, t) = v.recv(-3)?; // lowest type <= 3
    println!(
        "sysv: recv(-3) -> type {t}: {}",
        String::from_utf8_lossy(&m)
    );
    let (m, t) = v.recv(0)?; // oldest of any type
    println!(
        "sysv: recv(0)  -> type {t}: {}",
        String::from_utf8_lossy(&m)
    );
    println!("sysv: {:?}", v.stat()?);
    Ok(())
}
