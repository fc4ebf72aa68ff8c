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
