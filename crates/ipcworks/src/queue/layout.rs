//! The queue's segment layout: a header, a table of slot records, and the
//! payload area. Every field is an atomic (peers write them), and every
//! value read from it is checked before use.
//!
//! ```text
//! 0      Header (192 bytes). Line 0: magic, geometry, the mutex and the
//!        counters every operation updates under it (commit sequence,
//!        ready and free slots); line 1: slots busy outside the lock,
//!        registered sleepers, the two wake-up semaphores; line 2: the
//!        recovery counters
//! 192    Slot records, 32 bytes each: state and receive count, priority,
//!        length, sequence, owner
//! …      payloads, `stride` bytes each (max message rounded up to 8)
//! ```

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

use crate::sync::{MutexState, SemaphoreState};
use crate::{Error, Result};

/// "ipcwQUE2": written last by the creator; openers wait for it. (Version 1
/// segments, whose semaphores counted slots, are refused by their magic.)
pub(super) const MAGIC: u64 = u64::from_le_bytes(*b"ipcwQUE2");
pub(super) const VERSION: u32 = 2;
pub(super) const HEADER_SIZE: usize = 192;
pub(super) const SLOT_SIZE: usize = 32;

/// Slot states (the `state` word of a [`Slot`]). All zero is `FREE`.
pub(super) const FREE: u32 = 0;
/// A sender owns the slot and is copying its payload in.
pub(super) const WRITING: u32 = 1;
/// A complete message waits to be received.
pub(super) const READY: u32 = 2;
/// A receiver owns the slot and is copying its payload out.
pub(super) const READING: u32 = 3;

/// Most slots a queue may have.
pub const MAX_CAPACITY: usize = 1 << 16;
/// Largest message a queue may be created for (16 MiB).
pub const MAX_MESSAGE: usize = 16 << 20;
/// Largest segment a queue may use (1 GiB).
const MAX_SEGMENT: usize = 1 << 30;

/// The first 192 bytes of the segment. Every operation locks the mutex
/// and updates the counters beside it, so they share one cache line (one
/// line moves between the two sides per lock hand-over); the words
/// written only around sleeps live on the next line, where they stay
/// cached on both sides.
#[repr(C)]
pub(super) struct Header {
    pub magic: AtomicU64,
    pub version: AtomicU32,
    pub capacity: AtomicU32,
    pub max_message: AtomicU32,
    pub stride: AtomicU32,
    pub layout: AtomicU64,
    /// Guards the slot table and every counter below.
    pub mutex: MutexState,
    /// The commit sequence: the next READY slot gets this number.
    pub next_seq: AtomicU64,
    /// Slots READY (a hint read without the lock; exact under it).
    pub ready: AtomicU32,
    /// Slots FREE (likewise).
    pub free_slots: AtomicU32,
    /// Slots WRITING or READING while their owner copies outside the lock
    /// (messages above the inline size): when non-zero, a caller that
    /// finds nothing looks for dead owners.
    pub busy: AtomicU32,
    /// Receivers registered (under the lock) as asleep or about to sleep
    /// on `filled`.
    pub recv_sleepers: AtomicU32,
    /// Senders registered as asleep or about to sleep on `free`.
    pub send_sleepers: AtomicU32,
    pub _pad: AtomicU32,
    /// Wake-up permits for sleeping senders (the textbook `empty`
    /// semaphore, posted when a slot is freed while a sender sleeps).
    pub free: SemaphoreState,
    /// Wake-up permits for sleeping receivers (the textbook `full`
    /// semaphore, posted when a message is committed while a receiver
    /// sleeps).
    pub filled: SemaphoreState,
    /// Half-done operations of dead processes undone by recovery.
    pub recovered_sends: AtomicU64,
    pub recovered_recvs: AtomicU64,
}

const _: () = assert!(std::mem::size_of::<Header>() <= HEADER_SIZE);
const _: () = assert!(std::mem::align_of::<Header>() == 8);
const _: () = assert!(std::mem::offset_of!(Header, mutex) == 32);
const _: () = assert!(std::mem::offset_of!(Header, free_slots) == 60);
const _: () = assert!(std::mem::offset_of!(Header, busy) == 64);
const _: () = assert!(std::mem::offset_of!(Header, recovered_sends) == 128);

