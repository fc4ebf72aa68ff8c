//! The channel's segment: header layout, creation, validation on open, and
//! the [`Memory`] implementation over shared memory.

use std::hash::{BuildHasher, Hasher};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::{Acquire, Relaxed};
use std::time::Duration;

use super::ring::{self, CacheLine, Control, Memory, Ring, SenderWords};
use crate::primitive::{AtomicU32, AtomicU64};
use crate::shm::fault::Mark;
use crate::shm::{self, Named, Segment, SegmentOptions};

/// Whether publishers register for `membarrier` and publish with plain
/// stores while the consumer, when it starts sleeping, issues
/// `membarrier(GLOBAL_EXPEDITED)` once and has the producers fence until
/// it has taken [`CALM`](super::wake::CALM) messages (see
/// `channel/wake.rs`). Turned off once (a barrier before *every* sleep made
/// an awaiting receiver that parks on every message about 10 µs slower a
/// round trip on the 2-core VM this was measured on), on again with the
/// barrier paid only when the consumer starts sleeping. The same for every
/// process of one build (a sleeper that skips the barrier is only correct
/// when no publisher uses plain stores), so a constant, not a setting.
const PLAIN_PUBLISH: bool = true;
use crate::sys::proc::Identity;
use crate::{Error, Result};

/// Maximum number of senders attached at once.
pub const MAX_SENDERS: usize = 32;
/// Where the data area starts in the segment.
pub(crate) const DATA_OFFSET: usize = 4096;
/// Largest data area accepted (1 TiB): keeps all arithmetic far from overflow.
const MAX_CAPACITY: u64 = 1 << 40;
/// Receiver word: the receiver closed its end.
pub(crate) const RX_CLOSED: u64 = 1;

/// Fixed parameters, written once by the creator; `magic` last.
#[repr(C)]
#[derive(Default)]
pub(crate) struct Params {
    pub magic: AtomicU64,
    pub version: AtomicU64,
    pub capacity: AtomicU64,
    pub max_message: AtomicU64,
    pub key: AtomicU64,
}

/// Who is attached.
#[repr(C)]
#[derive(Default)]
pub(crate) struct Peers {
    /// 0: no receiver yet; [`RX_CLOSED`]: closed; else its identity.
    pub receiver: AtomicU64,
    /// Non-zero once any sender attached.
    pub senders_ever: AtomicU64,
    /// Bumped after every sender attaches or detaches: while it holds the
    /// value a receiver saw at its last look at the senders' slots, the
    /// set of attached senders is the same, and a receiver (blocked, or
    /// polling an empty channel) skips reading the slots (one load instead of [`MAX_SENDERS`] lines, one
    /// of which the sender writes on every send).
    pub generation: AtomicU64,
}

/// The header at the start of the segment.
#[repr(C)]
pub(crate) struct Header {
    pub params: CacheLine<Params>,
    pub peers: CacheLine<Peers>,
    pub senders: [CacheLine<SenderWords>; MAX_SENDERS],
    pub control: Control,
}

const _: () = assert!(std::mem::size_of::<Header>() <= DATA_OFFSET);

/// A channel's geometry: its ring's capacity in bytes, its largest
/// message, and the key that its record stamps mix in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    cap: u64,
    max: u64,
    key: u64,
}

// SAFETY: `#[repr(C)]`, 64-aligned, atomics only; `params.magic` is the
// first field.
unsafe impl shm::Header for Header {
    const PREFIX: &'static str = "ipcworks.chan.";
    const KIND: &'static str = "shared-memory channel";
    const ADDRESS: &'static str = "shm";
    /// `"IPCWCHAN"`, little-endian.
    const MAGIC: u64 = u64::from_le_bytes(*b"IPCWCHAN");
    /// Bump on any change of [`Header`].
    const VERSION: u64 = 6;
    type Layout = Layout;

    fn size(l: &Layout) -> usize {
        // cap <= MAX_CAPACITY (checked by `capacity_for` and `validate`).
        DATA_OFFSET + l.cap as usize
    }

