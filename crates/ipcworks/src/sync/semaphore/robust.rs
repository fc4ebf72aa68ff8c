//! Robust acquire and release over a holder table: the half of the
//! protocol that survives kill -9 (described, with the table of what a
//! helper does after each step, at the top of `raw.rs`). Pure: atomics only,
//! runs under loom.

use std::sync::atomic::Ordering::SeqCst;

use super::raw::{
    CLAIM_RELEASE, CLAIM_SLOT, COUNT_MASK, Env, FREE, HELD, IDENT_MASK, MAX_VALUE, RELEASED,
    RESERVED, STATE_SHIFT, SemaphoreState, Step, bad_count, block, claim, count, pack, slot_word,
    wait, wake_one,
};
use crate::primitive::{AtomicU64, fence};
use crate::sys::time::Deadline;
use crate::{Error, Result};

/// How long a release on behalf of a dead holder waits for a live claimer
/// before giving up (it is retried at the next scan).
const HELPER_PATIENCE: u32 = 2_000;
/// How many consecutive looks at a claim naming a free slot before we call
/// it corruption (a real claim lasts a few instructions).
const INCONSISTENT_LIMIT: u32 = 300;

/// A semaphore with a holder table: robust acquire/release.
pub(crate) struct Pool<'a> {
    pub st: &'a SemaphoreState,
    pub slots: &'a [AtomicU64],
    /// Co-holders, one word per slot (same length as `slots`): 0, or the
    /// identity of a process that holds slot `i`'s permit together with
    /// its owner (a child command run under it). See "Co-holders" in
    /// `raw.rs`.
    pub co: &'a [AtomicU64],
}

/// What looking at a claim found.
enum Claim {
    /// Settled (or changed): look again at once.
    Done,
    /// A live process is in the middle of its update: back off.
    Busy,
    /// The claim names a free slot (a race, or corruption if it lasts).
    Inconsistent,
}

/// Counts rounds of waiting on a claim; turns a lasting inconsistency into
/// `Corrupted`, and an expired deadline or a `try_` into an error.
struct Patience {
    rounds: u32,
    inconsistent: u32,
}

impl Patience {
    fn new() -> Self {
        Patience {
            rounds: 0,
            inconsistent: 0,
        }
    }

    fn after<E: Env>(&mut self, env: &E, seen: Claim, limit: Option<u32>) -> Result<()> {
        match seen {
            Claim::Done => {
                self.inconsistent = 0;
                self.rounds = 0;
                return Ok(());
            }
            Claim::Busy => self.inconsistent = 0,
            Claim::Inconsistent => {
                self.inconsistent += 1;
                if self.inconsistent >= INCONSISTENT_LIMIT {
                    return Err(Error::corrupted(
                        "the semaphore's claim names a free holder slot",
                    ));
                }
            }
        }
        if limit.is_some_and(|l| self.rounds >= l) {
            return Err(Error::WouldBlock);
        }
        env.pause(self.rounds);
        self.rounds = self.rounds.saturating_add(1);
        Ok(())
    }
}