/// One slot record.
#[repr(C)]
pub(super) struct Slot {
    /// The state (bits 0..8) and how many receives this slot has completed
    /// (bits 8..64). One word, so a receive's commit (READING → FREE, count
    /// + 1) is one store that a crash cannot split.
    pub word: AtomicU64,
    pub priority: AtomicU32,
    pub len: AtomicU32,
    /// Commit sequence of a READY (or READING) message.
    pub seq: AtomicU64,
    /// The process ([`Identity`](crate::sys::proc::Identity)) that owns a
    /// WRITING or READING slot.
    pub owner: AtomicU64,
}

const STATE_MASK: u64 = 0xFF;

impl Slot {
    /// The state (unchecked: callers reject unknown values).
    pub fn state(&self) -> u32 {
        (self.word.load(Relaxed) & STATE_MASK) as u32
    }

    /// Receives completed through this slot.
    pub fn receives(&self) -> u64 {
        self.word.load(Relaxed) >> 8
    }

    /// Sets the state, keeping the count (under the lock: one writer).
    pub fn set_state(&self, st: u32) {
        let w = self.word.load(Relaxed);
        self.word.store((w & !STATE_MASK) | st as u64, Relaxed);
    }

    /// The receive commit: FREE and one more receive, in one store.
    pub fn commit_receive(&self) {
        let w = self.word.load(Relaxed);
        self.word
            .store(((w >> 8).wrapping_add(1) << 8) | FREE as u64, Relaxed);
    }
}

const _: () = assert!(std::mem::size_of::<Slot>() == SLOT_SIZE);

/// The geometry of one queue, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Geometry {
    pub capacity: usize,
    pub max_message: usize,
    pub stride: usize,
    pub payload_off: usize,
    pub size: usize,
}

impl Geometry {
    /// The layout for `capacity` slots of `max_message` bytes, or why not.
    pub fn new(capacity: usize, max_message: usize) -> Result<Geometry> {
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
        let stride = max_message.div_ceil(8) * 8;
        let payload_off = (HEADER_SIZE + SLOT_SIZE * capacity).div_ceil(64) * 64;
        let size = stride
            .checked_mul(capacity)
            .and_then(|p| p.checked_add(payload_off))
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
            payload_off,
            size,
        })
    }

    /// The geometry a header claims, checked against the segment's length.
    pub fn from_header(
        capacity: u32,
        max_message: u32,
        stride: u32,
        layout: u64,
        len: usize,
    ) -> Result<Geometry> {
        let bad = || {
            Error::corrupted(format!(
                "queue header says {capacity} slots of {max_message} bytes (stride {stride}) in \
                 {layout} bytes; the segment has {len}"
            ))
        };
        let g = Geometry::new(capacity as usize, max_message as usize).map_err(|_| bad())?;
        if g.stride != stride as usize || g.size as u64 != layout || g.size > len {
            return Err(bad());
        }
        Ok(g)
    }

    /// Byte offset of slot record `i` (< capacity).
    pub fn slot_off(&self, i: usize) -> usize {
        HEADER_SIZE + SLOT_SIZE * i
    }

    /// Byte offset of slot `i`'s payload (< capacity).
    pub fn payload(&self, i: usize) -> usize {
        self.payload_off + self.stride * i
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_checks_its_bounds() {
        let g = Geometry::new(64, 8192).unwrap();
        assert_eq!(g.payload(0) % 64, 0);
        assert_eq!(g.size, g.payload(63) + 8192);
        assert!(Geometry::new(0, 1).is_err());
        assert!(Geometry::new(1, 0).is_err());
        assert!(Geometry::new(MAX_CAPACITY + 1, 1).is_err());
        assert!(Geometry::new(MAX_CAPACITY, MAX_MESSAGE).is_err());
        assert!(Geometry::from_header(64, 8192, 8192, g.size as u64, g.size).is_ok());
        assert!(Geometry::from_header(64, 8192, 8192, g.size as u64, g.size - 1).is_err());
        assert!(Geometry::from_header(64, 8192, 8, g.size as u64, g.size).is_err());
        assert!(Geometry::from_header(u32::MAX, u32::MAX, 8, 0, g.size).is_err());
    }
}
