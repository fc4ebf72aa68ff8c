//! Channel round trips between two threads, beside the floor: one cache
//! line bounced between the same two threads, measured in the same run.
//!
//! `cargo bench -p ipcworks --bench channel`. Environment knobs: `CAP` (ring
//! bytes of the ping-pong channels, default 4096) and `SIZE` (message size
//! of `ping_pong_64b_spin`, default 64). (The two-process benchmark with
//! pinned cores lives in `ipcworks-bench`.)

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use divan::{Bencher, black_box, counter::BytesCount};
use ipcworks::channel::{Channel, WaitStrategy};

fn main() {
    divan::main();
}

/// The floor: a round trip is one store seen by the other core and one
/// store seen back.
#[divan::bench(sample_count = 200, sample_size = 1000)]
fn floor_cache_line_bounce(b: Bencher) {
    let word = Arc::new(AtomicU64::new(0));
    let echo = {
        let word = word.clone();
        thread::spawn(move || {
            loop {
                let v = word.load(Ordering::Acquire);
                if v == u64::MAX {
                    break;
                }
                if v & 1 == 1 {
                    word.store(v + 1, Ordering::Release);
                }
                std::hint::spin_loop();
            }
        })
    };
    let mut n = 0u64;
    b.bench_local(|| {
        n += 2;
        word.store(n - 1, Ordering::Release);
        while word.load(Ordering::Acquire) != n {
            std::hint::spin_loop();
        }
    });
    word.store(u64::MAX, Ordering::Release);
    echo.join().unwrap();
}

/// A reference between the floor and the channel: a 64-byte payload plus
/// a 16-byte header (two cache lines), published by a stamp, bounced
/// between the threads through two fixed slots — the hardware cost of the
/// channel's record, with none of its bookkeeping.
#[divan::bench(sample_count = 200, sample_size = 1000)]
fn floor_two_line_record(b: Bencher) {
    #[repr(C, align(64))]
    struct Slot([AtomicU64; 16]);
    let slots: Arc<[Slot; 2]> = Arc::new(std::array::from_fn(|_| {
        Slot(std::array::from_fn(|_| AtomicU64::new(0)))
    }));
    let echo = {
        let slots = slots.clone();
        thread::spawn(move || {
            let mut seq = 1;
            loop {
                let v = slots[0].0[0].load(Ordering::Acquire);
                if v == u64::MAX {
                    break;
                }
                if v == seq {
                    let mut sum = 0;
                    for w in &slots[0].0[2..10] {
                        sum += w.load(Ordering::Relaxed);
                    }
                    for w in &slots[1].0[2..10] {
                        w.store(sum, Ordering::Relaxed);
                    }
                    slots[1].0[0].store(seq, Ordering::Release);
                    seq += 1;
                }
                std::hint::spin_loop();
            }
        })
    };
    let mut seq = 0u64;
    b.bench_local(|| {
        seq += 1;
        for w in &slots[0].0[2..10] {
            w.store(seq, Ordering::Relaxed);
        }
        slots[0].0[0].store(seq, Ordering::Release);
        while slots[1].0[0].load(Ordering::Acquire) != seq {
            std::hint::spin_loop();
        }
        let mut sum = 0;
        for w in &slots[1].0[2..10] {
            sum += w.load(Ordering::Relaxed);
        }
        black_box(sum);
    });
    slots[0].0[0].store(u64::MAX, Ordering::Release);
    echo.join().unwrap();
}

/// How a ping-pong round trip sends and receives its message.
#[derive(Clone, Copy, PartialEq)]
enum Copies {
    /// `send`, then `recv_ref` + `copy_to`.
    Ref,
    /// `send`, then `recv_slice` into the buffer.
    Slice,
    /// A loan written in place, and a borrowed view read in place.
    Loan,
}

