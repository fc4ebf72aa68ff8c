//! One conformance suite for every message mechanism: the same tests, over
//! the one message interface (`Box<dyn MessageSender>` /
//! `Box<dyn MessageReceiver>`), instantiated with one line per mechanism
//! at the bottom of this file. Each line names the mechanism and the
//! optional tests its capabilities allow (priorities, type selection,
//! several producer processes, disconnect on a peer's death, an error a
//! peer can cause mid-stream); the core tests run for all.
//!
//! Cross-process tests start this test binary again as the peer (see
//! [`support::child`]); the child opens its sender through the endpoint
//! layer (`shm:NAME`, `queue:NAME`, …) or, for an anonymous pipe, from an
//! inherited descriptor.
//!
//! With the feature `tokio`, each mechanism also runs through its async
//! form (`async_round_trip_and_timeout`).
//!
//! To add a mechanism: implement [`Mechanism`] in `mechs.rs`, add it to
//! [`by_name`], and add its line below.

use std::any::Any;
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use ipcworks::Error;
use ipcworks::message::{
    Deadline, Iter, MessageReceiver, MessageSender, Meta, RecvTimeoutError, TryRecvError,
};

use crate::support::{self, KillOnDrop};

mod mechs;
#[cfg(feature = "zenoh")]
mod zenoh_mech;

/// Bounds that only catch hangs (the machine is loaded).
const LIMIT: Duration = Duration::from_secs(30);

/// A sender and a receiver in this process, and what must outlive them.
pub struct Pair {
    pub tx: Box<dyn MessageSender>,
    pub rx: Box<dyn MessageReceiver>,
    /// Guards (names removed, listeners closed on drop).
    pub keep: Box<dyn Any>,
}

/// The parent's receiver, and a sender of its own (see [`Shared::open`]).
pub type Opened = (Box<dyn MessageReceiver>, Option<Box<dyn MessageSender>>);

/// Makes a receiver selecting a System V message type.
pub type Select = Box<dyn Fn(i64) -> Box<dyn MessageReceiver>>;

/// A mechanism set up for child processes to send to.
pub struct Shared {
    /// What [`Mechanism::child_sender`] opens in the child.
    pub addr: String,
    /// A descriptor each child inherits (an anonymous pipe's write end);
    /// the parent's copy is closed once the children run.
    pub pass: Option<OwnedFd>,
    /// Opens the parent's receiver once the children run (a listener
    /// accepts, a FIFO opens), and a sender of the parent's own, which
    /// keeps the mechanism connected while the children come and go (for
    /// the mechanisms that disconnect).
    pub open: Box<dyn FnOnce() -> Opened>,
    /// Type selection (System V): a receiver on the same queue selecting
    /// `msgtyp`.
    pub select: Option<Select>,
    /// Guards, held for their `Drop` only.
    #[allow(dead_code)]
    pub keep: Box<dyn Any>,
}

/// One mechanism under test.
pub trait Mechanism: Sync {
    /// Its name in the child's argument.
    fn name(&self) -> &'static str;
    /// The largest message its pairs carry.
    fn max_message(&self) -> usize;
    /// A fresh sender and receiver in this process.
    fn pair(&self) -> Pair;
    /// A fresh instance for child processes to send to.
    fn shared(&self) -> Shared;
    /// In a child: a sender for `addr` (from [`Shared::addr`]).
    fn child_sender(&self, addr: &str) -> Box<dyn MessageSender>;
    /// Makes the receiver's next receive fail as a broken or hostile peer
    /// would, and returns a check of the error it gives.
    fn break_it(&self, _pair: &mut Pair) -> fn(&Error) -> bool {
        unreachable!("{} lists no error a peer can cause", self.name())
    }
}

/// The mechanism called `name` (for children).
fn by_name(name: &str) -> &'static dyn Mechanism {
    #[cfg(feature = "zenoh")]
    if name == "zenoh" {
        return &zenoh_mech::Zenoh;
    }
    mechs::ALL
        .iter()
        .copied()
        .find(|m| m.name() == name)
        .unwrap_or_else(|| panic!("no mechanism {name}"))
}

/// Message `seq` of producer `id`, `len` bytes (at least 16): id and seq,
/// then a pattern derived from both, so a torn or mixed-up byte shows.
fn message(id: u64, seq: u64, len: usize) -> Vec<u8> {
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&id.to_le_bytes());
    m.extend_from_slice(&seq.to_le_bytes());
    m.extend((16..len).map(|i| (id as u8) ^ (seq as u8).wrapping_mul(31) ^ (i as u8)));
    m.truncate(len.max(16));
    m
}