    fn magic(&self) -> &AtomicU64 {
        &self.params.0.magic
    }

    fn version(&self) -> u64 {
        self.params.0.version.load(Relaxed)
    }

    fn init(&self, l: &Layout) -> Result<()> {
        let p = &self.params.0;
        p.version.store(Self::VERSION, Relaxed);
        p.capacity.store(l.cap, Relaxed);
        p.max_message.store(l.max, Relaxed);
        p.key.store(l.key, Relaxed);
        // A fresh segment is zero: head = reserve = 0, nobody attached.
        Ok(())
    }

    fn validate(&self, len: usize) -> Result<Layout> {
        let p = &self.params.0;
        let cap = p.capacity.load(Relaxed);
        let max = p.max_message.load(Relaxed);
        let two = ring::span(max).and_then(|s| s.checked_mul(2));
        if !cap.is_power_of_two() || cap > MAX_CAPACITY || two.is_none_or(|t| t > cap) {
            return Err(Error::corrupted(format!(
                "channel layout: capacity {cap}, max message {max}, segment {len} bytes"
            )));
        }
        Ok(Layout {
            cap,
            max,
            key: p.key.load(Relaxed),
        })
    }
}

/// A mapped, validated channel segment.
pub(crate) struct Shared {
    seg: Named<Header>,
    pub cap: u64,
    pub max: u64,
    pub key: u64,
    /// Remove the name when dropped although this process did not create it.
    pub adopted: AtomicBool,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if self.adopted.load(Relaxed)
            && !self.seg.removes_on_drop()
            && let Some(n) = self.seg.name()
        {
            let _ = crate::sys::mem::shm_unlink(n);
        }
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("segment", &self.seg.name())
            .field("capacity", &self.cap)
            .field("max_message", &self.max)
            .finish()
    }
}

/// Capacity in bytes for a ring carrying messages of at most `max` bytes:
/// at least `requested`, at least two records of the largest size, a power
/// of two.
pub(crate) fn capacity_for(requested: usize, max: usize) -> Result<u64> {
    let too_big = || Error::InvalidArgument(format!("max message {max} bytes is too large"));
    let two = ring::span(max as u64)
        .and_then(|s| s.checked_mul(2))
        .ok_or_else(too_big)?;
    let cap = (requested as u64)
        .max(two)
        .max(4096)
        .checked_next_power_of_two()
        .ok_or_else(too_big)?;
    if cap > MAX_CAPACITY {
        return Err(Error::InvalidArgument(format!(
            "capacity {cap} bytes exceeds the limit of {MAX_CAPACITY}"
        )));
    }
    Ok(cap)
}

/// Ring bytes that hold `messages` messages of `max` bytes at once,
/// whatever the ring's phase: their records, and the padding that one of
/// them may need at the ring's end (less than one record).
pub(crate) fn bytes_for(messages: usize, max: usize) -> Result<usize> {
    ring::span(max as u64)
        .and_then(|s| {
            s.checked_mul(messages as u64)?
                .checked_add(s - ring::RECORD_ALIGN)
        })
        .and_then(|b| usize::try_from(b).ok())
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "room for {messages} messages of {max} bytes is too large"
            ))
        })
}

/// How many messages of `max` bytes a ring of `cap` bytes holds at once
/// for sure (the inverse of [`bytes_for`], at least 1: a ring holds two
/// records of the largest size).
pub(crate) fn messages_in(cap: u64, max: u64) -> u64 {
    let span = ring::span(max).unwrap_or(cap);
    (cap + ring::RECORD_ALIGN).saturating_sub(span) / span
}

fn random_key() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}

