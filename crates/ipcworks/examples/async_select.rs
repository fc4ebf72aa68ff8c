//! `tokio::select!` over a shared-memory channel, a native queue and a
//! shutdown signal (feature `tokio`): whichever is ready first is served;
//! Ctrl-C, or five seconds of this demo, ends the loop. Every branch is
//! cancel-safe: a receive that loses the race leaves its message where it
//! was, for the next turn.
//!
//! ```text
//! cargo run -p ipcworks --features tokio --example async_select
//! ```

use std::time::Duration;

use ipcworks::channel::Channel;
use ipcworks::queue::Queue;
use ipcworks::tokio::{AsyncQueue, AsyncReceiver};

#[tokio::main]
async fn main() -> ipcworks::Result<()> {
    // Anonymous objects: nothing is left in /dev/shm. A real program names
    // them (`Channel::builder().create("events")`, `Queue::open("jobs")`)
    // and other processes send.
    let chan = Channel::builder().capacity(16).anonymous()?;
    let mut events = AsyncReceiver::new(chan.receiver()?)?;
    let jobs = AsyncQueue::new(Queue::anonymous()?)?;
    let jobs_queue = jobs.clone();

    // Something to receive: a thread sends on both now and then.
    let mut tx = chan.sender()?;
    std::thread::spawn(move || {
        for i in 0..10u32 {
            std::thread::sleep(Duration::from_millis(150));
            if i % 2 == 0 {
                let _ = tx.send(format!("event {i}").as_bytes());
            } else {
                let _ = jobs_queue.get_ref().send(format!("job {i}").as_bytes(), i);
            }
        }
    });

    let shutdown = async {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => println!("Ctrl-C"),
            () = tokio::time::sleep(Duration::from_secs(5)) => println!("five seconds passed"),
        }
    };
    tokio::pin!(shutdown);
    let mut channel_open = true;
    loop {
        tokio::select! {
            r = events.recv(), if channel_open => match r {
                Ok(m) => println!("channel: {}", String::from_utf8_lossy(&m)),
                // The sending thread is done: stop listening there.
                Err(ipcworks::Error::Disconnected) => {
                    println!("channel: senders gone");
                    channel_open = false;
                }
                Err(e) => return Err(e),
            },
            r = jobs.recv() => {
                let (m, prio) = r?;
                println!("queue: {} (priority {prio})", String::from_utf8_lossy(&m));
            }
            () = &mut shutdown => break,
        }
    }
    Ok(())
}