/// The size of message `seq`: 16 up to `max`, varied.
fn size_of(seq: u64, max: usize) -> usize {
    16 + (seq.wrapping_mul(2_654_435_761) as usize) % (max - 15)
}

/// `(id, seq)` of a [`message`], checking its pattern.
fn parse(m: &[u8]) -> (u64, u64) {
    assert!(m.len() >= 16, "a message of {} bytes", m.len());
    let id = u64::from_le_bytes(m[..8].try_into().unwrap());
    let seq = u64::from_le_bytes(m[8..16].try_into().unwrap());
    assert!(
        m == message(id, seq, m.len()),
        "message {id}/{seq}: content"
    );
    (id, seq)
}

/// A child of the suite: `role` with `mech|addr|…`.
fn spawn(role: &str, mech: &dyn Mechanism, shared: &Shared, rest: &str) -> KillOnDrop {
    let arg = format!("{}|{}|{rest}", mech.name(), shared.addr);
    let mut cmd = support::child("conformance::child", role, &arg);
    if let Some(fd) = &shared.pass {
        let fd = fd.try_clone().expect("dup");
        ipcworks::pipe::pass_fd_env(&mut cmd, fd, mechs::PIPE_FD_VAR).expect("pass_fd");
    }
    KillOnDrop::spawn(cmd)
}

#[test]
fn child() {
    support::as_child!(|role, arg| {
        let parts: Vec<&str> = arg.split('|').collect();
        let mech = by_name(parts[0]);
        let mut tx = mech.child_sender(parts[1]);
        match role {
            // id|count: `count` messages of producer `id`.
            "produce" => {
                let id: u64 = parts[2].parse().unwrap();
                let count: u64 = parts[3].parse().unwrap();
                let max = mech.max_message().min(1000);
                for seq in 0..count {
                    tx.send(&message(id, seq, size_of(seq, max))).unwrap();
                }
            }
            // One message, then wait to be killed.
            "hold" => {
                tx.send(b"hello").unwrap();
                std::thread::sleep(Duration::from_secs(60));
            }
            "send-priorities" => {
                for (m, p) in [("a", 1), ("b", 5), ("c", 3), ("d", 5)] {
                    tx.send_with(m.as_bytes(), Meta::with_priority(p)).unwrap();
                }
            }
            // The worked example of msgrcv(2)'s three rules.
            "send-types" => {
                for (m, t) in [
                    ("c1", 3),
                    ("a1", 1),
                    ("b1", 2),
                    ("a2", 1),
                    ("e1", 5),
                    ("b2", 2),
                ] {
                    tx.send_with(m.as_bytes(), Meta::with_type(t)).unwrap();
                }
            }
            other => support::unknown_role(other),
        }
        drop(tx);
    });
}

/// Round trip and order: 500 messages of sizes up to the maximum, from a
/// producer thread, arrive whole and in order.
pub fn round_trip_and_order(mech: &dyn Mechanism) {
    const COUNT: u64 = 500;
    let Pair {
        mut tx,
        mut rx,
        keep: _keep,
    } = mech.pair();
    let max = mech.max_message();
    std::thread::scope(|s| {
        s.spawn(move || {
            for seq in 0..COUNT {
                tx.send(&message(7, seq, size_of(seq, max))).unwrap();
            }
        });
        for seq in 0..COUNT {
            let m = rx.recv_timeout(LIMIT).unwrap();
            assert_eq!(m.len(), size_of(seq, max), "message {seq}");
            assert_eq!(parse(&m), (7, seq));
        }
    });
}

/// A message of 0 bytes and one of the maximum size arrive as sent, with
/// the default metadata.
pub fn zero_and_max_size(mech: &dyn Mechanism) {
    let mut p = mech.pair();
    let max = mech.max_message();
    let big: Vec<u8> = (0..max).map(|i| (i % 251) as u8).collect();
    p.tx.send(b"").unwrap();
    p.tx.send(&big).unwrap();
    let (m, meta) = p.rx.recv_until(Deadline::after(LIMIT)).unwrap();
    assert!(m.is_empty(), "{} bytes for an empty message", m.len());
    assert_eq!(meta.priority, 0);
    let mut buf = vec![0xFF; 3];
    p.rx.recv_into_until(&mut buf, Deadline::after(LIMIT))
        .unwrap();
    assert!(buf == big, "the {max}-byte message came back different");
}