impl Pool<'_> {
    fn slot(&self, claim: u32) -> Result<usize> {
        let idx = (claim & CLAIM_SLOT) as usize;
        if idx == 0 || idx > self.slots.len() {
            return Err(Error::corrupted(format!(
                "the semaphore's claim names holder slot {idx}, outside the table of {}",
                self.slots.len()
            )));
        }
        Ok(idx - 1)
    }

    /// Robust acquire: takes a permit and records this process in slot
    /// `s`, returned. `try_only`: never sleep (WouldBlock instead).
    pub fn acquire<E: Env>(&self, env: &E, deadline: Deadline, try_only: bool) -> Result<usize> {
        let me = env.me();
        if me == 0 || me & !IDENT_MASK != 0 {
            return Err(Error::InvalidArgument(format!(
                "process identity {me:#x} does not fit a holder slot"
            )));
        }
        let mut patience = Patience::new();
        let mut last_scan = None;
        let spin_limit = if try_only { Some(200) } else { None };
        loop {
            let w = self.st.word.load(SeqCst);
            let c = count(w);
            if c > MAX_VALUE {
                return Err(bad_count(c));
            }
            if claim(w) != 0 {
                let seen = self.settle(env, w, false)?;
                patience.after(env, seen, spin_limit)?;
                if deadline.expired() {
                    return Err(Error::Timeout);
                }
                continue;
            }
            if c == 0 {
                if try_only {
                    // Dead holders' permits first, then give up.
                    if self.reclaim(env)? == 0 && self.st.value()? == 0 {
                        return Err(Error::WouldBlock);
                    }
                    continue;
                }
                self.wait_nonzero(env, deadline, &mut last_scan)?;
                continue;
            }
            let Some(s) = self.reserve(me) else {
                // Full. Only held slots make it an error; reservations by
                // other acquirers last a few instructions.
                if self.reclaim(env)? == 0 && self.held() >= self.slots.len() {
                    return Err(Error::LimitExceeded {
                        limit: "semaphore holder table (max_holders)".into(),
                        value: self.slots.len().to_string(),
                        hint: "more permits are out than the table can record; create the semaphore with a larger max_holders".into(),
                    });
                }
                patience.after(env, Claim::Busy, spin_limit)?;
                if deadline.expired() {
                    return Err(Error::Timeout);
                }
                continue;
            };
            if env.crash(Step::Reserved) {
                return Ok(s);
            }
            // Step 2: take the permit and name our slot in one CAS.
            let my_claim = (s as u32) + 1;
            let mut w = self.st.word.load(SeqCst);
            let claimed = loop {
                let c = count(w);
                if claim(w) != 0 || c == 0 || c > MAX_VALUE {
                    break false;
                }
                match self
                    .st
                    .word
                    .compare_exchange_weak(w, pack(c - 1, my_claim), SeqCst, SeqCst)
                {
                    Ok(_) => break true,
                    Err(now) => w = now,
                }
            };
            if !claimed {
                // Lost the race: give the reservation back and start over.
                let _ =
                    self.slots[s].compare_exchange(slot_word(me, RESERVED), FREE, SeqCst, SeqCst);
                continue;
            }
            if env.crash(Step::Claimed) {
                return Ok(s);
            }
            // Step 3: record the permit as held.
            if self.slots[s]
                .compare_exchange(slot_word(me, RESERVED), slot_word(me, HELD), SeqCst, SeqCst)
                .is_err()
            {
                return Err(Error::corrupted(
                    "another process changed this process's reserved holder slot",
                ));
            }
            if env.crash(Step::Recorded) {
                return Ok(s);
            }
            // Step 4: done.
            self.clear_claim(my_claim)?;
            return Ok(s);
        }
    }

    /// Whether any slot is in use (a holder that may die without posting).
    fn recorded(&self) -> bool {
        self.slots.iter().any(|s| s.load(SeqCst) != FREE)
    }

    /// How many slots record a held permit right now.
    fn held(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.load(SeqCst) >> STATE_SHIFT == HELD)
            .count()
    }

    fn reserve(&self, me: u64) -> Option<usize> {
        let n = self.slots.len();
        if n == 0 {
            return None;
        }
        // Start at a spot that depends on who we are, to spread processes.
        let start = ((me >> 32) as usize) % n;
        for i in 0..n {
            let s = (start + i) % n;
            if self.slots[s].load(SeqCst) == FREE
                && self.slots[s]
                    .compare_exchange(FREE, slot_word(me, RESERVED), SeqCst, SeqCst)
                    .is_ok()
            {
                return Some(s);
            }
        }
        None
    }

    /// Clears our own claim, keeping the count (which plain wait/post may
    /// change meanwhile).
    fn clear_claim(&self, mine: u32) -> Result<()> {
        let mut w = self.st.word.load(SeqCst);
        loop {
            if claim(w) != mine {
                return Err(Error::corrupted(
                    "this process's claim on the semaphore was changed by another process",
                ));
            }
            match self
                .st
                .word
                .compare_exchange_weak(w, w & COUNT_MASK, SeqCst, SeqCst)
            {
                Ok(_) => return Ok(()),
                Err(now) => w = now,
            }
        }
    }

    /// Sleeps until the count is positive (without taking), scanning for
    /// dead holders now and then.
    fn wait_nonzero<E: Env>(
        &self,
        env: &E,
        deadline: Deadline,
        last_scan: &mut Option<std::time::Instant>,
    ) -> Result<()> {
        block(self.st, env, deadline, &|| self.recorded(), || {
            // A claim alone is no reason to wake: a dead claimer's leftover
            // is found by the scan below.
            if self.st.value()? > 0 {
                return Ok(Some(()));
            }
            if env.scan_due(last_scan) {
                self.reclaim(env)?;
                if self.st.value()? > 0 {
                    return Ok(Some(()));
                }
            }
            Ok(None)
        })
    }

    /// Plain wait on a pool semaphore: like [`wait`], and reclaims dead
    /// holders' permits while the count is 0.
    #[cfg_attr(loom, allow(dead_code))]
    pub fn wait<E: Env>(&self, env: &E, deadline: Deadline) -> Result<()> {
        let mut last_scan = None;
        wait(self.st, env, deadline, &|| self.recorded(), || {
            if env.scan_due(&mut last_scan) {
                self.reclaim(env)?;
            }
            Ok(())
        })
    }

    /// Gives back the permit recorded in slot `s` by this process.
    pub fn release<E: Env>(&self, env: &E, s: usize) -> Result<()> {
        let me = env.me();
        // A co-holder is gone by now (its runner waited for it); forget it
        // before the slot can be reused.
        if let Some(c) = self.co.get(s) {
            c.store(0, SeqCst);
        }
        let r = self.release_for(env, s, me, false);
        if let Err(Error::WouldBlock) = r {
            // Only a helper gives up; an owner cannot get here.
            return Err(Error::corrupted("release gave up"));
        }
        r
    }

    /// Release steps R1..R4 for slot `s` held by `owner` (this process, or
    /// a dead one when `helping`, with the helper lock held).
    fn release_for<E: Env>(&self, env: &E, s: usize, owner: u64, helping: bool) -> Result<()> {
        let held = slot_word(owner, HELD);
        if self.slots.get(s).map(|x| x.load(SeqCst)) != Some(held) {
            return Err(Error::corrupted(
                "a permit's holder slot no longer names its holder",
            ));
        }
        let my_claim = CLAIM_RELEASE | ((s as u32) + 1);
        let mut patience = Patience::new();
        let limit = helping.then_some(HELPER_PATIENCE);
        let mut w = self.st.word.load(SeqCst);
        loop {
            let c = count(w);
            if c > MAX_VALUE {
                return Err(bad_count(c));
            }
            if claim(w) != 0 {
                let seen = self.settle(env, w, helping)?;
                patience.after(env, seen, limit)?;
                w = self.st.word.load(SeqCst);
                continue;
            }
            if c == MAX_VALUE {
                // Plain posts filled the count to the brim: the permit
                // cannot be added; just forget the holder.
                let _ = self.slots[s].compare_exchange(held, FREE, SeqCst, SeqCst);
                return Ok(());
            }
            match self
                .st
                .word
                .compare_exchange_weak(w, pack(c + 1, my_claim), SeqCst, SeqCst)
            {
                Ok(_) => break,
                Err(now) => w = now,
            }
        }
        if env.crash(Step::Released1) {
            return Ok(());
        }
        if self.slots[s]
            .compare_exchange(held, slot_word(owner, RELEASED), SeqCst, SeqCst)
            .is_err()
        {
            return Err(Error::corrupted(
                "a holder slot changed while its permit was being released",
            ));
        }
        if env.crash(Step::Released2) {
            return Ok(());
        }
        self.clear_claim(my_claim)?;
        if env.crash(Step::Released3) {
            return Ok(());
        }
        let _ = self.slots[s].compare_exchange(slot_word(owner, RELEASED), FREE, SeqCst, SeqCst);
        wake_one(self.st, env);
        Ok(())
    }

    /// Looks at the claim in `w`: if its claimer is dead, finishes or
    /// undoes its update (taking the helper lock unless `locked`).
    fn settle<E: Env>(&self, env: &E, w: u64, locked: bool) -> Result<Claim> {
        let s = self.slot(claim(w))?;
        let sv = self.slots[s].load(SeqCst);
        if sv >> STATE_SHIFT == FREE {
            return Ok(if self.st.word.load(SeqCst) == w {
                Claim::Inconsistent
            } else {
                Claim::Done
            });
        }
        if env.is_alive(sv & IDENT_MASK) {
            return Ok(Claim::Busy);
        }
        if locked {
            return self.help(env, s);
        }
        if !self.lock_helper(env) {
            return Ok(Claim::Busy);
        }
        let r = self.help(env, s);
        self.unlock_helper(env);
        r
    }

    /// With the helper lock held: finishes or undoes the half-done update
    /// on slot `s` if its owner is dead and the claim still names it.
    fn help<E: Env>(&self, env: &E, s: usize) -> Result<Claim> {
        loop {
            let sv = self.slots[s].load(SeqCst);
            let owner = sv & IDENT_MASK;
            let state = sv >> STATE_SHIFT;
            if state == FREE || env.is_alive(owner) {
                return Ok(Claim::Done);
            }
            // The owner is dead: its slot is frozen except for us (we hold
            // the helper lock). Read the word only now (see module docs).
            let w = self.st.word.load(SeqCst);
            let cl = claim(w);
            if cl == 0 || self.slot(cl)? != s {
                return Ok(Claim::Done);
            }
            let c = count(w);
            if c > MAX_VALUE {
                return Err(bad_count(c));
            }
            let release = cl & CLAIM_RELEASE != 0;
            match (release, state) {
                (false, RESERVED) => {
                    // A2 happened, A3 did not: give the permit back.
                    let back = if c < MAX_VALUE { c + 1 } else { c };
                    if self
                        .st
                        .word
                        .compare_exchange(w, pack(back, 0), SeqCst, SeqCst)
                        .is_ok()
                    {
                        let _ = self.slots[s].compare_exchange(sv, FREE, SeqCst, SeqCst);
                        wake_one(self.st, env);
                        return Ok(Claim::Done);
                    }
                }
                (false, HELD) | (true, RELEASED) => {
                    // A3 or R2 happened: only the claim is left over.
                    if self
                        .st
                        .word
                        .compare_exchange(w, pack(c, 0), SeqCst, SeqCst)
                        .is_ok()
                    {
                        if state == RELEASED {
                            let _ = self.slots[s].compare_exchange(sv, FREE, SeqCst, SeqCst);
                        }
                        return Ok(Claim::Done);
                    }
                }
                (true, HELD) => {
                    // R1 happened: the permit is back; do R2, then loop.
                    let _ = self.slots[s].compare_exchange(
                        sv,
                        slot_word(owner, RELEASED),
                        SeqCst,
                        SeqCst,
                    );
                }
                _ => {
                    return Err(Error::corrupted(format!(
                        "holder slot {s} is in a state its claim cannot produce"
                    )));
                }
            }
        }
    }

    fn lock_helper<E: Env>(&self, env: &E) -> bool {
        let me = env.me();
        match self.st.helper.compare_exchange(0, me, SeqCst, SeqCst) {
            Ok(_) => true,
            Err(h) if h == me => false,
            Err(h) => {
                !env.is_alive(h)
                    && self
                        .st
                        .helper
                        .compare_exchange(h, me, SeqCst, SeqCst)
                        .is_ok()
            }
        }
    }

    fn unlock_helper<E: Env>(&self, env: &E) {
        let _ = self.st.helper.compare_exchange(env.me(), 0, SeqCst, SeqCst);
    }

    /// Gives back the permits of dead holders and clears what dead
    /// processes left half done. Returns how many permits came back.
    /// Does nothing (returns 0) when another process is already at it.
    pub fn reclaim<E: Env>(&self, env: &E) -> Result<u32> {
        if !self.lock_helper(env) {
            return Ok(0);
        }
        let r = self.reclaim_locked(env);
        self.unlock_helper(env);
        r
    }

    fn reclaim_locked<E: Env>(&self, env: &E) -> Result<u32> {
        let mut back = 0;
        // Owners found alive during this scan (one /proc read each).
        let mut alive: Vec<u64> = Vec::new();
        for s in 0..self.slots.len() {
            let sv = self.slots[s].load(SeqCst);
            if sv == FREE {
                continue;
            }
            let owner = sv & IDENT_MASK;
            let state = sv >> STATE_SHIFT;
            if state == FREE || alive.contains(&owner) {
                continue;
            }
            if env.is_alive(owner) {
                alive.push(owner);
                continue;
            }
            // Dead owner; only now read its co-holder (see "Co-holders" in
            // raw.rs for why this order and this fence): while that one
            // lives, so does the hold.
            fence(SeqCst);
            let co = self.co.get(s).map_or(0, |c| c.load(SeqCst));
            if co != 0 && state == HELD {
                if env.is_alive(co) {
                    continue;
                }
                // Dead too: forget it before the slot can be reused.
                let _ = self.co[s].compare_exchange(co, 0, SeqCst, SeqCst);
            }
            // Dead owner; only now read the claim.
            let w = self.st.word.load(SeqCst);
            let names_s = claim(w) != 0 && self.slot(claim(w))? == s;
            if names_s {
                self.help(env, s)?;
            }
            let sv = self.slots[s].load(SeqCst);
            match sv >> STATE_SHIFT {
                RESERVED | RELEASED => {
                    // A1 without A2 (or A2 already undone), or R3 done.
                    let _ = self.slots[s].compare_exchange(sv, FREE, SeqCst, SeqCst);
                }
                HELD if sv & IDENT_MASK == owner => match self.release_for(env, s, owner, true) {
                    Ok(()) => back += 1,
                    // A live claimer kept us waiting: next scan.
                    Err(Error::WouldBlock) => {}
                    Err(e) => return Err(e),
                },
                _ => {}
            }
        }
        Ok(back)
    }

    /// The holders recorded now: (identity, held, co-holder identity or 0)
    /// per used slot.
    #[cfg_attr(loom, allow(dead_code))]
    pub fn holders(&self) -> Vec<(u64, bool, u64)> {
        self.slots
            .iter()
            .enumerate()
            .map(|(i, s)| (i, s.load(SeqCst)))
            .filter(|&(_, v)| v != FREE)
            .map(|(i, v)| {
                let held = v >> STATE_SHIFT == HELD;
                let co = if held {
                    self.co.get(i).map_or(0, |c| c.load(SeqCst))
                } else {
                    0
                };
                (v & IDENT_MASK, held, co)
            })
            .collect()
    }
}
