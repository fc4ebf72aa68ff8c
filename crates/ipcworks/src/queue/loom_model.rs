//! Loom model of the queue's slot protocol: threads stand in for
//! processes (their number is their pid), a payload is a loom `UnsafeCell`
//! (so a claim or commit that does not order the copy shows up as a data
//! race), and a "killed" process is one that stops after its claim.
//!
//! Run: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p ipcworks
//! --lib --release queue`.

use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, SeqCst};

use loom::cell::UnsafeCell;
use loom::sync::Arc;

use super::dedup;
use super::slots::{
    self, FREE, Look, READING, READY, Slots, WRITING, claim_free, claim_ready, commit, count,
    state, undone, word,
};
use crate::primitive::{AtomicU32, AtomicU64};

struct Table {
    words: Vec<AtomicU64>,
    seqs: Vec<AtomicU64>,
    prios: Vec<AtomicU32>,
    lens: Vec<AtomicU32>,
    payloads: Vec<UnsafeCell<u64>>,
    /// The payload as direct receives read it: written with an atomic
    /// store, as `ops::Queue::store_payload` writes short messages.
    direct: Vec<AtomicU64>,
    next_seq: AtomicU64,
}

// SAFETY: the payload cells are only touched by the owner of their slot
// (the protocol under test; loom reports it if not).
unsafe impl Sync for Table {}

impl Slots for Table {
    fn capacity(&self) -> usize {
        self.words.len()
    }
    fn word(&self, i: usize) -> &AtomicU64 {
        &self.words[i]
    }
    fn seq(&self, i: usize) -> &AtomicU64 {
        &self.seqs[i]
    }
    fn priority(&self, i: usize) -> &AtomicU32 {
        &self.prios[i]
    }
    fn len(&self, i: usize) -> &AtomicU32 {
        &self.lens[i]
    }
}

fn table(cap: usize) -> Arc<Table> {
    Arc::new(Table {
        words: (0..cap).map(|_| AtomicU64::new(0)).collect(),
        seqs: (0..cap).map(|_| AtomicU64::new(0)).collect(),
        prios: (0..cap).map(|_| AtomicU32::new(0)).collect(),
        lens: (0..cap).map(|_| AtomicU32::new(0)).collect(),
        payloads: (0..cap).map(|_| UnsafeCell::new(0)).collect(),
        direct: (0..cap).map(|_| AtomicU64::new(0)).collect(),
        next_seq: AtomicU64::new(0),
    })
}

/// Claims a free slot (looking from `start`), or `None` if there is none.
fn try_claim(t: &Table, start: usize, pid: u32) -> Option<(usize, u64)> {
    match claim_free(t, start, pid) {
        Look::Found(c) => Some(c),
        Look::Nothing { .. } => None,
    }
}

/// The rest of a send after its claim, as `ops::send_until` does it.
fn fill_and_commit(t: &Table, (i, claimed): (usize, u64), value: u64, prio: u32) {
    let seq = t.next_seq.fetch_add(1, AcqRel);
    t.seqs[i].store(seq, Relaxed);
    t.prios[i].store(prio, Relaxed);
    t.payloads[i].with_mut(|p| {
        // SAFETY: slot i is WRITING by us.
        unsafe { *p = value }
    });
    t.direct[i].store(value, Relaxed);
    assert!(commit(t, i, claimed, word(READY, 0, count(claimed))));
}

fn send(t: &Table, start: usize, pid: u32, value: u64, prio: u32) {
    let c = loop {
        if let Some(c) = try_claim(t, start, pid) {
            break c;
        }
        loom::thread::yield_now();
    };
    fill_and_commit(t, c, value, prio);
}