/// One byte over the maximum is refused with `MessageTooLarge` naming both
/// sizes, and nothing is sent.
pub fn too_large_is_refused(mech: &dyn Mechanism) {
    let mut p = mech.pair();
    let max = mech.max_message();
    match p.tx.send(&vec![1; max + 1]) {
        Err(Error::MessageTooLarge { len, max: m }) => assert_eq!((len, m), (max + 1, max)),
        other => panic!("expected MessageTooLarge, got {other:?}"),
    }
    assert!(matches!(p.rx.try_recv(), Err(TryRecvError::Empty)));
    p.tx.send(b"after").unwrap();
    assert_eq!(p.rx.recv_timeout(LIMIT).unwrap(), b"after");
}

/// `try_recv` on an empty mechanism whose sender is there: `Empty`, and the
/// receiver works after it.
pub fn empty_try_recv(mech: &dyn Mechanism) {
    let mut p = mech.pair();
    for _ in 0..3 {
        assert!(matches!(p.rx.try_recv(), Err(TryRecvError::Empty)));
    }
    p.tx.send(b"x").unwrap();
    assert_eq!(p.rx.recv_timeout(LIMIT).unwrap(), b"x");
}

/// `recv_timeout` with nothing coming: `Timeout`, not before the time.
pub fn timeout_elapses(mech: &dyn Mechanism) {
    let mut p = mech.pair();
    let t = Instant::now();
    let got = p.rx.recv_timeout(Duration::from_millis(50));
    assert!(matches!(got, Err(RecvTimeoutError::Timeout)), "{got:?}");
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(50), "gave up after {took:?}");
    assert!(took < LIMIT, "{took:?}");
}

