//! The native shared-memory priority queue as the textbook bounded buffer:
//! producers wait while it is full, consumers while it is empty, and the
//! highest priority comes out first (FIFO within a priority).
//!
//! Run: `cargo run -p ipcworks --example native_queue`
//!
//! Between processes, open it by name instead (`Queue::open("jobs")`, or
//! `ipcworks send queue:jobs hello --priority 3` / `ipcworks recv
//! queue:jobs`); here threads share an anonymous one.

use std::sync::Arc;

use ipcworks::queue::Queue;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Four slots only: the producer will have to wait for the consumer.
    let q = Arc::new(Queue::options().capacity(4).max_message(64).anonymous()?);

    // Priorities 1, 5, 3, 5 come out 5, 5 (in send order), 3, 1.
    for (msg, prio) in [("low", 1), ("urgent-1", 5), ("mid", 3), ("urgent-2", 5)] {
        q.send(msg.as_bytes(), prio)?;
    }
    for _ in 0..4 {
        let (m, p) = q.recv()?;
        println!("priority {p}: {}", String::from_utf8_lossy(&m));
    }

    // A producer of 20 jobs into 4 slots; the consumer drains them.
    let producer = {
        let q = Arc::clone(&q);
        std::thread::spawn(move || -> ipcworks::Result<()> {
            for i in 0..20u32 {
                q.send(format!("job {i}").as_bytes(), 0)?; // blocks while full
            }
            q.send(b"done", 0)
        })
    };
    let mut n = 0;
    loop {
        let (m, _) = q.recv()?; // blocks while empty
        if m == b"done" {
            break;
        }
        n += 1;
    }
    producer.join().expect("producer")?;
    println!("consumed {n} jobs; {:?}", q.stats()?);
    Ok(())
}