/// One look and, if it found a message, its receive: the value and
/// priority, or the busy slot the look saw (as `Look::Nothing`).
fn look_and_take(t: &Table, start: usize, pid: u32) -> Result<(u64, u32), Option<(usize, u64)>> {
    let (c, claimed) = match claim_ready(t, start, pid, u32::MAX, |_| false).unwrap() {
        Look::Found(c) => c,
        Look::Nothing { busy } => return Err(busy),
    };
    assert_eq!(state(claimed), READING);
    let value = t.payloads[c.i].with(|p| {
        // SAFETY: slot i is READING by us.
        unsafe { *p }
    });
    let freed = word(FREE, 0, count(claimed) + 1);
    assert!(commit(t, c.i, claimed, freed));
    Ok((value, c.prio))
}

fn try_recv(t: &Table, start: usize, pid: u32) -> Option<(u64, u32)> {
    look_and_take(t, start, pid).ok()
}

/// `try_once` until it gets a message, yielding in between.
fn until_some(
    try_once: fn(&Table, usize, u32) -> Option<(u64, u32)>,
    t: &Table,
    start: usize,
    pid: u32,
) -> (u64, u32) {
    loop {
        if let Some(m) = try_once(t, start, pid) {
            return m;
        }
        loom::thread::yield_now();
    }
}

fn recv(t: &Table, start: usize, pid: u32) -> (u64, u32) {
    until_some(try_recv, t, start, pid)
}

/// A receiver that polls as `try_recv` does (`ops::Queue::still_empty`):
/// after a look that found every slot free, it answers "empty" from
/// `next_seq` alone while that is unchanged, without looking again.
/// Returns the first message it gets (and frees its slot).
fn poll_quietly(t: &Table, start: usize, pid: u32) -> (u64, u32) {
    let mut quiet: Option<u64> = None;
    loop {
        if quiet.is_some_and(|q| t.next_seq.load(Acquire) == q) {
            loom::thread::yield_now();
            continue;
        }
        // Read before the look, as in `ops::Queue::claim`.
        let seq = t.next_seq.load(Acquire);
        match look_and_take(t, start, pid) {
            Ok(m) => return m,
            Err(busy) => quiet = busy.is_none().then_some(seq),
        }
        loom::thread::yield_now();
    }
}

/// One sender sends 10 then 20 (priority 3) into slots 0 and 1 while this
/// thread receives twice with `recv`, which is given the slot to start its
/// first and second look from; both must come out, in send order.
fn one_sender_two_messages_in_order(
    recv: fn(&Table, usize, u32) -> (u64, u32),
    starts: [usize; 2],
) {
    loom::model(move || {
        let t = table(2);
        let t2 = t.clone();
        // m1 → slot 0, m2 → slot 1.
        let s = loom::thread::spawn(move || {
            send(&t2, 0, 1, 10, 3);
            send(&t2, 1, 1, 20, 3);
        });
        let first = recv(&t, starts[0], 2);
        let second = recv(&t, starts[1], 2);
        s.join().unwrap();
        assert_eq!((first, second), ((10, 3), (20, 3)));
    });
}

/// The "empty" shortcut of polling receivers never hides a message: a
/// receiver that trusts an unchanged `next_seq` after a look that found
/// every slot free still gets both messages of a concurrent sender, in
/// order. (With `next_seq` read after the look instead of before, or taken
/// by the sender before its claim, the receiver can miss the first
/// message's slot and then wait for ever: loom reports the endless loop.)
#[test]
fn quiet_polling_never_hides_a_message() {
    one_sender_two_messages_in_order(poll_quietly, [0, 1]);
}

/// One sender's two messages of one priority come out in send order, even
/// when the receiver reads the first one's slot before it is filled and
/// the second one's after (the case a single pass gets wrong: with the
/// confirming reads removed, this model fails: both looks start at slot 0,
/// so one pass may see slot 0 empty, then m2 in slot 1), and the payloads
/// are published by the commits (no data race).
#[test]
fn one_senders_messages_in_order() {
    one_sender_two_messages_in_order(recv, [0, 0]);
}

