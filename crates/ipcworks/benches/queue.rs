//! The native shared-memory queue beside the POSIX queue, in one run:
//! 64-byte send + receive by one thread (no process switch), an empty
//! non-blocking receive (a poll that finds nothing), a round
//! trip to an echo process and back (two queues, two processes), and a
//! stream of sends to a consumer process (throughput).
//!
//! `cargo bench -p ipcworks --bench queue`

use std::process::{Child, Command};

use ipcworks::mq::posix;
use ipcworks::queue::Queue;

const MSG: [u8; 64] = [0x5a; 64];
const ECHO_VAR: &str = "IPCWORKS_BENCH_QUEUE_ECHO";

fn main() {
    // Re-run as the echo process: KIND,PING,PONG.
    if let Ok(spec) = std::env::var(ECHO_VAR) {
        let mut it = spec.split(',');
        let (kind, ping, pong) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
        match kind {
            // Sinks: receive and drop until priority 0.
            "native-sink" => {
                let q = Queue::open(ping).unwrap();
                while q.recv().unwrap().1 != 0 {}
            }
            "posix-sink" => {
                let q = posix::Queue::open(ping).unwrap();
                let mut buf = [0u8; 64];
                while q.recv_into(&mut buf).unwrap().1 != 0 {}
            }
            "native" => {
                let (ping, pong) = (Queue::open(ping).unwrap(), Queue::open(pong).unwrap());
                loop {
                    let (m, p) = ping.recv().unwrap();
                    if p == 0 {
                        break;
                    }
                    pong.send(&m, p).unwrap();
                }
            }
            _ => {
                let (ping, pong) = (
                    posix::Queue::open(ping).unwrap(),
                    posix::Queue::open(pong).unwrap(),
                );
                let mut buf = [0u8; 64];
                loop {
                    let (n, p) = ping.recv_into(&mut buf).unwrap();
                    if p == 0 {
                        break;
                    }
                    pong.send(&buf[..n], p).unwrap();
                }
            }
        }
        std::process::exit(0);
    }
    divan::main();
}

fn names(what: &str) -> (String, String) {
    let id = std::process::id();
    (
        format!("ipcworks-bench-q-{what}-ping-{id}"),
        format!("ipcworks-bench-q-{what}-pong-{id}"),
    )
}

fn echo(kind: &str, ping: &str, pong: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .env(ECHO_VAR, format!("{kind},{ping},{pong}"))
        .spawn()
        .expect("spawn echo process")
}

fn native(name: &str) -> Queue {
    Queue::options()
        .capacity(8)
        .max_message(64)
        .remove_on_drop(true)
        .create(name)
        .expect("create native queue")
}

fn mq(name: &str) -> posix::Queue {
    posix::Queue::options()
        .capacity(8)
        .max_message(64)
        .remove_on_drop(true)
        .create(name)
        .expect("create POSIX queue")
}

#[divan::bench(sample_count = 1000, sample_size = 100)]
fn native_send_recv_64(b: divan::Bencher) {
    let q = native(&names("nsr").0);
    b.bench_local(|| {
        q.send(divan::black_box(&MSG), 1).unwrap();
        q.recv().unwrap()
    });
}

#[divan::bench(sample_count = 1000, sample_size = 100)]
fn posix_send_recv_64(b: divan::Bencher) {
    let q = mq(&names("psr").0);
    let mut buf = [0u8; 64];
    b.bench_local(|| {
        q.send(divan::black_box(&MSG), 1).unwrap();
        q.recv_into(&mut buf).unwrap()
    });
}

/// An empty poll: `try_recv_into` on an empty queue (after its first
/// look, the native queue watches only its sequence counter).
#[divan::bench(sample_count = 1000, sample_size = 100)]
fn native_try_recv_empty(b: divan::Bencher) {
    let q = native(&names("nte").0);
    let mut buf = [0u8; 64];
    b.bench_local(|| {
        assert!(matches!(
            q.try_recv_into(&mut buf),
            Err(ipcworks::message::TryRecvError::Empty)
        ))
    });
}

/// An empty poll on a POSIX queue (`mq_timedreceive` failing `EAGAIN`).
#[divan::bench(sample_count = 1000, sample_size = 100)]
fn posix_try_recv_empty(b: divan::Bencher) {
    let q = mq(&names("pte").0);
    b.bench_local(|| {
        assert!(matches!(
            q.try_recv(),
            Err(ipcworks::message::TryRecvError::Empty)
        ))
    });
}

/// Round trip to an echo process through two native queues.
#[divan::bench(sample_count = 200, sample_size = 50)]
fn native_round_trip_64_processes(b: divan::Bencher) {
    let (a, z) = names("nrt");
    let (ping, pong) = (native(&a), native(&z));
    let mut child = echo("native", &a, &z);
    b.bench_local(|| {
        ping.send(divan::black_box(&MSG), 1).unwrap();
        pong.recv().unwrap()
    });
    ping.send(b"stop", 0).unwrap();
    child.wait().unwrap();
}

/// Round trip to an echo process through two POSIX queues.
#[divan::bench(sample_count = 200, sample_size = 50)]
fn posix_round_trip_64_processes(b: divan::Bencher) {
    let (a, z) = names("prt");
    let (ping, pong) = (mq(&a), mq(&z));
    let mut child = echo("posix", &a, &z);
    let mut buf = [0u8; 64];
    b.bench_local(|| {
        ping.send(divan::black_box(&MSG), 1).unwrap();
        pong.recv_into(&mut buf).unwrap()
    });
    ping.send(b"stop", 0).unwrap();
    child.wait().unwrap();
}

/// Throughput: this process sends, a consumer process receives and drops;
/// the time per iteration is the time per message of the pipeline.
#[divan::bench(sample_count = 200, sample_size = 200)]
fn native_stream_64_processes(b: divan::Bencher) {
    let (a, _) = names("nst");
    let q = native(&a);
    let mut child = echo("native-sink", &a, "-");
    b.bench_local(|| q.send(divan::black_box(&MSG), 1).unwrap());
    q.send(b"stop", 0).unwrap();
    child.wait().unwrap();
}

/// Throughput through a POSIX queue to a consumer process.
#[divan::bench(sample_count = 200, sample_size = 200)]
fn posix_stream_64_processes(b: divan::Bencher) {
    let (a, _) = names("pst");
    let q = mq(&a);
    let mut child = echo("posix-sink", &a, "-");
    b.bench_local(|| q.send(divan::black_box(&MSG), 1).unwrap());
    q.send(b"stop", 0).unwrap();
    child.wait().unwrap();
}