/// `try_iter` takes what is there and ends at empty, without waiting.
pub fn try_iter_takes_what_is_there(mech: &dyn Mechanism) {
    let mut p = mech.pair();
    for m in [&b"one"[..], b"two", b"three"] {
        p.tx.send(m).unwrap();
    }
    let start = Instant::now();
    let mut got = Vec::new();
    // A byte stream may hand the three over in more than one read.
    while got.len() < 3 {
        got.extend(p.rx.try_iter().map(|r| r.unwrap()));
        assert!(start.elapsed() < LIMIT, "only {got:?} arrived");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(got, [b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]);
    assert_eq!(p.rx.try_iter().count(), 0);
    assert!(matches!(p.rx.try_recv(), Err(TryRecvError::Empty)));
}

/// Priorities: a child sends a(1) b(5) c(3) d(5); they come out b d c a,
/// each with its priority.
pub fn priority_order(mech: &dyn Mechanism) {
    let shared = mech.shared();
    let mut c = spawn("send-priorities", mech, &shared, "");
    let (mut rx, _own) = (shared.open)();
    assert!(c.wait_for(LIMIT).success());
    let got: Vec<(String, u32)> = (0..4)
        .map(|_| {
            let (m, meta) = rx.recv_until(Deadline::after(LIMIT)).unwrap();
            (String::from_utf8(m).unwrap(), meta.priority)
        })
        .collect();
    let want = [("b", 5), ("d", 5), ("c", 3), ("a", 1)].map(|(m, p)| (m.to_string(), p));
    assert_eq!(got, want);
    assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
}

/// System V's three `msgrcv` rules, through receivers selecting a type.
/// Queue, oldest first: c1(3) a1(1) b1(2) a2(1) e1(5) b2(2).
pub fn type_selection(mech: &dyn Mechanism) {
    let mut shared = mech.shared();
    let select = shared.select.take().expect("a type-selecting mechanism");
    let mut c = spawn("send-types", mech, &shared, "");
    assert!(c.wait_for(LIMIT).success());
    let take = |t: i64| {
        let (m, meta) = select(t).recv_until(Deadline::Now).unwrap();
        (String::from_utf8(m).unwrap(), meta.msg_type)
    };
    // > 0: the first message of exactly that type.
    assert_eq!(take(2), ("b1".into(), 2));
    // < 0: the first message of the lowest type <= |t| (1 beats 3).
    assert_eq!(take(-2), ("a1".into(), 1));
    // 0: the first message of any type, FIFO.
    assert_eq!(take(0), ("c1".into(), 3));
    // Left: a2(1) e1(5) b2(2). Lowest <= 4 is a2, then b2; e1 is above 4.
    assert_eq!(take(-4), ("a2".into(), 1));
    assert_eq!(take(-4), ("b2".into(), 2));
    assert!(matches!(select(-4).try_recv(), Err(TryRecvError::Empty)));
    assert!(matches!(select(4).try_recv(), Err(TryRecvError::Empty)));
    assert_eq!(take(0), ("e1".into(), 5));
    let (mut any, _own) = (shared.open)();
    assert!(matches!(any.try_recv(), Err(TryRecvError::Empty)));
}

/// Several producer processes: every message arrives exactly once, each
/// producer's in its order; after the last producer and the parent's own
/// sender are gone, a mechanism that disconnects says so.
pub fn several_producers(mech: &dyn Mechanism) {
    const PRODUCERS: u64 = 4;
    const EACH: u64 = 2500;
    let mut shared = mech.shared();
    let mut kids: Vec<KillOnDrop> = (0..PRODUCERS)
        .map(|id| spawn("produce", mech, &shared, &format!("{id}|{EACH}")))
        .collect();
    shared.pass = None;
    let (mut rx, own) = (shared.open)();
    let mut next: HashMap<u64, u64> = HashMap::new();
    let start = Instant::now();
    for got in 0..PRODUCERS * EACH {
        assert!(start.elapsed() < LIMIT, "only {got} messages arrived");
        let m = rx.recv_timeout(LIMIT).unwrap();
        let (id, seq) = parse(&m);
        let want = next.entry(id).or_insert(0);
        assert_eq!(seq, *want, "producer {id}: out of order or twice");
        *want += 1;
    }
    for k in &mut kids {
        assert!(k.wait_for(LIMIT).success());
    }
    for id in 0..PRODUCERS {
        assert_eq!(next.get(&id), Some(&EACH), "producer {id}");
    }
    let disconnects = own.is_some();
    drop(own);
    match rx.recv_timeout(if disconnects { LIMIT } else { Duration::ZERO }) {
        Err(RecvTimeoutError::Disconnected) if disconnects => {}
        Err(RecvTimeoutError::Timeout) if !disconnects => {}
        other => panic!("after every message: {other:?}"),
    }
}

/// `kill -9` of the only sender's process ends a blocked receive with
/// `Disconnected`.
pub fn peer_death_ends_recv(mech: &dyn Mechanism) {
    let mut shared = mech.shared();
    let mut c = spawn("hold", mech, &shared, "");
    shared.pass = None;
    let (mut rx, own) = (shared.open)();
    assert_eq!(rx.recv_timeout(LIMIT).unwrap(), b"hello");
    // The child is connected: now it is the only sender.
    drop(own);
    let pid = c.pid();
    let killer = std::thread::spawn(move || {
        // Long enough for the receive below to be blocked first.
        std::thread::sleep(Duration::from_millis(50));
        c.kill9();
    });
    let t = Instant::now();
    let got = rx.recv_timeout(LIMIT);
    killer.join().unwrap();
    assert!(
        matches!(got, Err(RecvTimeoutError::Disconnected)),
        "child {pid} killed: {got:?}"
    );
    assert!(t.elapsed() < LIMIT);
}

/// `iter()` yields every message, then ends when the sender is gone.
pub fn iter_ends_at_disconnect(mech: &dyn Mechanism) {
    let mut p = mech.pair();
    for m in [&b"a"[..], b"", b"c"] {
        p.tx.send(m).unwrap();
    }
    drop(p.tx);
    let got: Vec<Vec<u8>> = p.rx.iter().map(|r| r.unwrap()).collect();
    assert_eq!(got, [b"a".to_vec(), vec![], b"c".to_vec()]);
    assert!(matches!(p.rx.try_recv(), Err(TryRecvError::Disconnected)));
}

/// An error a peer causes mid-stream reaches the caller of `iter()`, which
/// then ends: never swallowed, never an end disguised as a disconnect.
pub fn iter_yields_errors(mech: &dyn Mechanism) {
    let mut p = mech.pair();
    p.tx.send(b"first").unwrap();
    p.tx.send(b"second").unwrap();
    {
        let mut it = Iter::new(&mut *p.rx);
        assert_eq!(it.next().unwrap().unwrap(), b"first");
        assert_eq!(it.next().unwrap().unwrap(), b"second");
    }
    let expected = mech.break_it(&mut p);
    let mut it = Iter::new(&mut *p.rx);
    match it.next() {
        Some(Err(e)) => assert!(expected(&e), "unexpected error {e:?}"),
        other => panic!("expected the error, got {other:?}"),
    }
    assert!(it.next().is_none(), "the iterator went on after an error");
}

/// The async form ([`ipcworks::tokio::Async`] over the boxed ends, as
/// `ipcworks::tokio::open_receiver` makes for every kind without a form of
/// its own): a receive with nothing coming times out under
/// `tokio::time::timeout`; then 300 messages from a producer task arrive
/// whole and in order (multi-threaded runtime).
#[cfg(feature = "tokio")]
pub fn async_round_trip_and_timeout(mech: &dyn Mechanism) {
    use ipcworks::tokio::{Async, AsyncMessageSenderExt};
    const COUNT: u64 = 300;
    let Pair {
        tx,
        rx,
        keep: _keep,
    } = mech.pair();
    let max = mech.max_message();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut tx = Async::sender(tx).unwrap();
        let mut rx = Async::receiver(rx).unwrap();
        let idle = tokio::time::timeout(Duration::from_millis(50), rx.recv()).await;
        assert!(idle.is_err(), "a receive with nothing sent: {idle:?}");
        let producer = tokio::spawn(async move {
            for seq in 0..COUNT {
                tx.send(&message(7, seq, size_of(seq, max))).await.unwrap();
            }
            tx
        });
        for seq in 0..COUNT {
            let (m, _meta) = tokio::time::timeout(LIMIT, rx.recv())
                .await
                .expect("a receive hung")
                .unwrap();
            assert_eq!(m.len(), size_of(seq, max), "message {seq}");
            assert_eq!(parse(&m), (7, seq));
        }
        drop(producer.await.unwrap());
    });
}

