//! A hostile peer scribbling over a shared-memory channel between
//! operations: any input must give only `Ok` or errors — never a crash, a
//! hang or an out-of-bounds access.
//!
//! `cargo +nightly fuzz run channel -- -max_total_time=600`
#![no_main]

use std::time::Duration;

use ipcworks::Error;
use ipcworks::channel::{Channel, WaitStrategy};
use ipcworks::shm::Segment;
use libfuzzer_sys::fuzz_target;

const MAX: usize = 300;

fn expected<T, E: Into<Error>>(r: Result<T, E>) {
    match r.map_err(Into::into) {
        Ok(_)
        | Err(Error::WouldBlock)
        | Err(Error::Timeout)
        | Err(Error::Disconnected)
        | Err(Error::Corrupted { .. })
        | Err(Error::Refused { .. })
        | Err(Error::LimitExceeded { .. }) => {}
        Err(e) => panic!("unexpected error {e:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let chan = Channel::builder()
        .capacity_bytes(4096)
        .max_message(MAX)
        .wait(WaitStrategy::Spin)
        .anonymous()
        .unwrap();
    let evil = Segment::from_fd(chan.inheritable_fd().unwrap()).unwrap();
    let data_at = evil.len() - chan.capacity_bytes();
    let mut tx = chan.sender().ok();
    let mut rx = chan.receiver().ok();
    let payload = [0x5Au8; MAX];
    let mut input = data.iter().copied();
    let mut next = move || input.next();
    while let Some(op) = next() {
        let arg = usize::from(next().unwrap_or(0)) | usize::from(next().unwrap_or(0)) << 8;
        match op % 8 {
            // Scribble 8 bytes: header (first 512 bytes: parameters, peers,
            // the first senders' slots with their solo `busy` words; every
            // 4th time the whole header, with the lock word, `reserve` and
            // `head`) or ring.
            0 | 1 => {
                let (base, room) = if op % 2 == 0 {
                    (0, if op % 4 == 0 { data_at } else { 512 })
                } else {
                    (data_at, chan.capacity_bytes())
                };
                let off = (arg % room) & !7;
                let mut bytes = [0u8; 8];
                for b in &mut bytes {
                    *b = next().unwrap_or(0);
                }
                for (i, b) in bytes.iter().enumerate().take(room - off) {
                    // SAFETY: base + off + i < the segment's length.
                    unsafe { evil.as_ptr().add(base + off + i).write_volatile(*b) };
                }
            }
            2 => {
                if let Some(tx) = &mut tx {
                    expected(tx.try_send(&payload[..arg % (MAX + 1)]));
                }
            }
            3 => {
                if let Some(rx) = &mut rx {
                    if let Ok(m) = rx.try_recv() {
                        assert!(m.len() <= MAX);
                    }
                }
            }
            4 => {
                if let Some(tx) = &mut tx {
                    match tx.loan_timeout(arg % (MAX + 1), Duration::ZERO) {
                        Ok(mut l) => {
                            let n = l.len();
                            l.copy_from_slice(&payload[..n]).unwrap();
                            if arg & 1 == 0 {
                                expected(l.publish());
                            }
                        }
                        r => expected(r),
                    }
                }
            }
            5 => {
                if let Some(rx) = &mut rx {
                    match rx.recv_ref_timeout(Duration::ZERO) {
                        Ok(m) => {
                            let mut buf = vec![0; m.len()];
                            m.copy_to(&mut buf).unwrap();
                        }
                        r => expected(r),
                    }
                }
            }
            // A batch of 1-4 messages (one publication: whole or not at
            // all), without waiting.
            6 if arg & 0x300 == 0x300 => {
                if let Some(tx) = &mut tx {
                    let lens = [arg % (MAX + 1), arg % 61, 0, (arg >> 4) % (MAX + 1)];
                    let msgs: Vec<&[u8]> = lens[..1 + arg % 4].iter().map(|&n| &payload[..n]).collect();
                    match tx.try_send_batch(&msgs) {
                        Ok(n) => assert!(n >= 1 && n <= msgs.len()),
                        r => expected(r),
                    }
                }
            }
            6 => {
                drop(tx.take());
                drop(rx.take());
                if let Err(e) = Channel::from_fd(chan.inheritable_fd().unwrap()) {
                    assert!(matches!(e, Error::Corrupted { .. } | Error::Refused { .. }));
                }
                tx = chan.sender().ok();
                rx = chan.receiver().ok();
            }
            _ => {
                if let Some(tx) = &mut tx {
                    expected(tx.send_timeout(&payload[..arg % (MAX + 1)], Duration::ZERO));
                }
            }
        }
    }
});