/// Two senders, two receivers racing over two slots: every message
/// exactly once (what the receivers got plus what is left).
#[test]
fn two_by_two_exactly_once() {
    loom::model(|| {
        let t = table(2);
        let senders: Vec<_> = [(1, 100, 0), (2, 200, 1)]
            .into_iter()
            .map(|(pid, v, start)| {
                let t = t.clone();
                loom::thread::spawn(move || send(&t, start, pid, v, 0))
            })
            .collect();
        let r = {
            let t = t.clone();
            loom::thread::spawn(move || try_recv(&t, 0, 3))
        };
        let mut got: Vec<u64> = try_recv(&t, 1, 4).into_iter().map(|m| m.0).collect();
        got.extend(r.join().unwrap().map(|m| m.0));
        for s in senders {
            s.join().unwrap();
        }
        while let Some((v, _)) = try_recv(&t, 0, 5) {
            got.push(v);
        }
        got.sort_unstable();
        assert_eq!(got, [100, 200]);
        let receives: u64 = t.words.iter().map(|w| count(w.load(Relaxed))).sum();
        assert_eq!(receives, 2);
    });
}

/// A sender killed after its claim: recovery (a CAS from exactly the word
/// it judged) frees the slot; a live sender racing with it either finds
/// the slot busy or claims it after recovery, and recovery never undoes
/// that newer claim; the dead sender's message is never delivered.
#[test]
fn dead_senders_slot_is_undone_never_a_live_claim() {
    loom::model(|| {
        let t = table(1);
        // Process 1 claims slot 0 and dies there.
        let dead = try_claim(&t, 0, 1).unwrap();
        assert_eq!(state(dead.1), WRITING);
        let rec = {
            let t = t.clone();
            loom::thread::spawn(move || {
                let w = t.words[0].load(Relaxed);
                // Judged: pid 1 is dead, pid 2 alive.
                if slots::pid(w) == 1
                    && let Some(to) = undone(w)
                {
                    commit(&*t, 0, w, to);
                }
            })
        };
        let live = {
            let t = t.clone();
            loom::thread::spawn(move || match try_claim(&t, 0, 2) {
                Some(c) => {
                    fill_and_commit(&t, c, 7, 1);
                    true
                }
                None => false,
            })
        };
        rec.join().unwrap();
        let sent = live.join().unwrap();
        if sent {
            assert_eq!(try_recv(&t, 0, 3), Some((7, 1)));
        }
        assert_eq!(try_recv(&t, 0, 3), None);
        assert_eq!(state(t.words[0].load(Relaxed)), FREE);
    });
}

/// A receiver killed after its claim: recovery makes the message ready
/// again with its sequence and priority, and another receiver gets it,
/// whole.
#[test]
fn dead_receivers_message_is_given_to_the_next() {
    loom::model(|| {
        let t = table(2);
        send(&t, 0, 1, 42, 5);
        // Process 2 claims it and dies.
        let (_, claimed) = match claim_ready(&*t, 0, 2, u32::MAX, |_| false).unwrap() {
            Look::Found(c) => c,
            Look::Nothing { .. } => panic!("nothing to claim"),
        };
        let rec = {
            let t = t.clone();
            loom::thread::spawn(move || {
                let w = t.words[0].load(Relaxed);
                assert_eq!(w, claimed);
                commit(&*t, 0, w, undone(w).unwrap());
            })
        };
        let other = {
            let t = t.clone();
            loom::thread::spawn(move || send(&t, 1, 4, 43, 5))
        };
        // The recovered message keeps its place: sequence 0 before 1.
        rec.join().unwrap();
        other.join().unwrap();
        assert_eq!(recv(&t, 0, 3), (42, 5));
        assert_eq!(recv(&t, 0, 3), (43, 5));
    });
}

/// A direct receive, as `ops::Queue::look_ready` makes one for a short
/// message: the payload copied (atomically) while READY, then one CAS
/// `READY(c) → FREE(c + 1)`; a lost race starts the look over.
fn try_recv_direct(t: &Table, start: usize, pid: u32) -> Option<(u64, u32)> {
    let mut copied = None;
    let (c, taken) = match claim_ready(t, start, pid, u32::MAX, |c| {
        copied = Some(t.direct[c.i].load(Relaxed));
        true
    })
    .unwrap()
    {
        Look::Found(c) => c,
        Look::Nothing { .. } => return None,
    };
    assert_eq!(state(taken), FREE);
    Some((copied.unwrap(), c.prio))
}

