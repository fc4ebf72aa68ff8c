//! The queue's segment layout: a header, then one slot per message, each
//! a 48-byte record followed by its payload. Every field is an atomic
//! (peers write them), and every value read from it is checked before
//! use.
//!
//! ```text
//! 0      Header (192 bytes). Line 0: magic, geometry, the recovery mutex,
//!        the recovery counters; line 1: the commit sequence (senders
//!        only) and the queue's origin id (written once, at creation);
//!        line 2: registered sleepers and the two wake-up semaphores
//!        (written only around sleeps)
//! 192    the relayed-message table: `relay_window` entries of 32 bytes
//!        (origin, sequence, the relaying source's origin, state; see
//!        `dedup.rs`), rounded up to 64 bytes
//! …      slot 0: record (word, owner, sequence, priority, length, the
//!        message's origin and origin sequence), then the payload;
//!        `stride` bytes per slot (48 + max message, rounded up to 64 so
//!        each slot starts a cache line)
//! …      slot 1, …, the last slot at the segment's end
//! ```
//!
//! The table lies before the slots, not after them: a peer that cuts the
//! segment's tail takes slot pages, which every receive's look reads, so
//! the cut is noticed (SIGBUS caught, `Truncated`) by the queue's users at
//! once; a table at the end would be cut away unnoticed by everything but
//! a relayed send.
//!
//! The slot word (state, owner pid, receive count) and the steps over it
//! are in `slots.rs`.

use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicU32, AtomicU64};

use crate::shm;
use crate::sync::{MutexState, SemaphoreState};
use crate::{Error, Result};

pub(super) const HEADER_SIZE: usize = 192;
/// Bytes of a slot's record, before its payload.
pub(super) const RECORD_SIZE: usize = 48;

/// Most slots a queue may have.
pub const MAX_CAPACITY: usize = 1 << 16;
/// Largest message a queue may be created for (16 MiB).
pub const MAX_MESSAGE: usize = 16 << 20;
/// Most entries a queue's relayed-message table may have.
pub const MAX_RELAY_WINDOW: usize = 1 << 14;
/// Default entries of a queue's relayed-message table (see
/// [`QueueOptions::relay_window`](super::QueueOptions::relay_window)).
pub const DEFAULT_RELAY_WINDOW: usize = 256;
/// Bytes of a relayed-message table entry.
pub(super) const ENTRY_SIZE: usize = 32;
/// Largest segment a queue may use (1 GiB).
const MAX_SEGMENT: usize = 1 << 30;

/// The first 192 bytes of the segment.
#[repr(C)]
pub(crate) struct Header {
    pub magic: AtomicU64,
    pub version: AtomicU32,
    pub capacity: AtomicU32,
    pub max_message: AtomicU32,
    pub stride: AtomicU32,
    pub layout: AtomicU64,
    /// Serializes recovery (judging owners, undoing their operations).
    pub mutex: MutexState,
    /// Half-done operations of dead processes undone by recovery.
    pub recovered_sends: AtomicU64,
    pub recovered_recvs: AtomicU64,
    /// The commit sequence: each send takes the next number (on its own
    /// line: only senders touch it).
    pub next_seq: AtomicU64,
    /// The queue's origin id: 64 random bits chosen at creation (never
    /// 0), naming the messages first sent into this queue (see
    /// [`MessageId`](super::MessageId)).
    pub origin: AtomicU64,
    /// Entries of the relayed-message table (written once, at creation).
    pub relay_window: AtomicU64,
    pub _pad: [AtomicU64; 5],
    /// Receivers asleep (or about to sleep) on `filled` (bits 0..16),
    /// and bit 16 (`wake::POLLER`) while a WaitSet watching for a message
    /// may be asleep (see `wake.rs`).
    pub recv_sleepers: AtomicU32,
    /// Senders asleep (or about to sleep) on `free` (the same encoding;
    /// nothing polls for room).
    pub send_sleepers: AtomicU32,
    /// Wake-up permits for sleeping senders (the textbook `empty`
    /// semaphore, posted when a slot is freed while a sender sleeps).
    pub free: SemaphoreState,
    /// Wake-up permits for sleeping receivers (the textbook `full`
    /// semaphore, posted when a message is committed while a receiver
    /// sleeps).
    pub filled: SemaphoreState,
}

const _: () = assert!(std::mem::size_of::<Header>() <= HEADER_SIZE);
const _: () = assert!(std::mem::align_of::<Header>() == 8);
const _: () = assert!(std::mem::offset_of!(Header, mutex) == 32);
const _: () = assert!(std::mem::offset_of!(Header, next_seq) == 64);
const _: () = assert!(std::mem::offset_of!(Header, recv_sleepers) == 128);
// Named by a white-box test that plants a stale permit (tests/it/waitset_queue.rs).
const _: () = assert!(std::mem::offset_of!(Header, filled) == 160);

