//! Throughput of the exactly-once relay pair: queue → Zenoh → queue
//! between two relay processes on loopback (this program starts them:
//! itself again, as `far` and `near`), 1 KiB messages by default.
//!
//! ```sh
//! cargo run --release -p ipcworks --features zenoh --example relay_throughput
//! cargo run --release -p ipcworks --features zenoh --example relay_throughput -- 200000 1024 64 128
//! #                                        messages, bytes, window, queue capacity ^
//! ```
//!
//! A producer thread sends the messages into queue A, the near relay
//! moves them (claim, batch query, acknowledgement, commit) to the far
//! relay, which delivers them into queue B with the idempotent
//! `send_relayed`, and the main thread receives them from B: the figure
//! is messages received per second, first send to last receive.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipcworks::bridge::relay::{Destination, QueueToZenoh, RelayOptions, ZenohToQueue};
use ipcworks::bridge::{Config, Session};
use ipcworks::queue::Queue;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let Ok(role) = std::env::var("RELAY_THROUGHPUT_ROLE") {
        return child(&role, &args[1..]);
    }
    let n: usize = args.get(1).map_or(Ok(100_000), |a| a.parse())?;
    let size: usize = args.get(2).map_or(Ok(1024), |a| a.parse())?;
    let window: usize = args.get(3).map_or(Ok(64), |a| a.parse())?;
    // Each receive reads every slot's word once (see the queue's docs):
    // room for two windows, no more.
    let capacity: usize = args.get(4).map_or(Ok(2 * window), |a| a.parse())?;
    let pid = std::process::id();
    let (a, b) = (format!("relay-tp-{pid}-a"), format!("relay-tp-{pid}-b"));
    let make = |name: &str| {
        Queue::options()
            .capacity(capacity)
            .max_message(size.max(1))
            .relay_window((2 * window).min(ipcworks::queue::MAX_RELAY_WINDOW))
            .remove_on_drop(true)
            .create(name)
    };
    let (qa, qb) = (make(&a)?, make(&b)?);
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let key = format!("relay-throughput/{pid}");
    let mut far = spawn("far", &[&key, &b, &port.to_string(), &window.to_string()])?;
    let mut near = spawn("near", &[&key, &a, &port.to_string(), &window.to_string()])?;
    let msg = vec![0x5a; size];
    let start = Instant::now();
    let producer = std::thread::spawn(move || {
        for i in 0..n {
            qa.send(&msg, (i % 4) as u32).expect("send into A");
        }
        qa
    });
    let mut buf = vec![0u8; size.max(1)];
    for _ in 0..n {
        qb.recv_into(&mut buf)?;
    }
    let took = start.elapsed();
    let _qa = producer.join().expect("producer");
    for c in [&mut near, &mut far] {
        let _ = c.kill();
        let _ = c.wait();
    }
    let rate = n as f64 / took.as_secs_f64();
    println!(
        "relay pair queue -> zenoh -> queue: {n} messages of {size} B, window {window}, \
         queues of {capacity}: {took:.2?}, {rate:.0} msg/s, {:.1} MB/s",
        rate * size as f64 / 1e6
    );
    Ok(())
}

/// Starts this program as a relay and waits until it says `ready`.
fn spawn(role: &str, args: &[&str]) -> std::io::Result<Child> {
    let mut c = Command::new(std::env::current_exe()?)
        .args(args)
        .env("RELAY_THROUGHPUT_ROLE", role)
        .stdout(Stdio::piped())
        .spawn()?;
    let out = c.stdout.take().expect("piped");
    let mut lines = std::io::BufReader::new(out).lines();
    match lines.next() {
        Some(Ok(l)) if l == "ready" => Ok(c),
        other => Err(std::io::Error::other(format!("{role}: {other:?}"))),
    }
}

/// A relay: `far KEY QUEUE PORT WINDOW` or `near KEY QUEUE PORT WINDOW`.
fn child(role: &str, a: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let opts = RelayOptions {
        window: a[3].parse()?,
        reply_timeout: Duration::from_secs(5),
        ..RelayOptions::default()
    };
    let events = Arc::new(|e: &ipcworks::bridge::relay::Event| eprintln!("{e}"));
    let mut config = Config::new();
    let at = format!("tcp/127.0.0.1:{}", a[2]);
    let queue = Queue::open(&a[1])?;
    if role == "far" {
        config.listen(at);
        let s = Session::open(&config)?;
        let mut r = ZenohToQueue::open(Destination::Queue(queue), s, &a[0], opts, events)?;
        println!("ready");
        r.run(None)?;
    } else {
        config.connect(at);
        let s = Session::open(&config)?;
        let mut r = QueueToZenoh::open(queue, s, &a[0], opts, events)?;
        println!("ready");
        r.run(None)?;
    }
    Ok(())
}