impl Shared {
    /// Creates the named channel `name` (or an anonymous one) with a ring
    /// of `cap` bytes for messages of at most `max` bytes.
    pub fn create(
        opts: &SegmentOptions,
        name: Option<&str>,
        cap: u64,
        max: u64,
    ) -> Result<Arc<Shared>> {
        let layout = Layout {
            cap,
            max,
            key: random_key(),
        };
        let seg = match name {
            Some(n) => Named::create(opts, n, layout, |_| Ok(()))?,
            None => Named::anonymous(opts, layout, |_| Ok(()))?,
        };
        Ok(Self::new(seg))
    }

    /// Opens the named channel `name`, waiting up to `wait` for its creator
    /// to finish initializing it.
    pub fn open(opts: &SegmentOptions, name: &str, wait: Duration) -> Result<Arc<Shared>> {
        Named::open(opts, name, wait).map(Self::new)
    }

    /// Maps an inherited descriptor.
    pub fn from_fd(fd: OwnedFd) -> Result<Arc<Shared>> {
        Named::from_fd(fd).map(Self::new)
    }

    /// Removes the named channel `name`.
    pub fn remove(name: &str) -> Result<()> {
        Named::<Header>::remove(name)
    }

    fn new(seg: Named<Header>) -> Arc<Shared> {
        let Layout { cap, max, key } = *seg.layout();
        Arc::new(Shared {
            seg,
            cap,
            max,
            key,
            adopted: AtomicBool::new(false),
        })
    }

    pub fn header(&self) -> &Header {
        self.seg.header()
    }

    pub fn segment(&self) -> &Segment {
        &self.seg
    }

    /// Whether the segment is whole: the broken mark, and with `slow` its
    /// size too (`fstat`, for waits: a cut that removed no page this
    /// process touches faults nowhere).
    pub fn check(&self, slow: bool) -> Result<()> {
        match slow {
            true => self.seg.check_size(),
            false => self.seg.check_intact(),
        }
    }

    /// `r`, with its error explained by the segment
    /// ([`Segment::explain`]: `Truncated` in its place when the segment is
    /// broken).
    #[inline]
    pub fn or_truncated<T>(&self, r: Result<T>) -> Result<T> {
        r.map_err(|e| self.seg.explain(e))
    }

    /// A ring view over this segment, for an end that publishes (a
    /// sender's, a receiver's); the consumer's head is read once.
    pub fn ring(self: &Arc<Self>) -> Result<Ring<ShmMemory>> {
        self.view(Ring::new)
    }

    /// A ring view that only looks and announces sleepers
    /// ([`Ring::looking`]): what helpers build for each look, with no
    /// system call.
    pub fn looking(self: &Arc<Self>) -> Result<Ring<ShmMemory>> {
        self.view(Ring::looking)
    }

    fn view(
        self: &Arc<Self>,
        make: fn(ShmMemory, u64, u64, u64) -> Result<Ring<ShmMemory>>,
    ) -> Result<Ring<ShmMemory>> {
        let head = self.header().control.head.0.load(Acquire);
        make(
            ShmMemory {
                shared: self.clone(),
                header: self.header() as *const Header,
                data: self.data(),
                cap: self.cap,
                mark: self.seg.mark(),
            },
            self.max,
            self.key,
            head,
        )
    }

    /// The segment's data area.
    fn data(&self) -> *mut u8 {
        // SAFETY: the segment is at least DATA_OFFSET + cap bytes (`Named`
        // checked it against the layout, whose `cap` this is).
        unsafe { self.seg.as_ptr().add(DATA_OFFSET) }
    }

    /// Whether a live sender is attached. A dead one's slot is freed once
    /// its last reservation is resolved (behind the consumer's `head`).
    pub fn any_sender_alive(&self, check_liveness: bool, head: u64) -> bool {
        let mut alive = false;
        for slot in &self.header().senders {
            let w = &slot.0;
            let id = w.id.load(Acquire);
            if id == 0 {
                continue;
            }
            if !check_liveness || Identity::from_raw(id).is_alive() {
                alive = true;
                continue;
            }
            let inflight = w.inflight.load(Relaxed);
            if inflight == 0 || inflight - 1 < head {
                let _ = w.id.compare_exchange(id, 0, Relaxed, Relaxed);
            }
        }
        alive
    }
}