fn ping_pong(b: Bencher, wait: WaitStrategy, size: usize, copies: Copies) {
    let build = || {
        Channel::builder()
            .wait(wait)
            .capacity_bytes(
                std::env::var("CAP")
                    .ok()
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(4096),
            )
            .max_message(size.max(64))
            .anonymous()
            .unwrap()
    };
    let (there, back) = (build(), build());
    let (mut tx, mut rx) = (there.sender().unwrap(), back.receiver().unwrap());
    let (mut echo_rx, mut echo_tx) = (there.receiver().unwrap(), back.sender().unwrap());
    let echo = thread::spawn(move || {
        let mut buf = Vec::new();
        loop {
            let n = echo_rx.recv_into(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            echo_tx.send(&buf).unwrap();
        }
    });
    let msg = vec![0x5Au8; size];
    let mut got = vec![0u8; size];
    b.counter(BytesCount::new(size)).bench_local(|| {
        match copies {
            Copies::Loan => {
                let mut loan = tx.loan(size).unwrap();
                loan.copy_from_slice(&msg).unwrap();
                loan.publish().unwrap();
                let m = rx.recv_ref().unwrap();
                m.read_at(0, &mut got[..8]).unwrap();
            }
            Copies::Ref => {
                tx.send(&msg).unwrap();
                rx.recv_ref().unwrap().copy_to(&mut got).unwrap();
            }
            Copies::Slice => {
                tx.send(&msg).unwrap();
                rx.recv_slice(&mut got).unwrap();
            }
        }
        black_box(&got);
    });
    tx.send(&[]).unwrap();
    echo.join().unwrap();
}

/// 64-byte round trip, both ends spinning.
#[divan::bench(sample_count = 200, sample_size = 1000)]
fn ping_pong_64b_spin(b: Bencher) {
    let size = std::env::var("SIZE")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(64);
    ping_pong(b, WaitStrategy::Spin, size, Copies::Ref);
}

/// 64-byte round trip, both ends spinning, received with `recv_slice`.
#[divan::bench(sample_count = 200, sample_size = 1000)]
fn ping_pong_64b_spin_slice(b: Bencher) {
    ping_pong(b, WaitStrategy::Spin, 64, Copies::Slice);
}

/// 64-byte round trip through a loan and a borrowed view.
#[divan::bench(sample_count = 200, sample_size = 1000)]
fn ping_pong_64b_spin_loan(b: Bencher) {
    ping_pong(b, WaitStrategy::Spin, 64, Copies::Loan);
}

/// 64-byte round trip, default strategy (spin 100 µs, then sleep).
#[divan::bench(sample_count = 200, sample_size = 1000)]
fn ping_pong_64b_default(b: Bencher) {
    ping_pong(b, WaitStrategy::default(), 64, Copies::Ref);
}

/// 64-byte round trip, futex only.
#[divan::bench(sample_count = 50, sample_size = 100)]
fn ping_pong_64b_block(b: Bencher) {
    ping_pong(b, WaitStrategy::Block, 64, Copies::Ref);
}

/// One-way throughput of 64 KiB messages (receiver copies out).
#[divan::bench(sample_count = 50, sample_size = 20)]
fn one_way_64k(b: Bencher) {
    let size = 64 * 1024;
    let chan = Channel::builder()
        .wait(WaitStrategy::Spin)
        .capacity_bytes(4 << 20)
        .max_message(size)
        .anonymous()
        .unwrap();
    let mut tx = chan.sender().unwrap();
    let mut rx = chan.receiver().unwrap();
    let sink = thread::spawn(move || {
        let mut buf = vec![0u8; size];
        loop {
            let m = rx.recv_ref().unwrap();
            if m.is_empty() {
                break;
            }
            m.copy_to(&mut buf).unwrap();
            black_box(&buf);
        }
    });
    let msg = vec![1u8; size];
    b.counter(BytesCount::new(size)).bench_local(|| {
        tx.send(&msg).unwrap();
    });
    tx.send(&[]).unwrap();
    sink.join().unwrap();
    let _ = Duration::ZERO;
}

/// One thread: send then receive 64 bytes (no peer): the software cost,
/// receiving as `copies` says (`Ref` or `Slice`).
fn same_thread(b: Bencher, copies: Copies) {
    let chan = Channel::builder()
        .capacity_bytes(4096)
        .max_message(64)
        .anonymous()
        .unwrap();
    let mut tx = chan.sender().unwrap();
    let mut rx = chan.receiver().unwrap();
    let msg = [3u8; 64];
    let mut got = [0u8; 64];
    b.bench_local(|| {
        tx.send(&msg).unwrap();
        if copies == Copies::Slice {
            rx.recv_slice(&mut got).unwrap();
        } else {
            rx.recv_ref().unwrap().copy_to(&mut got).unwrap();
        }
        black_box(&got);
    });
}

/// One thread, received with `recv_ref` + `copy_to`.
#[divan::bench(sample_count = 100, sample_size = 1000)]
fn same_thread_send_recv_64b(b: Bencher) {
    same_thread(b, Copies::Ref);
}

/// One thread, received with `recv_slice`.
#[divan::bench(sample_count = 100, sample_size = 1000)]
fn same_thread_send_recv_slice_64b(b: Bencher) {
    same_thread(b, Copies::Slice);
}

/// One thread: the same 64 bytes through `ipcworks bench`'s `bare` ring
/// (a flag's line, then the payload's; a count line the reader stores):
/// the least software a hand-off can have, beside `same_thread_*`, so that
/// their difference is the channel's own work, without the cross-core
/// transfers of a round trip.
///
/// Measured while this was written (2-core AMD EPYC VM, medians of four
/// runs): 21-32 ns per send and receive for the channel
/// (`same_thread_send_recv_*`) against 7.8-10.3 ns here, the two moving
/// together with the machine's state (a ratio of 2.7-3.4); a scratch copy
/// of both loops gave 26-28 against 10-11, and 18-19 against 9 in a
/// quicker spell of the machine. Counted with
/// `valgrind --tool=callgrind` (built with `RUSTFLAGS="--cfg
/// rustix_use_libc"`: rustix's own start-up reads the vDSO in a way
/// valgrind stops): about 320 instructions per send and receive against
/// 86, loop included. Not all of it lies on a two-process round trip's
/// path: the receive's set-up runs while it waits, and what a send does
/// after its stamp store follows the publication. What does (the
/// receive's tail after the look that sees the message, the send up to
/// its stamp) is about 120 instructions per direction more than bare's.
/// What they cost a round trip between two processes is not shown here
/// (a scratch bisection found a receive without them, built into the
/// library, no quicker: issue 24's notes).
#[divan::bench(sample_count = 100, sample_size = 1000)]
fn same_thread_bare_64b(b: Bencher) {
    const RECORDS: u64 = 32;
    const STRIDE: usize = 128;
    #[repr(C, align(64))]
    struct Line([AtomicU64; 8]);
    // Line 0: the reader's count; then per record a flag's line and a
    // payload's line.
    let mut lines: Vec<Line> = (0..1 + RECORDS as usize * 2)
        .map(|_| Line(std::array::from_fn(|_| AtomicU64::new(0))))
        .collect();
    let base = lines.as_mut_ptr().cast::<u8>();
    let record = |n: u64| 64 + (n % RECORDS) as usize * STRIDE;
    let word = |at: usize| {
        // SAFETY: `at` is a line's start inside `lines` (line 0, or a
        // record's flag line), which holds atomics only.
        unsafe { &*(base.add(at) as *const AtomicU64) }
    };
    // Lengths the compiler cannot see, as the benchmark's ring has: the
    // copies are `memcpy` calls, as the channel's are.
    let msg = vec![3u8; black_box(64)];
    let mut got = vec![0u8; black_box(64)];
    let (mut sent, mut seen, mut read) = (0u64, 0u64, 0u64);
    b.bench_local(|| {
        let n = sent + 1;
        while n - seen > RECORDS {
            seen = word(0).load(Ordering::Acquire);
        }
        let at = record(n);
        // SAFETY: the payload's line lies inside `lines`; only this
        // thread touches it, through this pointer alone while the bench
        // runs (the atomics above are never used for these bytes).
        unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), base.add(at + 64), msg.len()) };
        word(at).store(n, Ordering::Release);
        sent = n;
        let n = read + 1;
        let at = record(n);
        while word(at).load(Ordering::Acquire) != n {
            std::hint::spin_loop();
        }
        // SAFETY: as above; the flag said the payload is complete.
        unsafe { std::ptr::copy_nonoverlapping(base.add(at + 64), got.as_mut_ptr(), got.len()) };
        word(0).store(n, Ordering::Release);
        read = n;
        black_box(&got);
    });
}