/// One line per mechanism: its module name, the mechanism, and the
/// optional tests its capabilities allow.
macro_rules! conformance {
    ($name:ident, $mech:expr, [$($cap:ident),* $(,)?]) => {
        mod $name {
            #[test]
            fn round_trip_and_order() { super::round_trip_and_order(&$mech) }
            #[test]
            fn zero_and_max_size() { super::zero_and_max_size(&$mech) }
            #[test]
            fn too_large_is_refused() { super::too_large_is_refused(&$mech) }
            #[test]
            fn empty_try_recv() { super::empty_try_recv(&$mech) }
            #[test]
            fn timeout_elapses() { super::timeout_elapses(&$mech) }
            #[test]
            fn try_iter_takes_what_is_there() { super::try_iter_takes_what_is_there(&$mech) }
            #[cfg(feature = "tokio")]
            #[test]
            fn async_round_trip_and_timeout() { super::async_round_trip_and_timeout(&$mech) }
            $(
                #[test]
                fn $cap() { super::$cap(&$mech) }
            )*
        }
    };
}

conformance!(
    shm,
    super::mechs::Shm,
    [
        several_producers,
        peer_death_ends_recv,
        iter_ends_at_disconnect,
        iter_yields_errors
    ]
);
conformance!(
    queue,
    super::mechs::NativeQueue,
    [priority_order, several_producers, iter_yields_errors]
);
conformance!(
    mq,
    super::mechs::PosixMq,
    [priority_order, several_producers]
);
conformance!(
    sysv,
    super::mechs::SysV,
    [type_selection, several_producers, iter_yields_errors]
);
conformance!(
    pipe,
    super::mechs::Pipe,
    [
        several_producers,
        peer_death_ends_recv,
        iter_ends_at_disconnect,
        iter_yields_errors
    ]
);
conformance!(
    fifo,
    super::mechs::Fifo,
    [
        several_producers,
        peer_death_ends_recv,
        iter_ends_at_disconnect,
        iter_yields_errors
    ]
);
conformance!(
    unix,
    super::mechs::Unix,
    [
        peer_death_ends_recv,
        iter_ends_at_disconnect,
        iter_yields_errors
    ]
);
conformance!(
    tcp,
    super::mechs::Tcp,
    [
        peer_death_ends_recv,
        iter_ends_at_disconnect,
        iter_yields_errors
    ]
);
// Publish/subscribe has no disconnect and no priority order; a foreign
// publisher can send a malformed attachment mid-stream.
#[cfg(feature = "zenoh")]
conformance!(
    zenoh,
    super::zenoh_mech::Zenoh,
    [several_producers, iter_yields_errors]
);