fn recv_direct(t: &Table, start: usize, pid: u32) -> (u64, u32) {
    until_some(try_recv_direct, t, start, pid)
}

/// Direct receives keep one sender's order too (the same interleavings as
/// `one_senders_messages_in_order`).
#[test]
fn direct_receives_keep_one_senders_order() {
    one_sender_two_messages_in_order(recv_direct, [0, 0]);
}

/// Two direct receivers race for the messages of one slot while its
/// sender refills it: each message is taken exactly once, and whole — a
/// receiver that copied a message another took, and may have read the
/// refill's bytes, loses its compare-and-swap and never returns them.
/// (Bounded tries instead of spinning keep the model finite; what nobody
/// took is drained at the end.)
#[test]
fn direct_receivers_racing_a_refill_take_each_message_once_and_whole() {
    loom::model(|| {
        let t = table(1);
        let s = {
            let t = t.clone();
            loom::thread::spawn(move || {
                send(&t, 0, 1, 100, 0);
                // The refill, if the slot came free meanwhile.
                (0..2)
                    .find_map(|_| try_claim(&t, 0, 1))
                    .map(|c| fill_and_commit(&t, c, 200, 0))
                    .is_some()
            })
        };
        let r = {
            let t = t.clone();
            loom::thread::spawn(move || (0..2).find_map(|_| try_recv_direct(&t, 0, 2)))
        };
        let mut got: Vec<u64> = (0..2)
            .find_map(|_| try_recv_direct(&t, 0, 3))
            .into_iter()
            .map(|m| m.0)
            .collect();
        got.extend(r.join().unwrap().map(|m| m.0));
        let refilled = s.join().unwrap();
        while let Some((v, _)) = try_recv_direct(&t, 0, 4) {
            got.push(v);
        }
        got.sort_unstable();
        let want: &[u64] = if refilled { &[100, 200] } else { &[100] };
        assert_eq!(got, want);
        assert_eq!(count(t.words[0].load(Relaxed)), want.len() as u64);
    });
}

/// A two-phase receive's first step, as `claim::Queue::recv_claim_until`
/// takes it: the best READY message claimed (`READY → READING`, never
/// direct) and its payload copied out; the slot stays claimed.
fn claim(t: &Table, start: usize, pid: u32) -> Option<(usize, u64, u64)> {
    let (c, claimed) = match claim_ready(t, start, pid, u32::MAX, |_| false).unwrap() {
        Look::Found(c) => c,
        Look::Nothing { .. } => return None,
    };
    assert_eq!(state(claimed), READING);
    let value = t.payloads[c.i].with(|p| {
        // SAFETY: slot i is READING by us.
        unsafe { *p }
    });
    Some((c.i, claimed, value))
}

/// A claimant holds a message, then gives it back (`READING → READY`,
/// record untouched) while another receiver takes messages: each message
/// is received exactly once, whole (the released payload is read after
/// the release, without a data race), and the receive counts agree.
#[test]
fn a_released_claim_is_received_once_and_whole() {
    loom::model(|| {
        let t = table(2);
        send(&t, 0, 1, 10, 3);
        send(&t, 1, 1, 20, 3);
        let holder = {
            let t = t.clone();
            loom::thread::spawn(move || {
                // Whichever is first when it looks (the other receiver may
                // have taken 10 already).
                if let Some((i, w, _)) = claim(&t, 0, 2) {
                    assert!(commit(&*t, i, w, slots::released(w)));
                }
            })
        };
        let mut got = vec![recv(&t, 0, 3).0];
        holder.join().unwrap();
        got.push(recv(&t, 0, 3).0);
        got.sort_unstable();
        assert_eq!(got, [10, 20]);
        assert_eq!(try_recv(&t, 0, 3), None);
        let receives: u64 = t.words.iter().map(|w| count(w.load(Relaxed))).sum();
        assert_eq!(receives, 2);
    });
}

