//! One 64-byte message sent and received again by the same thread, through
//! each kernel message queue: the cost of the two system calls and the
//! kernel's copy, with no process switch. (The two-process harness is
//! `ipcworks bench`.)
//!
//! `cargo bench -p ipcworks --bench mq`

use ipcworks::mq::{posix, sysv};

fn main() {
    divan::main();
}

const MSG: [u8; 64] = [0x5a; 64];

#[divan::bench(sample_count = 1000, sample_size = 100)]
fn posix_send_recv_64(b: divan::Bencher) {
    let name = format!("ipcworks-bench-mq-{}", std::process::id());
    let q = posix::Queue::options()
        .capacity(8)
        .max_message(64)
        .remove_on_drop(true)
        .create(&name)
        .expect("create POSIX queue");
    let mut buf = [0u8; 64];
    b.bench_local(|| {
        q.send(divan::black_box(&MSG), 1).unwrap();
        q.recv_into(&mut buf).unwrap()
    });
}

#[divan::bench(sample_count = 1000, sample_size = 100)]
fn sysv_send_recv_64(b: divan::Bencher) {
    let q = sysv::Queue::options()
        .create_private()
        .expect("create System V queue");
    b.bench_local(|| {
        q.send(divan::black_box(&MSG), 1).unwrap();
        q.recv(0).unwrap()
    });
}

/// Round trip to an echo thread and back: two queues, two context switches
/// (threads of one process; the two-process figures come from
/// `ipcworks bench`).
#[divan::bench(sample_count = 200, sample_size = 50)]
fn posix_round_trip_64_threads(b: divan::Bencher) {
    let make = |what: &str| {
        posix::Queue::options()
            .capacity(8)
            .max_message(64)
            .remove_on_drop(true)
            .create(&format!("ipcworks-bench-mq-{what}-{}", std::process::id()))
            .expect("create POSIX queue")
    };
    let (ping, pong) = (make("ping"), make("pong"));
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut buf = [0u8; 64];
            loop {
                let (n, prio) = ping.recv_into(&mut buf).unwrap();
                if prio == 0 {
                    break;
                }
                pong.send(&buf[..n], prio).unwrap();
            }
        });
        let mut buf = [0u8; 64];
        b.bench_local(|| {
            ping.send(divan::black_box(&MSG), 1).unwrap();
            pong.recv_into(&mut buf).unwrap()
        });
        ping.send(b"stop", 0).unwrap();
    });
}

/// The same round trip through two System V queues.
#[divan::bench(sample_count = 200, sample_size = 50)]
fn sysv_round_trip_64_threads(b: divan::Bencher) {
    let make = || {
        sysv::Queue::options()
            .create_private()
            .expect("create System V queue")
    };
    let (ping, pong) = (make(), make());
    std::thread::scope(|s| {
        s.spawn(|| {
            loop {
                let (m, t) = ping.recv(0).unwrap();
                if t == 9 {
                    break;
                }
                pong.send(&m, t).unwrap();
            }
        });
        b.bench_local(|| {
            ping.send(divan::black_box(&MSG), 1).unwrap();
            pong.recv(0).unwrap()
        });
        ping.send(b"stop", 9).unwrap();
    });
}
