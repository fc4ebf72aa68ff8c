//! # ipcworks
//!
//! Communication and synchronization between threads and processes on Linux,
//! each mechanism an operating-systems course names done properly:
//!
//! | concept | module |
//! |---|---|
//! | shared memory segments | [`shm`] |
//! | robust mutex, semaphores, futex | [`sync`] |
//! | POSIX and System V message queues | [`mq`] |
//! | native shared-memory priority queue | [`queue`] |
//! | anonymous pipes, FIFOs, full duplex | [`pipe`] |
//! | length-prefixed and line framing | [`frame`] |
//! | messages over any byte stream (pipe, FIFO, socket, stdio) | [`stream`] |
//! | Unix and TCP sockets, client and server | [`socket`] |
//! | lock-free channel over shared memory (`shm:NAME`) | [`channel`] |
//! | memory regions, children tied to this process, clean-up on signals | [`process`] |
//! | messages across hosts over Zenoh (`zenoh:KEYEXPR`, feature `zenoh`) | `bridge` |
//!
//! Every message mechanism — the channel, the native queue, POSIX and
//! System V queues, framed byte streams — implements one interface,
//! [`message::MessageSender`] and [`message::MessageReceiver`] (`send`,
//! `try_send`, `send_timeout`, `recv`, `try_recv`, `recv_timeout`,
//! `iter`, with crossbeam's per-operation errors and one
//! [`Deadline`](message::Deadline) type), so code can be written once for
//! all of them. On top, [`endpoint`] names a mechanism in one string
//! (`shm:jobs`, `mq:jobs`, `tcp:127.0.0.1:7000`, …) and opens it as that
//! interface: what the `ipcworks` command's `send`, `recv` and `relay`
//! use.
//!
//! Everything here talks to the kernel through one thin private layer
//! (`sys`, as rustix keeps its backend); the modules above it are safe
//! Rust. Everything read from shared memory is treated as untrusted:
//! another process may be buggy or hostile.
//!
//! # Features
//!
//! `serde` and `server` are on by default; `default-features = false`
//! leaves out their dependencies.
//!
//! - `serde`: typed messages, serde values encoded with postcard (the
//!   channel's `send_typed`/`recv_typed`, `send_value`/`recv_value` on
//!   framed streams and Unix sockets), and `Serialize` for the records of
//!   [`inventory`] and [`process::regions()`].
//! - `server`: the event-driven [`socket::Server`] (epoll through mio).
//! - `zenoh` (off by default): the `zenoh:KEYEXPR` endpoint and the
//!   `bridge` module, messages across hosts through Zenoh peers over TCP.
//!
//! Off by default:
//!
//! - `tokio`: async forms of the blocking calls on tokio (module `tokio`):
//!   channel, native queue, semaphore, POSIX and System V queues, framed
//!   streams, and the async twins of the message interface, all
//!   cancel-safe.
//!
//! ```no_run
//! use ipcworks::shm::Segment;
//!
//! # fn main() -> ipcworks::Result<()> {
//! // Process A creates a 4 KiB segment, mode 0600, removed when `seg` drops.
//! let seg = Segment::create("ipcworks-doc-example", 4096)?;
//! // Process B opens it by name.
//! let other = Segment::open("ipcworks-doc-example")?;
//! assert_eq!(other.len(), seg.len());
//! # Ok(())
//! # }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
// Under `--cfg loom` only the lock-free protocols are built (see
// `primitive`): most of the private kernel layer then goes unused.
#![cfg_attr(loom, allow(dead_code))]

#[cfg(not(target_os = "linux"))]
compile_error!(
    "ipcworks supports Linux only: it is built on futexes, /proc, memfd and Linux's IPC system calls"
);

#[cfg(all(feature = "zenoh", not(loom)))]
pub mod bridge;
#[cfg(not(loom))]
pub mod channel;
/// Under `--cfg loom` only the ring protocol is built, with loom's atomics.
#[cfg(loom)]
pub mod channel {
    mod fault;
    #[cfg(test)]
    mod loom_model;
    mod publish;
    mod recovery;
    mod ring;
    mod wake;
}
#[cfg(not(loom))]
pub mod endpoint;
mod error;
#[doc(hidden)]
pub mod fault;
pub mod frame;
// Not under `--cfg loom`: it reads the prefixes of objects built only
// without loom.
#[cfg(not(loom))]
pub mod inventory;
pub mod message;
pub mod mq;
pub mod name;
pub mod pipe;
mod primitive;
pub mod process;
#[cfg(not(loom))]
pub mod queue;
/// Under `--cfg loom` only the queue's slot and wake-up protocols are
/// built, with loom's atomics.
#[cfg(loom)]
pub mod queue {
    pub(crate) mod dedup;
    #[cfg(test)]
    mod loom_model;
    #[cfg(test)]
    mod loom_wake;
    pub(crate) mod slots;
    pub(crate) mod wake;
}
pub mod registry;
/// The relay pair's wire format (`bridge::relay`), built without Zenoh too
/// so that its decoders can be fuzzed.
#[cfg(not(loom))]
pub(crate) mod relay_wire;
pub mod shm;
pub mod socket;
pub mod stream;
pub mod sync;
mod sys;
#[cfg(all(feature = "tokio", not(loom)))]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub mod tokio;
#[cfg(not(loom))]
pub mod waitset;

#[doc(hidden)]
#[path = "bench_support.rs"]
pub mod __bench;

/// What `fuzz/` drives: parsers of bytes that a peer sends, reached
/// without the features that carry them.
///
/// **No stability promise**: hidden from the documentation; not for use
/// outside this workspace.
#[doc(hidden)]
#[cfg(not(loom))]
pub mod __fuzz {
    /// Decodes `b` as a relay query (a near relay's, as the far relay
    /// does: messages over `max` bytes and forget lists over `max_forget`
    /// ids refused) and, if it decodes, encodes it again.
    pub fn relay_request(b: &[u8], max: usize, max_forget: usize) -> Result<Vec<u8>, String> {
        crate::relay_wire::Request::decode(b, max, max_forget).map(|r| r.encode())
    }

    /// Decodes `b` as a relay reply (the far relay's, as the near relay
    /// does) and, if it decodes, encodes it again.
    pub fn relay_reply(b: &[u8]) -> Result<Vec<u8>, String> {
        crate::relay_wire::Reply::decode(b).map(|r| r.encode())
    }
}

pub use error::{Error, Result};