/// The claim's commit (`READING(c) → FREE(c + 1)`, SeqCst) against a
/// sender refilling the freed slot at once: the claimant's copy happens
/// before the refill's write (else loom reports a data race on the
/// payload), every message is taken once, whole. With `commit` made
/// `Relaxed`, loom fails this model: see
/// `planted_bug_a_relaxed_claim_commit_races_the_refill`.
fn claim_commit_races_a_refill(commit_claim: fn(&Table, usize, u64) -> bool) {
    loom::model(move || {
        let t = table(1);
        send(&t, 0, 1, 100, 0);
        let s = {
            let t = t.clone();
            loom::thread::spawn(move || {
                (0..2)
                    .find_map(|_| try_claim(&t, 0, 1))
                    .map(|c| fill_and_commit(&t, c, 200, 0))
                    .is_some()
            })
        };
        let (i, w, v) = claim(&t, 0, 2).unwrap();
        assert_eq!(v, 100);
        assert!(commit_claim(&t, i, w));
        let refilled = s.join().unwrap();
        let rest: Vec<u64> = try_recv(&t, 0, 3).into_iter().map(|m| m.0).collect();
        let want: &[u64] = if refilled { &[200] } else { &[] };
        assert_eq!(rest, want);
    });
}

#[test]
fn a_claims_commit_orders_its_copy_before_a_refill() {
    claim_commit_races_a_refill(|t, i, w| commit(t, i, w, slots::received(w)));
}

/// The model above with a planted bug: the claim's commit as a `Relaxed`
/// compare-and-swap, which does not order the claimant's copy before the
/// next sender's write. Loom must find the data race (this test passes
/// only if the model panics).
#[test]
#[should_panic(expected = "Causality violation")]
fn planted_bug_a_relaxed_claim_commit_races_the_refill() {
    claim_commit_races_a_refill(|t, i, w| {
        t.words[i]
            .compare_exchange(w, slots::received(w), Relaxed, Relaxed)
            .is_ok()
    });
}

/// A claimant killed while holding its claim (process 1) and a live one
/// (process 2) holding another: recovery, judging by pid, undoes only the
/// dead one's (one CAS from the word it judged), the live claimant's
/// commit still succeeds, and the dead one's message goes to the next
/// receiver whole: each message received exactly once.
#[test]
fn a_dead_claimants_claim_is_undone_never_a_live_ones() {
    loom::model(|| {
        let t = table(2);
        send(&t, 0, 1, 10, 3);
        send(&t, 1, 1, 20, 3);
        // Process 1 claims the first message and dies holding it.
        let (_, dead, _) = claim(&t, 0, 1).unwrap();
        assert_eq!(slots::pid(dead), 1);
        let live = {
            let t = t.clone();
            loom::thread::spawn(move || match claim(&t, 0, 2) {
                Some((i, w, v)) => {
                    assert!(commit(&*t, i, w, slots::received(w)), "a live claim undone");
                    Some(v)
                }
                None => None,
            })
        };
        let rec = {
            let t = t.clone();
            loom::thread::spawn(move || {
                for i in 0..2 {
                    let w = t.words[i].load(Relaxed);
                    if slots::busy(w) && slots::pid(w) == 1 {
                        commit(&*t, i, w, undone(w).unwrap());
                    }
                }
            })
        };
        let mut got: Vec<u64> = live.join().unwrap().into_iter().collect();
        rec.join().unwrap();
        while let Some((v, _)) = try_recv(&t, 0, 3) {
            got.push(v);
        }
        got.sort_unstable();
        assert_eq!(got, [10, 20]);
    });
}

/// The relayed-message table of `dedup.rs`, one entry per id.
struct Book {
    origin: Vec<AtomicU64>,
    seq: Vec<AtomicU64>,
    via: Vec<AtomicU64>,
    state: Vec<AtomicU64>,
}