/// A ring's memory: the data area of a channel segment.
///
/// The hot path reads only the copies kept here (not the `Arc`'s shared
/// allocation, whose reference count other threads' ends may be changing).
pub struct ShmMemory {
    shared: Arc<Shared>,
    header: *const Header,
    data: *mut u8,
    cap: u64,
    /// The segment's broken mark (this process's memory, written only
    /// when the segment is found truncated).
    mark: Mark,
}

impl ShmMemory {
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The segment's header.
    pub(crate) fn header(&self) -> &Header {
        // SAFETY: points into the mapping kept alive by `self.shared`.
        unsafe { &*self.header }
    }

    /// Address of `off` in the data area (`off <= cap`).
    pub(crate) fn ptr(&self, off: u64) -> *mut u8 {
        debug_assert!(off <= self.cap);
        // SAFETY: off <= cap, and the data area is cap bytes long.
        unsafe { self.data.add(off as usize) }
    }
}

// SAFETY: `control` and `word` point into the mapping held alive by the Arc;
// `write`/`read` copy within the data area under the caller's bounds.
unsafe impl Memory for ShmMemory {
    fn control(&self) -> &Control {
        &self.header().control
    }

    fn senders(&self) -> &[CacheLine<SenderWords>] {
        &self.header().senders
    }

    fn capacity(&self) -> u64 {
        self.cap
    }

    // Always inlined, as the copies and hints below: once the receive's
    // quick spin was inlined into it, the compiler left this a call, the
    // one between the look that sees a message and its length's check.
    #[inline(always)]
    fn word(&self, off: u64) -> &AtomicU64 {
        assert!(
            off.is_multiple_of(8) && off + 8 <= self.cap,
            "ring word {off}"
        );
        // SAFETY: in bounds and 8-aligned (checked above; the data area is
        // page-aligned); atomics tolerate concurrent writers.
        unsafe { &*(self.ptr(off) as *const AtomicU64) }
    }

    #[inline(always)]
    unsafe fn write(&self, off: u64, src: &[u8]) {
        // SAFETY: the caller guarantees off + src.len() <= cap; the source is
        // private memory, so the ranges do not overlap. The destination is
        // reached through a raw pointer only: no reference to memory a peer
        // may touch is formed (see "Copying memory another process may be
        // writing" in the module docs).
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr(off), src.len()) };
    }

    #[inline(always)]
    unsafe fn read(&self, off: u64, dst: &mut [u8]) {
        // SAFETY: as in `write`, in the other direction: a raw source in
        // the mapping, a private destination; what a racing peer can do to
        // the bytes is said in the module docs.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr(off), dst.as_mut_ptr(), dst.len()) };
    }

    #[inline(always)]
    fn check(&self) -> Result<()> {
        if self.mark.is_set() {
            return Err(self.shared.seg.truncated());
        }
        Ok(())
    }

    fn wake(&self, word: &AtomicU32) {
        crate::sys::futex::wake_all(word);
    }

    #[inline(always)]
    fn prefetch(&self, off: u64) {
        if off < self.cap {
            crate::sys::mem::prefetch_read(self.ptr(off));
        }
    }

    #[inline(always)]
    fn prefetch_write(&self, off: u64) {
        if off < self.cap {
            crate::sys::mem::prefetch_write(self.ptr(off));
        }
    }

    /// Registered for `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`: this
    /// process publishes with plain stores.
    fn plain_publish(&self) -> bool {
        PLAIN_PUBLISH && crate::sys::membarrier::register()
    }

    /// `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`: a barrier in every
    /// running thread of every registered process (the publishers).
    fn fence_others(&self) -> bool {
        if !PLAIN_PUBLISH || self.fault(super::fault::Fault::SkipBarrier) {
            return true;
        }
        crate::sys::membarrier::fence_others()
    }
}
