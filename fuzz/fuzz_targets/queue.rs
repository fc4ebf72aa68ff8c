//! A hostile peer scribbling over a native queue's segment (header,
//! semaphores, recovery mutex, slot words, records and payloads) between
//! operations — and while this process holds a two-phase receive's claim
//! (a READING slot), before it commits or releases it; relayed sends, the
//! relayed-message table (scribbled too) and forgetting its ids: any input must give
//! only `Ok` with a plausible result, or errors — never a crash, a hang or
//! an out-of-bounds access.
//!
//! `cargo +nightly fuzz run queue -- -max_total_time=600`
#![no_main]

use std::time::Duration;

use ipcworks::Error;
use ipcworks::message::Deadline;
use ipcworks::queue::{MAX_PRIORITY, MessageId, Queue};
use ipcworks::shm::Segment;
use libfuzzer_sys::fuzz_target;

const MAX: usize = 300;
const SLOTS: usize = 4;

fn expected<T, E: Into<Error>>(r: Result<T, E>) {
    match r.map_err(Into::into) {
        // The peer may have scribbled this very thread's identity into
        // the recovery mutex's lock word (which relayed sends and recovery
        // take): the mutex then says it is "already locked by this
        // thread" rather than wait for ever. A clean error.
        Err(Error::InvalidArgument(m)) if m.contains("already locked by this thread") => {}
        Ok(_)
        | Err(Error::WouldBlock)
        | Err(Error::Timeout)
        | Err(Error::Corrupted { .. })
        | Err(Error::MessageTooLarge { .. })
        | Err(Error::OwnerDead { .. })
        | Err(Error::NotRecoverable { .. }) => {}
        Err(e) => panic!("unexpected error {e:?}"),
    }
}

/// A received message must fit what the queue and the caller allow.
fn plausible<E: Into<Error>>(r: Result<(Vec<u8>, u32), E>) {
    match r {
        Ok((m, prio)) => assert!(m.len() <= MAX && prio <= MAX_PRIORITY),
        r => expected(r),
    }
}

fuzz_target!(|data: &[u8]| {
    let q = Queue::options()
        .capacity(SLOTS)
        .max_message(MAX)
        .relay_window(4)
        .spin(Duration::ZERO)
        .anonymous()
        .unwrap();
    let evil = Segment::from_fd(q.inheritable_fd().unwrap()).unwrap();
    let room = evil.len();
    let payload = [0x5Au8; MAX];
    let mut input = data.iter().copied();
    let mut next = move || input.next();
    let mut q = Some(q);
    // Opening waits up to a second for a header whose magic word is 0 (a
    // creator still at work): a few reopens per input keep runs short.
    let mut reopens = 0;
    while let Some(op) = next() {
        let arg = usize::from(next().unwrap_or(0)) | usize::from(next().unwrap_or(0)) << 8;
        let prio = (arg as u32) % (MAX_PRIORITY + 1);
        let len = arg % (MAX + 1);
        let Some(queue) = &q else {
            // Reopened over a segment its checks refused: scribble on, or
            // try again.
            if op % 2 == 0 && reopens < 3 {
                reopens += 1;
                q = Queue::from_fd(evil.inheritable_fd().unwrap()).ok();
            }
            continue;
        };
        match op % 15 {
            // Scribble 8 bytes anywhere in the segment.
            0 | 1 => {
                let off = (arg * 8) % room;
                let mut bytes = [0u8; 8];
                for b in &mut bytes {
                    *b = next().unwrap_or(0);
                }
                for (i, b) in bytes.iter().enumerate().take(room - off) {
                    // SAFETY: off + i < the segment's length.
                    unsafe { evil.as_ptr().add(off + i).write_volatile(*b) };
                }
            }
            2 => expected(queue.try_send(&payload[..len], prio)),
            3 => plausible(queue.try_recv()),
            4 => expected(queue.send_timeout(&payload[..len], prio, Duration::ZERO)),
            5 => plausible(queue.recv_timeout(Duration::from_micros(50))),
            6 => {
                let mut buf = vec![0u8; len];
                match queue.try_recv_into(&mut buf) {
                    Ok((n, p)) => assert!(n <= len && p <= MAX_PRIORITY),
                    r => expected(r),
                }
            }
            7 => {
                if let Ok(s) = queue.stats() {
                    assert!(s.depth + s.writing + s.reading <= SLOTS);
                    assert!(s.bytes <= (SLOTS * MAX) as u64);
                }
            }
            // (A scribbled lock word naming this thread: see `expected`.)
            8 => expected(queue.recover()),
            // A two-phase receive: claim, let the peer scribble 8 bytes
            // while the slot is claimed, then commit (even arg) or release
            // (odd arg, or by dropping the claim: arg % 4 == 3).
            9 | 10 => match queue.try_recv_claim() {
                Ok(c) => {
                    assert!(c.message().len() <= MAX && c.priority() <= MAX_PRIORITY);
                    let off = (arg * 8) % room;
                    for i in 0..8.min(room - off) {
                        let b = next().unwrap_or(0);
                        // SAFETY: off + i < the segment's length.
                        unsafe { evil.as_ptr().add(off + i).write_volatile(b) };
                    }
                    match arg % 4 {
                        0 | 2 => match c.commit() {
                            Ok(m) => assert!(m.len() <= MAX),
                            r => expected(r),
                        },
                        1 => expected(c.release()),
                        _ => drop(c),
                    }
                }
                r => expected(r),
            },
            // Relayed sends of a few ids (so that duplicates happen), the
            // table's queries and forgetting.
            11 => {
                let id = MessageId {
                    origin: (arg % 3) as u64,
                    seq: u64::from(op) % 5,
                };
                expected(queue.send_relayed(&payload[..len], prio, id, 7, Deadline::Now))
            }
            12 => {
                let id = MessageId {
                    origin: (arg % 3) as u64,
                    seq: (arg as u64 >> 2) % 5,
                };
                match queue.forget_relayed(&[id]) {
                    Ok(n) => assert!(n <= 1),
                    r => expected(r),
                }
            }
            13 => {
                match queue.relayed_via(7) {
                    Ok(ids) => assert!(ids.len() <= queue.relay_window()),
                    r => expected(r),
                }
                match queue.message_ids() {
                    Ok(ids) => assert!(ids.len() <= SLOTS),
                    r => expected(r),
                }
            }
            _ if reopens < 3 => {
                // Another process opening it: the header's checks.
                reopens += 1;
                drop(q.take());
                match Queue::from_fd(evil.inheritable_fd().unwrap()) {
                    Ok(fresh) => q = Some(fresh),
                    Err(e) => assert!(
                        matches!(e, Error::Corrupted { .. } | Error::Refused { .. }),
                        "unexpected error {e:?}"
                    ),
                }
            }
            _ => expected(queue.recover()),
        }
    }
});
