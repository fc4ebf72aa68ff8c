//! A hostile peer: random bytes scribbled over the channel's header and ring
//! between operations must only ever produce errors — never a panic, an
//! out-of-bounds access or a hang.

use std::time::{Duration, Instant};

use ipcworks::Error;
use ipcworks::channel::{Channel, WaitStrategy};
use ipcworks::message::TrySendError;
use ipcworks::shm::Segment;
use proptest::prelude::*;

const MAX: usize = 300;

#[derive(Debug, Clone)]
enum Op {
    /// Write `bytes` at `off` of the header (first 512 bytes) or, when
    /// `data`, of the ring's data area.
    Scribble {
        data: bool,
        off: usize,
        bytes: Vec<u8>,
    },
    TrySend(usize),
    SendTimeout(usize, u64),
    TryRecv,
    RecvTimeout(u64),
    Loan(usize, bool),
    RecvRef,
    Reattach,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (any::<bool>(), 0usize..4096, prop::collection::vec(any::<u8>(), 1..24))
            .prop_map(|(data, off, bytes)| Op::Scribble { data, off, bytes }),
        // Small aligned values (0..16, or one bit) look like real indices.
        1 => (any::<bool>(), 0usize..512, 0u64..64)
            .prop_map(|(data, off, v)| Op::Scribble {
                data,
                off: off & !7,
                bytes: (if v < 32 { v } else { 1u64 << (v - 32) }).to_le_bytes().to_vec(),
            }),
        3 => (0usize..=MAX + 5).prop_map(Op::TrySend),
        1 => (0usize..=MAX, 0u64..300).prop_map(|(l, t)| Op::SendTimeout(l, t)),
        3 => Just(Op::TryRecv),
        1 => (0u64..300).prop_map(Op::RecvTimeout),
        1 => (0usize..=MAX, any::<bool>()).prop_map(|(l, p)| Op::Loan(l, p)),
        2 => Just(Op::RecvRef),
        1 => Just(Op::Reattach),
    ]
}

fn ok_or_expected<T, E: Into<Error>>(r: Result<T, E>) {
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

fn run(ops: &[Op], wait: WaitStrategy) {
    let chan = Channel::builder()
        .capacity_bytes(4096)
        .max_message(MAX)
        .wait(wait)
        .anonymous()
        .unwrap();
    // A second mapping of the same memory: the "hostile peer".
    let evil = Segment::from_fd(chan.inheritable_fd().unwrap()).unwrap();
    let data_at = evil.len() - chan.capacity_bytes();
    let mut tx = Some(chan.sender().unwrap());
    let mut rx = Some(chan.receiver().unwrap());
    let payload = [0xA5u8; MAX + 5];
    for op in ops {
        let t = Instant::now();
        match op {
            Op::Scribble { data, off, bytes } => {
                let base = if *data { data_at } else { 0 };
                let room = if *data { chan.capacity_bytes() } else { 512 };
                let off = off % room;
                let n = bytes.len().min(room - off);
                // SAFETY: base + off + n <= the segment's length; raw
                // volatile writes to shared memory, as another process would.
                unsafe {
                    for (i, b) in bytes[..n].iter().enumerate() {
                        evil.as_ptr().add(base + off + i).write_volatile(*b);
                    }
                }
            }
            Op::TrySend(len) => {
                if let Some(tx) = &mut tx {
                    match tx.try_send(&payload[..*len]) {
                        Err(TrySendError::Other(Error::MessageTooLarge { len: l, max })) => {
                            assert_eq!((l, max), (*len, MAX))
                        }
                        r => ok_or_expected(r),
                    }
                }
            }
            Op::SendTimeout(len, us) => {
                if let Some(tx) = &mut tx {
                    ok_or_expected(tx.send_timeout(&payload[..*len], Duration::from_micros(*us)));
                }
            }
            Op::TryRecv => {
                if let Some(rx) = &mut rx {
                    let r = rx.try_recv();
                    if let Ok(m) = &r {
                        assert!(m.len() <= MAX);
                    }
                    ok_or_expected(r);
                }
            }
            Op::RecvTimeout(us) => {
                if let Some(rx) = &mut rx {
                    ok_or_expected(rx.recv_timeout(Duration::from_micros(*us)));
                }
            }
            Op::Loan(len, publish) => {
                if let Some(tx) = &mut tx {
                    match tx.loan_timeout(*len, Duration::from_micros(100)) {
                        Ok(mut loan) => {
                            loan.copy_from_slice(&payload[..*len]).unwrap();
                            if *publish {
                                ok_or_expected(loan.publish());
                            }
                        }
                        r => ok_or_expected(r),
                    }
                }
            }
            Op::RecvRef => {
                if let Some(rx) = &mut rx {
                    match rx.recv_ref_timeout(Duration::from_micros(100)) {
                        Ok(m) => {
                            assert!(m.len() <= MAX);
                            let mut buf = vec![0; m.len()];
                            m.copy_to(&mut buf).unwrap();
                            assert!(m.read_at(m.len(), &mut [0]).is_err());
                        }
                        r => ok_or_expected(r),
                    }
                }
            }
            Op::Reattach => {
                // Drop and re-attach both ends over the scribbled header,
                // and map it afresh as a new opener would.
                tx = None;
                rx = None;
                let again = Channel::from_fd(chan.inheritable_fd().unwrap());
                if let Err(e) = &again {
                    assert!(matches!(e, Error::Corrupted { .. } | Error::Refused { .. }));
                }
                match chan.sender() {
                    Ok(s) => tx = Some(s),
                    Err(e) => ok_or_expected::<(), Error>(Err(e)),
                }
                match chan.receiver() {
                    Ok(r) => rx = Some(r),
                    Err(e) => ok_or_expected::<(), Error>(Err(e)),
                }
            }
        }
        assert!(t.elapsed() < Duration::from_secs(5), "{op:?} hung");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn scribbling_over_the_channel_only_ever_yields_errors(
        ops in prop::collection::vec(op(), 1..40),
        spin in any::<bool>(),
    ) {
        let wait = if spin { WaitStrategy::Spin } else { WaitStrategy::default() };
        run(&ops, wait);
    }
}
