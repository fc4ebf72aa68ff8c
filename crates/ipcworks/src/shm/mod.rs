//! Shared memory segments: named (`shm_open`) and anonymous (`memfd_create`).
//!
//! Shared memory is the fastest way for processes to communicate: once the
//! segment is mapped, the kernel steps out and both processes read and write
//! the same physical pages. It is also the easiest to get wrong, so a
//! [`Segment`] only hands out raw pointers; the typed mechanisms built on it
//! ([`crate::sync`], channels, queues) decide how the bytes are used.
//!
//! ```no_run
//! use ipcworks::shm::Segment;
//!
//! # fn main() -> ipcworks::Result<()> {
//! let seg = Segment::options().size(1 << 20).mode(0o600).create("ipcworks-demo")?;
//! assert_eq!(seg.len(), 1 << 20);
//! // The creator unlinks the name when `seg` is dropped, unless `persist()`ed.
//! # Ok(())
//! # }
//! ```
//!
//! # Objects in a segment of their own
//!
//! The channel, the native queue, the mutex and the semaphore each live in
//! a segment of their own, `/dev/shm/ipcworks.KIND.NAME` (`chan`, `queue`,
//! `mutex`, `sem`) or an anonymous one, behind a header of atomics. One
//! helper here builds them all alike: the name and its prefix, creation
//! with an exact mode, the owner/mode/symlink checks of
//! [`SegmentOptions::open`], the header's magic word written last by the
//! creator and waited for (up to a second) by an opener, older layouts and
//! unknown versions refused with [`Error::Refused`](crate::Error::Refused),
//! the layout checked against the segment's length, and the truncation
//! check after the header is read. `ipcworks ls` finds them by the same
//! prefixes. (Changed in this version: the helper waits for the magic
//! itself; `shm::await_magic` is no longer public.)
//!
//! # A peer that truncates the segment
//!
//! Any process that may open `/dev/shm/NAME` for writing may also
//! `ftruncate` it. The pages past the new end vanish from every mapping,
//! and touching one raises `SIGBUS`, whose default action kills the
//! process — a one-line denial of service against every user of the
//! segment. ipcworks makes it an error instead, in two ways:
//!
//! - **Anonymous segments are sealed**: [`SegmentOptions::anonymous`]
//!   seals its `memfd` with `F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`, so
//!   nobody holding the descriptor can change its size (`ftruncate` fails
//!   with `EPERM`).
//! - **Every segment is watched**: its mapping is entered in a table that
//!   a `SIGBUS` handler, installed once with the first segment, consults.
//!   A fault inside one of our mappings is answered by mapping private
//!   zero pages over the lost part (the faulting access then completes,
//!   on zeros) and setting the segment's *broken* mark; every other
//!   `SIGBUS` goes to the handler the application (or std) had installed
//!   before, or takes the default action, exactly as without us.
//!   Everything built on segments checks the mark after it copies out of
//!   shared memory and before it hands the data over, commits a receive
//!   or reports a send, and its waits look at the object's size every
//!   slice, so a truncation becomes [`Error::Truncated`](crate::Error::Truncated)
//!   (see [`Segment::check_intact`]).
//!
//! Why not seal named segments too, handing out `memfd`s through a
//! descriptor handshake? A `/dev/shm` file cannot be sealed (tmpfs allows
//! seals only on `memfd`s: `F_ADD_SEALS` fails), so a sealed object has no
//! name: opening one by name would need a live process to hand its
//! descriptor over a socket. Named queues, semaphores and lock mutexes
//! persist with no process attached, like the kernel's, and C or Python
//! peers open them by name; a handshake would break both. The handler
//! covers named and anonymous segments alike, and sealing stays where it
//! costs nothing.
//!
//! A cut inside the last page a process has mapped removes no page: the
//! kernel zeroes the bytes past the new end, and the processes keep
//! sharing the page. That is indistinguishable from a peer writing zeros
//! (the objects treat it as any scribble: checked, never trusted); only a
//! size check (`fstat`, done by waiting code every slice) can tell.

pub(crate) mod fault;
#[cfg(not(loom))]
mod named;
mod segment;

#[cfg(not(loom))]
pub(crate) use named::{Header, Named, PUBLISH_WAIT};
pub use segment::{Segment, SegmentOptions};