impl dedup::Entries for Book {
    fn entries(&self) -> usize {
        self.state.len()
    }
    fn origin(&self, k: usize) -> &AtomicU64 {
        &self.origin[k]
    }
    fn seq(&self, k: usize) -> &AtomicU64 {
        &self.seq[k]
    }
    fn via(&self, k: usize) -> &AtomicU64 {
        &self.via[k]
    }
    fn state(&self, k: usize) -> &AtomicU64 {
        &self.state[k]
    }
}

fn book(n: usize) -> Book {
    let v = || (0..n).map(|_| AtomicU64::new(0)).collect();
    Book {
        origin: v(),
        seq: v(),
        via: v(),
        state: v(),
    }
}

/// A relayed send (`relayed.rs`: claim, entry pending, publish, entry
/// held) killed after `steps` of those steps while a receiver (another
/// process) tries to take the message; then the recovery mutex's next
/// holder (this thread again: the mutex's hand-over orders the dead
/// holder's writes before it) settles the entry with `settle` and undoes
/// the dead sender's slot. The entry must end held exactly when the
/// message was published: received by the racing receiver, or still
/// there for the next one. Otherwise a retry of the send would deliver it
/// twice (published, not held) or never (held, not published).
fn relayed_send_killed_after(steps: u32, settle: fn(&Book, &Table)) {
    loom::model(move || {
        let t = table(1);
        let b = Arc::new(book(1));
        // A receiver (another process) racing the send and the settling:
        // a few looks.
        let r = {
            let t = t.clone();
            loom::thread::spawn(move || {
                (0..2).find_map(|_| {
                    let m = try_recv(&t, 0, 2);
                    loom::thread::yield_now();
                    m.map(|m| m.0)
                })
            })
        };
        let c = try_claim(&t, 0, 1).unwrap();
        if steps >= 1 {
            dedup::enter(&*b, 0, (5, 1), 9, dedup::pending(c.0, count(c.1)));
        }
        if steps >= 2 {
            fill_and_commit(&t, c, 100, 0);
        }
        if steps >= 3 {
            b.state[0].store(dedup::HELD, SeqCst);
        }
        // Killed here. The next holder of the recovery mutex (another
        // process) settles the entry, then undoes the dead sender's slot.
        let s = {
            let (t, b) = (t.clone(), b.clone());
            loom::thread::spawn(move || {
                settle(&b, &t);
                let w = t.words[0].load(Acquire);
                if state(w) == WRITING {
                    assert!(commit(&*t, 0, w, undone(w).unwrap()));
                }
            })
        };
        s.join().unwrap();
        let taken = r.join().unwrap();
        let later = try_recv(&t, 0, 3).map(|m| m.0);
        let published = taken.or(later);
        let held = dedup::find(&*b, 5, 1).is_some();
        assert_eq!(
            published.is_some(),
            held,
            "after {steps} steps the entry is held: {held}, but the message was published: \
             {published:?}"
        );
        if let Some(v) = published {
            assert_eq!(v, 100);
        }
    });
}

#[test]
fn a_dead_relayed_senders_entry_says_what_was_published() {
    for steps in 0..=3 {
        relayed_send_killed_after(steps, |b, t| {
            dedup::resolve(b, t);
        });
    }
}

/// The model above with a planted bug: settling a pending entry as held
/// only when its slot is still READY forgets a message a receiver took
/// before the settling (the slot then FREE at the next count): a retry
/// would deliver it twice. Loom must find that interleaving.
#[test]
#[should_panic(expected = "the entry is held: false, but the message was published: Some(100)")]
fn planted_bug_settling_by_ready_alone_forgets_a_received_message() {
    relayed_send_killed_after(2, |b, t| {
        let w = b.state[0].load(SeqCst);
        if let dedup::State::Pending { slot, count: c } = dedup::decode(w, 1) {
            let sw = t.words[slot].load(SeqCst);
            let ready = state(sw) == READY && count(sw) == c;
            b.state[0].store(if ready { dedup::HELD } else { dedup::EMPTY }, SeqCst);
        }
    });
}
