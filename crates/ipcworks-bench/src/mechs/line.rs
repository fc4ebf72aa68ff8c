//! Two 32-bit words in one cache line of an anonymous shared mapping
//! (`memfd_create` + `mmap(MAP_SHARED)`, inherited by the peer): the ping
//! word the parent writes and the pong word the peer writes. Used by the
//! `floor` and `futex` mechanisms.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU32, Ordering};

use ipcworks::shm::Segment;

use crate::harness::set_tag;

const PING: usize = 0;
const PONG: usize = 4;

/// One side's view of the shared line.
pub struct Line {
    seg: Segment,
    tx: usize,
    rx: usize,
    last: u32,
}

impl Line {
    /// Parent: a fresh line and a descriptor for the peer.
    pub fn create() -> io::Result<(Line, OwnedFd)> {
        let seg = Segment::anonymous(4096).map_err(io::Error::from)?;
        let fd = super::fd::handed(&seg)?;
        Ok((
            Line {
                seg,
                tx: PING,
                rx: PONG,
                last: 0,
            },
            fd,
        ))
    }

    /// Peer: maps the line handed over.
    pub fn open(fd: OwnedFd) -> io::Result<Line> {
        let seg = Segment::from_fd(fd).map_err(io::Error::from)?;
        if seg.len() < 64 {
            return Err(io::Error::other("shared line mapping too small"));
        }
        Ok(Line {
            seg,
            tx: PONG,
            rx: PING,
            last: 0,
        })
    }

    fn word(&self, off: usize) -> &AtomicU32 {
        // SAFETY: the mapping is page-aligned and at least 64 bytes long
        // (checked at open), `off` is 0 or 4, so the word is aligned and in
        // bounds; it lives as long as `self.seg`, which `&self` borrows. Both
        // processes only ever access it atomically.
        unsafe { AtomicU32::from_ptr(self.seg.as_ptr().add(off).cast::<u32>()) }
    }

    /// The word this side writes.
    pub fn tx(&self) -> &AtomicU32 {
        self.word(self.tx)
    }

    /// The word the other side writes.
    pub fn rx(&self) -> &AtomicU32 {
        self.word(self.rx)
    }

    /// Publishes the message's tag.
    pub fn send(&self, msg: &[u8]) {
        self.tx().store(crate::harness::tag(msg), Ordering::Release);
    }

    /// If the other side published a new tag, copies it into `buf`.
    pub fn try_recv(&mut self, buf: &mut [u8]) -> bool {
        let v = self.rx().load(Ordering::Acquire);
        if v == self.last {
            return false;
        }
        self.last = v;
        set_tag(buf, v);
        true
    }

    /// The last tag received (what a futex waiter expects to change).
    pub fn last(&self) -> u32 {
        self.last
    }
}