// SAFETY: `#[repr(C)]`, 8-aligned, atomics only; `magic` is the first
// field.
unsafe impl shm::Header for Header {
    const PREFIX: &'static str = "ipcworks.queue.";
    const KIND: &'static str = "queue";
    const ADDRESS: &'static str = "queue";
    /// "ipcwQUE6": written last by the creator; openers wait for it.
    /// Layout 6: the relayed-message table between the header and the
    /// slots (exactly-once relays, see `dedup.rs`), its size in the header.
    /// Layout 5: 48-byte slot records carrying each message's origin and
    /// origin sequence, the header the queue's origin id, and a READING
    /// slot may be held by a claim (two-phase receive) for as long as its
    /// claimant lives. (Layout 4: the recovery mutex's lock word holds its
    /// holder's full identity, see `sync/mutex/raw.rs`.)
    const MAGIC: u64 = u64::from_le_bytes(*b"ipcwQUE6");
    /// The magics of layouts 1 to 5, refused with a message that says so.
    const OLD_MAGICS: &'static [u64] = &[
        u64::from_le_bytes(*b"ipcwQUE1"),
        u64::from_le_bytes(*b"ipcwQUE2"),
        u64::from_le_bytes(*b"ipcwQUE3"),
        u64::from_le_bytes(*b"ipcwQUE4"),
        u64::from_le_bytes(*b"ipcwQUE5"),
    ];
    /// 5: the wake-up semaphores' `waiters` count pollers too (a
    /// WaitSet's registration; posts then wake everyone). 6: the
    /// sleepers registers hold a pollers' bit (`wake::POLLER`, bit 16): a
    /// WaitSet's helper is a poller, no longer a sleeper taking permits,
    /// and a commit that finds the bit clears it and wakes every sleeper.
    /// 7: layout 5 (origins in the records and the header, claims).
    /// 8: layout 6 (the relayed-message table).
    const VERSION: u64 = 8;
    type Layout = Geometry;

    fn size(g: &Geometry) -> usize {
        g.size
    }

    fn magic(&self) -> &AtomicU64 {
        &self.magic
    }

    fn version(&self) -> u64 {
        self.version.load(SeqCst).into()
    }

    fn init(&self, g: &Geometry) -> Result<()> {
        self.version.store(Self::VERSION as u32, SeqCst);
        self.capacity.store(g.capacity as u32, SeqCst);
        self.max_message.store(g.max_message as u32, SeqCst);
        self.stride.store(g.stride as u32, SeqCst);
        self.layout.store(g.size as u64, SeqCst);
        self.relay_window.store(g.window as u64, SeqCst);
        self.origin
            .store(crate::sys::privdir::random_u64().max(1), SeqCst);
        self.free.init(0)?;
        self.filled.init(0)
    }

    fn validate(&self, len: usize) -> Result<Geometry> {
        Geometry::from_header(
            self.capacity.load(SeqCst),
            self.max_message.load(SeqCst),
            self.stride.load(SeqCst),
            self.layout.load(SeqCst),
            self.relay_window.load(SeqCst),
            len,
        )
    }
}

/// One slot's record (the payload follows it).
#[repr(C)]
pub(super) struct Slot {
    /// State, owner pid and receive count (see the module docs).
    pub word: AtomicU64,
    /// The full [`Identity`](crate::sys::proc::Identity) of the process
    /// that owns a WRITING or READING slot, stored right after its claim
    /// (0 when none: then the pid in the word decides).
    pub owner: AtomicU64,
    /// Commit sequence of the message (written while WRITING).
    pub seq: AtomicU64,
    pub priority: AtomicU32,
    pub len: AtomicU32,
    /// The origin id of the queue the message was first sent into (this
    /// queue's own for a plain send, the source's for a relayed one;
    /// written while WRITING).
    pub origin: AtomicU64,
    /// The message's sequence number in that origin queue.
    pub origin_seq: AtomicU64,
}

const _: () = assert!(std::mem::size_of::<Slot>() == RECORD_SIZE);

/// One entry of the relayed-message table (see `dedup.rs`).
#[repr(C)]
pub(super) struct Entry {
    pub origin: AtomicU64,
    pub seq: AtomicU64,
    /// The origin id of the queue the relay took the message from.
    pub via: AtomicU64,
    pub state: AtomicU64,
}

const _: () = assert!(std::mem::size_of::<Entry>() == ENTRY_SIZE);

/// The geometry of one queue, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub capacity: usize,
    pub max_message: usize,
    pub stride: usize,
    /// Entries of the relayed-message table.
    pub window: usize,
    pub size: usize,
}

