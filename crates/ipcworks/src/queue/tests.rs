//! Unit tests between threads over an anonymous queue; the process tests
//! (kill -9, many producers and consumers) are in `tests/it/queue.rs`.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::Error;
use crate::sys::proc::Identity;

fn small(cap: usize, max: usize) -> Queue {
    Queue::options()
        .capacity(cap)
        .max_message(max)
        .anonymous()
        .unwrap()
}

#[test]
fn priority_then_fifo() {
    let q = small(8, 16);
    for (m, p) in [(&b"a"[..], 1), (b"b", 5), (b"c", 3), (b"d", 5)] {
        q.send(m, p).unwrap();
    }
    assert_eq!(q.depth().unwrap(), 4);
    let got: Vec<_> = (0..4).map(|_| q.recv().unwrap()).collect();
    assert_eq!(
        got,
        vec![
            (b"b".to_vec(), 5),
            (b"d".to_vec(), 5),
            (b"c".to_vec(), 3),
            (b"a".to_vec(), 1)
        ]
    );
    assert!(matches!(q.try_recv(), Err(TryRecvError::Empty)));
    let s = q.stats().unwrap();
    assert_eq!((s.sent, s.received, s.depth), (4, 4, 0));
}

#[test]
fn stats_count_the_bytes_waiting_and_cap_a_scribbled_length() {
    let q = small(4, 16);
    for (m, p) in [(&b"hello"[..], 1), (b"", 2), (&[7; 16], 0)] {
        q.send(m, p).unwrap();
    }
    let s = q.stats().unwrap();
    assert_eq!((s.depth, s.bytes), (3, 21));
    // A peer writes a huge length into the record of the 5-byte message:
    // the figure stays within what the slots can hold.
    let i = (0..4).find(|&i| q.slot(i).len.load(SeqCst) == 5).unwrap();
    q.slot(i).len.store(u32::MAX, SeqCst);
    let s = q.stats().unwrap();
    assert_eq!((s.depth, s.bytes), (3, 32));
    q.slot(i).len.store(5, SeqCst);
    assert_eq!(q.recv().unwrap(), (b"".to_vec(), 2));
    assert_eq!(q.stats().unwrap().bytes, 21);
}

/// Messages up to `DIRECT_MAX` bytes travel as 8-byte atomic words (a
/// direct receive), longer ones by `memcpy` under a claim: every length on
/// both sides of that limit, and of a word boundary, arrives intact through
/// `recv` and `recv_into`, and every receive is counted.
#[test]
fn every_length_round_trips_on_both_sides_of_the_direct_limit() {
    let q = small(4, 1024);
    let d = ops::DIRECT_MAX;
    let lens = [0, 1, 7, 8, 9, 63, 64, 65, d - 1, d, d + 1, 1000, 1024];
    for (k, &len) in lens.iter().enumerate() {
        let msg: Vec<u8> = (0..len).map(|i| (i * 31 + k * 7 + len) as u8).collect();
        q.send(&msg, k as u32).unwrap();
        if k % 2 == 0 {
            assert_eq!(q.recv().unwrap(), (msg, k as u32), "length {len}");
        } else {
            let mut buf = vec![0xEE; 1024];
            let (n, prio) = q.recv_into(&mut buf).unwrap();
            assert_eq!((&buf[..n], prio), (&msg[..], k as u32), "length {len}");
            // Nothing past the message is written.
            assert!(buf[n..].iter().all(|&b| b == 0xEE), "length {len}");
        }
    }
    let s = q.stats().unwrap();
    assert_eq!((s.sent, s.received, s.depth), (13, 13, 0));
}