impl Geometry {
    /// The layout for `capacity` slots of `max_message` bytes and a
    /// relayed-message table of `window` entries, or why not.
    pub fn new(capacity: usize, max_message: usize, window: usize) -> Result<Geometry> {
        if capacity == 0 || capacity > MAX_CAPACITY {
            return Err(Error::InvalidArgument(format!(
                "queue capacity {capacity} must be between 1 and {MAX_CAPACITY} messages"
            )));
        }
        if max_message == 0 || max_message > MAX_MESSAGE {
            return Err(Error::InvalidArgument(format!(
                "queue max message size {max_message} must be between 1 and {MAX_MESSAGE} bytes"
            )));
        }
        if window == 0 || window > MAX_RELAY_WINDOW {
            return Err(Error::InvalidArgument(format!(
                "queue relay window {window} must be between 1 and {MAX_RELAY_WINDOW} messages"
            )));
        }
        let stride = (RECORD_SIZE + max_message).div_ceil(64) * 64;
        let size = stride
            .checked_mul(capacity)
            .and_then(|p| p.checked_add(HEADER_SIZE + table_bytes(window)))
            .filter(|&s| s <= MAX_SEGMENT)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "a queue of {capacity} messages of {max_message} bytes needs more than \
                     {MAX_SEGMENT} bytes of shared memory"
                ))
            })?;
        Ok(Geometry {
            capacity,
            max_message,
            stride,
            window,
            size,
        })
    }

    /// The geometry a header claims, checked against the segment's length.
    pub fn from_header(
        capacity: u32,
        max_message: u32,
        stride: u32,
        layout: u64,
        window: u64,
        len: usize,
    ) -> Result<Geometry> {
        let bad = || {
            Error::corrupted(format!(
                "queue header says {capacity} slots of {max_message} bytes (stride {stride}) and \
                 {window} relay entries in {layout} bytes; the segment has {len}"
            ))
        };
        let window = usize::try_from(window).map_err(|_| bad())?;
        let g =
            Geometry::new(capacity as usize, max_message as usize, window).map_err(|_| bad())?;
        if g.stride != stride as usize || g.size as u64 != layout || g.size > len {
            return Err(bad());
        }
        Ok(g)
    }

    /// Byte offset of slot record `i` (< capacity).
    pub fn slot_off(&self, i: usize) -> usize {
        HEADER_SIZE + table_bytes(self.window) + self.stride * i
    }

    /// Byte offset of slot `i`'s payload (< capacity).
    pub fn payload(&self, i: usize) -> usize {
        self.slot_off(i) + RECORD_SIZE
    }

    /// Byte offset of relayed-message table entry `k` (< window).
    pub fn entry_off(&self, k: usize) -> usize {
        HEADER_SIZE + ENTRY_SIZE * k
    }
}

/// Bytes of a relayed-message table of `window` entries, rounded up to a
/// cache line (so the slots after it start on one).
fn table_bytes(window: usize) -> usize {
    (window * ENTRY_SIZE).div_ceil(64) * 64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_checks_its_bounds() {
        let g = Geometry::new(64, 8192, 16).unwrap();
        assert_eq!(g.slot_off(0) % 64, 0);
        assert_eq!(g.slot_off(1) % 64, 0);
        // The table between the header and the slots; the last slot ends
        // the segment.
        assert_eq!(g.entry_off(0), HEADER_SIZE);
        assert!(g.entry_off(15) + ENTRY_SIZE <= g.slot_off(0));
        assert!(g.payload(63) + 8192 <= g.size);
        assert_eq!(g.size, g.slot_off(63) + g.stride);
        assert_eq!(Geometry::new(64, 8192, 17).unwrap().slot_off(0) % 64, 0);
        assert!(Geometry::new(0, 1, 1).is_err());
        assert!(Geometry::new(1, 0, 1).is_err());
        assert!(Geometry::new(1, 1, 0).is_err());
        assert!(Geometry::new(1, 1, MAX_RELAY_WINDOW + 1).is_err());
        assert!(Geometry::new(MAX_CAPACITY + 1, 1, 1).is_err());
        assert!(Geometry::new(MAX_CAPACITY, MAX_MESSAGE, 1).is_err());
        let st = g.stride as u32;
        let sz = g.size as u64;
        assert!(Geometry::from_header(64, 8192, st, sz, 16, g.size).is_ok());
        assert!(Geometry::from_header(64, 8192, st, sz, 16, g.size - 1).is_err());
        assert!(Geometry::from_header(64, 8192, st, sz, 17, g.size + 64).is_err());
        assert!(Geometry::from_header(64, 8192, st, sz, u64::MAX, g.size).is_err());
        assert!(Geometry::from_header(64, 8192, 8, sz, 16, g.size).is_err());
        assert!(Geometry::from_header(u32::MAX, u32::MAX, 8, 0, 1, g.size).is_err());
    }
}