#[test]
fn full_empty_too_large_bad_priority() {
    let q = small(2, 4);
    q.send(b"", 0).unwrap();
    q.try_send(b"1234", MAX_PRIORITY).unwrap();
    assert!(matches!(q.try_send(b"x", 0), Err(TrySendError::Full)));
    assert!(matches!(
        q.send_timeout(b"x", 0, Duration::from_millis(30)),
        Err(SendTimeoutError::Timeout)
    ));
    assert!(matches!(
        q.send(b"12345", 0),
        Err(Error::MessageTooLarge { len: 5, max: 4 })
    ));
    assert!(matches!(
        q.send(b"1", MAX_PRIORITY + 1),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(q.recv().unwrap(), (b"1234".to_vec(), MAX_PRIORITY));
    assert_eq!(q.recv().unwrap(), (vec![], 0));
    assert!(matches!(
        q.recv_timeout(Duration::from_millis(30)),
        Err(RecvTimeoutError::Timeout)
    ));
    assert!(matches!(
        Queue::options().capacity(0).anonymous(),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn threads_mpmc_exactly_once() {
    let q = Arc::new(small(4, 8));
    let per = 5000u32;
    let producers: Vec<_> = (0..3u32)
        .map(|p| {
            let q = q.clone();
            std::thread::spawn(move || {
                for i in 0..per {
                    q.send(&(p * per + i).to_le_bytes(), i % 3).unwrap();
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..3)
        .map(|_| {
            let q = q.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                while let Ok((m, _)) = q.recv_timeout(Duration::from_millis(500)) {
                    got.push(u32::from_le_bytes(m.try_into().unwrap()));
                }
                got
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    let mut all: Vec<u32> = consumers
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    all.sort_unstable();
    assert_eq!(all, (0..3 * per).collect::<Vec<_>>());
}

/// A blocked receive that wants to recover a busy slot while the recovery
/// lock is held by a live process that never lets go (stopped, or a lock
/// word a peer scribbled) still takes the message that arrives meanwhile:
/// it waits for the lock a bounded time, then goes back to waiting for
/// messages.
#[test]
fn a_stuck_recoverer_does_not_keep_a_blocked_receive_from_a_new_message() {
    let q = Arc::new(small(4, 16));
    // Slot 0 busy for good: WRITING by a live owner (this process).
    let me = Identity::process();
    q.slot(0).owner.store(me.raw(), SeqCst);
    q.slot(0)
        .word
        .store(slots::word(slots::WRITING, me.id(), 0), SeqCst);
    // This thread takes the recovery lock and keeps it.
    let m = q.mutex();
    assert!(m.lock_until(crate::message::Deadline::Never).is_ok());
    let (tx, rx) = std::sync::mpsc::channel();
    let receiver = {
        let q = q.clone();
        std::thread::spawn(move || tx.send(q.recv()).unwrap())
    };
    // Let the receiver's sleep slice pass with the slot busy, so that it
    // goes for the lock, then send.
    std::thread::sleep(Duration::from_millis(300));
    q.send(b"through", 4).unwrap();
    let got = rx.recv_timeout(Duration::from_secs(20));
    m.unlock();
    assert_eq!(
        got.expect("the receive stayed stuck behind the recovery lock")
            .unwrap(),
        (b"through".to_vec(), 4)
    );
    receiver.join().unwrap();
}

/// A dead process's WRITING slot is freed and its READING slot made ready
/// again (simulated by writing a dead owner into the records).
#[test]
fn recovery_of_dead_owners() {
    let q = small(2, 8);
    q.send(b"kept", 7).unwrap();
    // A pid that exists (ours) but a start time that does not: the full
    // identity says dead, as for a reused pid.
    let me = Identity::process();
    let dead = Identity::new(me.id(), 1).raw();
    // slot 0 holds "kept" (READY); slot 1 is FREE: pretend a dead sender
    // claimed it, and a dead receiver took "kept".
    for (i, st) in [(1, slots::WRITING), (0, slots::READING)] {
        let s = q.slot(i);
        let w = s.word.load(SeqCst);
        s.owner.store(dead, SeqCst);
        s.word
            .store(slots::word(st, me.id(), slots::count(w)), SeqCst);
    }
    let s = q.stats().unwrap();
    assert_eq!((s.writing, s.reading, s.depth), (1, 1, 0));
    // A slot whose record names nobody is judged by the pid in its word:
    // ours is alive, so it stays (the instant between a claim and its
    // record store).
    q.slot(1).owner.store(0, SeqCst);
    assert_eq!(q.recover().unwrap(), (0, 1));
    q.slot(1).owner.store(dead, SeqCst);
    assert_eq!(q.recover().unwrap(), (1, 0));
    assert_eq!(q.recv().unwrap(), (b"kept".to_vec(), 7));
    q.send(b"a", 0).unwrap();
    q.send(b"b", 0).unwrap();
    assert!(matches!(q.try_send(b"c", 0), Err(TrySendError::Full)));
    let s = q.stats().unwrap();
    assert_eq!(
        (s.recovered_sends, s.recovered_recvs, s.received),
        (1, 1, 1)
    );
}

/// Waiter counts show who is asleep: a receiver on an empty queue, then a
/// sender on a full one.
#[test]
fn stats_count_blocked_waiters() {
    let q = Arc::new(small(1, 8));
    let until = |f: &dyn Fn(&Stats) -> bool| {
        let t = std::time::Instant::now();
        while !f(&q.stats().unwrap()) {
            assert!(t.elapsed() < Duration::from_secs(10), "{:?}", q.stats());
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    let r = {
        let q = q.clone();
        std::thread::spawn(move || q.recv().unwrap())
    };
    until(&|s| s.blocked_receivers == 1);
    q.send(b"x", 0).unwrap();
    assert_eq!(r.join().unwrap(), (b"x".to_vec(), 0));
    q.send(b"y", 0).unwrap();
    let w = {
        let q = q.clone();
        std::thread::spawn(move || q.send(b"z", 0).unwrap())
    };
    until(&|s| s.blocked_senders == 1 && s.depth == 1);
    assert_eq!(q.recv().unwrap().0, b"y");
    w.join().unwrap();
    until(&|s| s.blocked_senders == 0 && s.depth == 1);
}

/// A semaphore count no correct peer leaves (far above the capacity) is
/// reported instead of being taken one useless permit at a time.
#[test]
fn absurd_semaphore_count_is_corrupted() {
    let q = small(2, 8);
    for _ in 0..100_000 {
        q.sem(Side::Recv).post().unwrap();
    }
    assert!(matches!(q.recv(), Err(Error::Corrupted { .. })));
    assert!(matches!(
        q.try_recv(),
        Err(TryRecvError::Other(Error::Corrupted { .. }))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Garbage written anywhere in the segment gives errors or plausible
    /// results, never a panic or a hang.
    #[test]
    fn scribbled_segment_never_panics(writes in prop::collection::vec((0usize..2048, any::<u64>()), 1..12)) {
        let q = small(8, 64);
        q.send(b"hello", 3).unwrap();
        q.send(b"world", 1).unwrap();
        let base = q.seg.as_ptr();
        let len = q.geo.size;
        for (off, v) in writes {
            let off = (off * 8) % (len - 8);
            // SAFETY: in bounds, 8-aligned; only this thread uses the queue.
            unsafe { (base.add(off) as *mut u64).write_volatile(v) };
        }
        let t = Duration::from_millis(5);
        for _ in 0..4 {
            let _ = q.try_send(b"x", 2);
            let _ = q.try_recv();
            let _ = q.send_timeout(b"y", 1, t);
            let _ = q.recv_timeout(t);
            let _ = q.stats();
        }
        // A fresh look through the checks of open().
        let fd = q.inheritable_fd().unwrap();
        if let Ok(q2) = Queue::from_fd(fd) {
            let _ = q2.try_recv();
        }
    }
}

/// One step of a hostile peer's session with a queue.
#[derive(Debug, Clone)]
enum Op {
    /// Writes a word anywhere in the segment (word index, value).
    Scribble(usize, u64),
    TrySend(usize, u32),
    SendTimeout(usize, u32),
    TryRecv,
    RecvTimeout,
    RecvInto(usize),
    Stats,
    Recover,
    /// Drops the handle and maps the segment afresh (the checks of
    /// `from_fd`).
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (any::<usize>(), any::<u64>()).prop_map(|(o, v)| Op::Scribble(o, v)),
        // A word that parses: a state, a pid (ours or not), a count.
        1 => (any::<usize>(), 0u32..4, prop_oneof![Just(std::process::id()), 0u32..1 << 22], 0u64..4)
            .prop_map(|(o, st, pid, c)| Op::Scribble(o, slots::word(st, pid, c))),
        2 => (0usize..=80, 0u32..=MAX_PRIORITY + 2).prop_map(|(l, p)| Op::TrySend(l, p)),
        1 => (0usize..=80, 0u32..=MAX_PRIORITY).prop_map(|(l, p)| Op::SendTimeout(l, p)),
        2 => Just(Op::TryRecv),
        1 => Just(Op::RecvTimeout),
        1 => (0usize..=80).prop_map(Op::RecvInto),
        1 => Just(Op::Stats),
        1 => Just(Op::Recover),
        1 => Just(Op::Reopen),
    ]
}

/// What a call on a scribbled queue may answer besides `Ok`.
fn tolerated<T: std::fmt::Debug, E: Into<Error>>(r: Result<T, E>, op: &Op) {
    if let Err(e) = r.map_err(Into::into) {
        assert!(
            matches!(
                e,
                Error::WouldBlock
                    | Error::Timeout
                    | Error::Corrupted { .. }
                    | Error::MessageTooLarge { .. }
                    | Error::InvalidArgument(_)
                    | Error::OwnerDead { .. }
                    | Error::NotRecoverable { .. }
            ),
            "{op:?}: unexpected error {e:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]
    /// Garbage written anywhere in the segment between operations (header,
    /// semaphores, the recovery mutex, slot words, records, payloads):
    /// every call returns, with a plausible result or an error, never a
    /// panic or a hang. The same as the `queue` fuzz target
    /// (`cargo +nightly fuzz run queue`), in the suite.
    #[test]
    fn scribbling_between_operations_only_ever_yields_errors(ops in prop::collection::vec(op(), 1..40)) {
        const SLOTS: usize = 4;
        const MAX: usize = 64;
        let mut q = Some(small(SLOTS, MAX));
        let evil = crate::shm::Segment::from_fd(q.as_ref().unwrap().inheritable_fd().unwrap()).unwrap();
        let words = evil.len() / 8;
        let payload = [0x5Au8; 80];
        for op in &ops {
            let t = std::time::Instant::now();
            let Some(queue) = &q else {
                q = Queue::from_fd(evil.inheritable_fd().unwrap()).ok();
                continue;
            };
            match *op {
                Op::Scribble(o, v) => {
                    // SAFETY: o % words < words: in bounds, 8-aligned (the
                    // mapping is page-aligned). Only this thread uses the
                    // queue; the handle reads the word atomically.
                    unsafe { (evil.as_ptr() as *mut u64).add(o % words).write_volatile(v) };
                }
                Op::TrySend(l, p) => tolerated(queue.try_send(&payload[..l], p), op),
                Op::SendTimeout(l, p) => {
                    tolerated(queue.send_timeout(&payload[..l], p, Duration::from_millis(1)), op)
                }
                Op::TryRecv | Op::RecvTimeout => {
                    let r = match op {
                        Op::TryRecv => queue.try_recv().map_err(Error::from),
                        _ => queue.recv_timeout(Duration::from_millis(1)).map_err(Error::from),
                    };
                    if let Ok((m, p)) = &r {
                        prop_assert!(m.len() <= MAX && *p <= MAX_PRIORITY, "{op:?}: {} bytes, priority {p}", m.len());
                    }
                    tolerated(r, op);
                }
                Op::RecvInto(l) => {
                    let mut buf = vec![0u8; l];
                    let r = queue.try_recv_into(&mut buf);
                    if let Ok((n, p)) = r {
                        prop_assert!(n <= l && p <= MAX_PRIORITY);
                    }
                    tolerated(r, op);
                }
                Op::Stats => {
                    if let Ok(s) = queue.stats() {
                        prop_assert!(s.depth + s.writing + s.reading <= SLOTS);
                        prop_assert!(s.bytes <= (SLOTS * MAX) as u64);
                    }
                }
                Op::Recover => tolerated(queue.recover(), op),
                Op::Reopen => {
                    drop(q.take());
                    match Queue::from_fd(evil.inheritable_fd().unwrap()) {
                        Ok(fresh) => q = Some(fresh),
                        Err(e) => prop_assert!(
                            matches!(e, Error::Corrupted { .. } | Error::Refused { .. }),
                            "reopen: unexpected error {e:?}"
                        ),
                    }
                }
            }
            prop_assert!(t.elapsed() < Duration::from_secs(5), "{op:?} took {:?}", t.elapsed());
        }
    }
}

/// `recv_into` copies into the caller's buffer; one too small leaves the
/// message in the queue, first in line.
#[test]
fn recv_into_a_buffer_and_too_small_leaves_the_message() {
    let q = small(4, 16);
    q.send(b"hello", 2).unwrap();
    q.send(b"x", 1).unwrap();
    let mut small_buf = [0u8; 3];
    assert!(matches!(
        q.try_recv_into(&mut small_buf),
        Err(TryRecvError::Other(Error::MessageTooLarge {
            len: 5,
            max: 3
        }))
    ));
    assert!(matches!(
        q.recv_into(&mut small_buf),
        Err(Error::MessageTooLarge { len: 5, max: 3 })
    ));
    let mut buf = [0u8; 16];
    assert_eq!(q.recv_into(&mut buf).unwrap(), (5, 2));
    assert_eq!(&buf[..5], b"hello");
    assert_eq!(q.try_recv_into(&mut buf).unwrap(), (1, 1));
    assert_eq!(&buf[..1], b"x");
    assert!(matches!(
        q.try_recv_into(&mut buf),
        Err(TryRecvError::Empty)
    ));
    assert!(matches!(
        q.recv_into_timeout(&mut buf, Duration::from_millis(20)),
        Err(RecvTimeoutError::Timeout)
    ));
    let s = q.stats().unwrap();
    assert_eq!((s.sent, s.received, s.depth, s.reading), (2, 2, 0, 0));
}

/// A segment in an older queue layout is refused with a message that
/// says so, not misread.
#[test]
fn older_layout_is_refused_clearly() {
    let q = small(2, 8);
    q.header()
        .magic
        .store(u64::from_le_bytes(*b"ipcwQUE2"), SeqCst);
    match Queue::from_fd(q.inheritable_fd().unwrap()) {
        Err(Error::Refused { reason, .. }) => {
            assert!(reason.contains("older ipcworks"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

/// A receiver whose buffer is too small for the next message never takes
/// it, not even for a moment: another receiver, meanwhile, must still get
/// that message before the later ones of the same sender (a claim and
/// give-back would let it take the later one first). Each round waits
/// until the small receiver has been refused the head message at least
/// once while both messages were queued, so every round tests the race.
#[test]
fn a_refused_message_is_never_overtaken_by_a_later_one() {
    use std::sync::atomic::Ordering::Relaxed;
    let q = small(4, 64);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let refused = std::sync::atomic::AtomicU64::new(0);
    // Stops the watcher however the loop below ends (a failed assertion
    // must fail the test, not leave the scope waiting for ever).
    struct Stop<'a>(&'a std::sync::atomic::AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Relaxed);
        }
    }
    std::thread::scope(|s| {
        // Keeps looking at the head with a buffer too small for either
        // message, so it never takes one.
        let watcher = s.spawn(|| {
            let mut small_buf = [0u8; 8];
            while !stop.load(Relaxed) {
                match q.try_recv_into(&mut small_buf) {
                    Err(TryRecvError::Other(Error::MessageTooLarge { max: 8, .. })) => {
                        refused.fetch_add(1, Relaxed);
                    }
                    Err(TryRecvError::Empty) => {}
                    other => return Err(format!("the small receiver got {other:?}")),
                }
            }
            Ok(())
        });
        let stopper = Stop(&stop);
        let mut buf = [0u8; 64];
        for round in 0..2000u32 {
            let mut first = [1u8; 40];
            first[..4].copy_from_slice(&round.to_le_bytes());
            let mut later = [2u8; 20];
            later[..4].copy_from_slice(&round.to_le_bytes());
            let before = refused.load(Relaxed);
            q.send(&first, 1).unwrap();
            q.send(&later, 1).unwrap();
            let t = std::time::Instant::now();
            while refused.load(Relaxed) == before {
                assert!(
                    t.elapsed() < Duration::from_secs(10),
                    "round {round}: the small receiver never looked at the head message"
                );
                std::thread::yield_now();
            }
            let got = q.recv_into_timeout(&mut buf, Duration::from_secs(10));
            assert_eq!(got.unwrap(), (40, 1), "round {round}: overtaken");
            assert_eq!(buf[..4], round.to_le_bytes());
            let got = q.recv_into_timeout(&mut buf, Duration::from_secs(10));
            assert_eq!(got.unwrap(), (20, 1), "round {round}");
            assert_eq!(buf[..4], round.to_le_bytes());
        }
        drop(stopper);
        watcher.join().unwrap().unwrap();
    });
}

/// The safety net under quiet polling (`still_empty`): a poller that found
/// the queue empty answers from `next_seq` alone, so what appears without
/// a new number is caught by the look every 64th poll makes. Two such
/// things, written straight into the slots: a sender that died between
/// its claim and its number (a WRITING slot of a dead owner: recovered),
/// and a READY message whose sender never took a number (delivered).
#[test]
fn quiet_polling_still_finds_what_came_without_a_number() {
    let q = small(4, 16);
    let mut buf = [0u8; 16];
    assert!(matches!(
        q.try_recv_into(&mut buf),
        Err(TryRecvError::Empty)
    ));
    let seq = q.header().next_seq.load(SeqCst);
    let me = Identity::process();
    let dead = Identity::new(me.id(), 1).raw();
    // A dead sender's claim on slot 2, no number taken.
    let s = q.slot(2);
    s.owner.store(dead, SeqCst);
    let w = s.word.load(SeqCst);
    s.word.store(
        slots::word(slots::WRITING, me.id(), slots::count(w)),
        SeqCst,
    );
    let mut polls = 0;
    while q.stats().unwrap().recovered_sends == 0 {
        assert!(matches!(
            q.try_recv_into(&mut buf),
            Err(TryRecvError::Empty)
        ));
        polls += 1;
        assert!(polls <= 64, "the dead sender's slot was not recovered");
    }
    assert!(polls > 1, "a quiet poll looked at once ({polls} polls)");
    assert_eq!(q.stats().unwrap().writing, 0);
    // Quiet again; then a whole message in slot 1 that took no number.
    assert!(matches!(
        q.try_recv_into(&mut buf),
        Err(TryRecvError::Empty)
    ));
    let s = q.slot(1);
    s.seq.store(seq, SeqCst);
    s.priority.store(3, SeqCst);
    s.len.store(5, SeqCst);
    // SAFETY: slot 1 is FREE and no other thread touches the queue; its
    // payload area holds max_message = 16 bytes inside the mapping.
    unsafe { std::ptr::copy_nonoverlapping(b"quiet".as_ptr(), q.payload(1), 5) };
    let w = s.word.load(SeqCst);
    s.word
        .store(slots::word(slots::READY, 0, slots::count(w)), SeqCst);
    assert_eq!(q.header().next_seq.load(SeqCst), seq);
    let mut polls = 0;
    let got = loop {
        match q.try_recv_into(&mut buf) {
            Ok(got) => break got,
            Err(TryRecvError::Empty) => polls += 1,
            Err(e) => panic!("{e}"),
        }
        assert!(polls <= 64, "the message without a number was never found");
    };
    assert_eq!(got, (5, 3));
    assert_eq!(&buf[..5], b"quiet");
    assert!(polls > 1, "a quiet poll looked at once ({polls} polls)");
    // And the queue works on.
    q.send(b"next", 0).unwrap();
    assert_eq!(q.recv().unwrap(), (b"next".to_vec(), 0));
}
