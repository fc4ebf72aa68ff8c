//! Beyond one machine: messages over [Zenoh](https://zenoh.io) (feature
//! `zenoh`), the engine behind the `zenoh:KEYEXPR` endpoint.
//!
//! # The concept
//!
//! Every other mechanism of this crate stops at the machine's edge. Zenoh
//! is a publish/subscribe engine that carries messages between processes
//! on one host or many: a *publisher* puts samples on a *key expression*
//! (`site/jobs`), and every *subscriber* whose key expression intersects it
//! (`site/jobs`, `site/*`, `site/**`) receives them. Peers talk to each
//! other directly over TCP (no server to run); a deployment that grows adds
//! Zenoh routers, TLS and access control through a configuration file.
//!
//! This module wraps it in the crate's one message interface: a
//! [`Sender`] is a [`MessageSender`](crate::message::MessageSender) that
//! publishes, a [`Receiver`] a
//! [`MessageReceiver`](crate::message::MessageReceiver) that subscribes,
//! both on a [`Session`] opened from a [`Config`].
//!
//! # What it guarantees, and what not
//!
//! - **Explicit addresses only.** A session listens and connects where its
//!   [`Config`] says, and nowhere else: Zenoh's multicast scouting and
//!   gossip are off unless a configuration file turns them on (see
//!   [`config`]).
//! - **No loss at the start.** Zenoh publication is fire-and-forget: a
//!   sample put before a subscriber's declaration reached the publisher
//!   goes to nobody. A [`Sender`] therefore waits, when it opens, until a
//!   subscriber matches ([`SenderBuilder::wait_for_subscriber`], 5 s by
//!   default, else [`Error::NoSubscriber`]), and each send waits for a
//!   matching subscriber within its deadline, as a send to a full queue
//!   waits for room.
//! - **Reliable, in order, with backpressure.** Samples are published
//!   with `Reliability::Reliable` and `CongestionControl::Block` over TCP:
//!   one publisher's messages arrive in order, and a subscriber that does
//!   not keep up slows the publisher down (its queue holds
//!   [`ReceiverBuilder::capacity`] samples) instead of losing messages.
//! - **No disconnect.** Publish/subscribe has no end of stream: a
//!   [`Receiver`] waits for ever for the next sample, and a publisher
//!   whose subscribers are gone waits for the next one. A message already
//!   on its way when the receiving process dies is lost: exactly-once
//!   delivery across hosts is the job of the store-and-forward relay.
//! - **Sizes.** Each end refuses messages over its maximum
//!   ([`Error::MessageTooLarge`]; [`DEFAULT_MAX_MESSAGE`] unless set). A
//!   receiver that gets a larger sample from a foreign publisher reports
//!   that error for it and goes on with the next.
//!
//! # Interoperating with plain Zenoh programs
//!
//! The message is the sample's payload, byte for byte; the metadata
//! ([`Meta`](crate::message::Meta): priority, System V type) rides in the
//! sample's attachment, in the small versioned format documented in
//! [`attachment`]. A message with the default metadata goes out without an
//! attachment, so every Zenoh program — any language, any Zenoh 1.x
//! binding — reads what ipcworks publishes as ordinary samples, and a
//! sample any Zenoh program puts is a message here (with the default
//! metadata when it has no ipcworks attachment). Delete samples
//! (`session.delete(key)`) carry no message and are skipped.
//!
//! # Example
//!
//! Two sessions in one process, one listening on a port the kernel picks,
//! the other connecting to it (two hosts would do the same with their own
//! addresses):
//!
//! ```
//! use std::time::Duration;
//! use ipcworks::bridge::{Config, Session};
//! use ipcworks::message::{MessageReceiver, MessageSender, Meta};
//!
//! # fn main() -> ipcworks::Result<()> {
//! let mut here = Config::new();
//! here.listen("tcp/127.0.0.1:0");
//! let here = Session::open(&here)?;
//! let mut rx = here.receiver("demo/**").open()?;
//!
//! let mut there = Config::new();
//! there.connect(here.listening()[0].clone()); // e.g. tcp/127.0.0.1:40123
//! let there = Session::open(&there)?;
//! // Waits (up to 5 s) until `rx`'s subscription has reached it.
//! let mut tx = there.sender("demo/greeting").open()?;
//!
//! tx.send(b"hello")?;
//! tx.send_with(b"urgent", Meta::with_priority(9))?;
//! assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), b"hello");
//! let (msg, meta) = rx.recv_with_meta()?;
//! assert_eq!((msg.as_slice(), meta.priority), (&b"urgent"[..], 9));
//! # Ok(())
//! # }
//! ```

use crate::{Error, Result};

pub mod attachment;
pub mod config;
mod pubsub;
pub mod relay;

pub use config::Config;
pub use pubsub::{Receiver, ReceiverBuilder, Sender, SenderBuilder};
/// The Zenoh crate this module is built on (1.x), for what it does not
/// wrap: [`Session::zenoh`] hands out its session.
pub use zenoh;
use zenoh::Wait;

/// The largest message a [`Sender`] or [`Receiver`] takes unless told
/// otherwise: 16 MiB, as for framed byte streams.
pub const DEFAULT_MAX_MESSAGE: usize = crate::frame::DEFAULT_MAX;

/// An open Zenoh session (`zenoh::open`): one participant in the Zenoh
/// network, listening and connected as its [`Config`] says. Senders and
/// receivers are opened on it; it closes (flushing what its senders put)
/// when it and everything opened on it are dropped.
#[derive(Clone)]
pub struct Session {
    z: zenoh::Session,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("zid", &self.zid())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Opens a session as `config` says (`zenoh::open`): binds its
    /// listeners and connects to its peers, each of which must answer
    /// within the connect timeout.
    ///
    /// Errors: [`Error::InvalidConfig`] (see [`Config::to_zenoh`]),
    /// [`Error::Zenoh`] when a listener cannot bind or a peer cannot be
    /// reached.
    pub fn open(config: &Config) -> Result<Session> {
        let z = config.to_zenoh()?;
        match zenoh::open(z).wait() {
            Ok(z) => Ok(Session { z }),
            Err(e) => {
                let text = config::one_line(&e.to_string());
                let eps = config.connect_endpoints().join(", ");
                let reason = if text.contains("Unable to connect") && !eps.is_empty() {
                    format!(
                        "cannot reach {eps}: nothing answered there in time (start the \
                         other side first, listening there: --listen {eps})"
                    )
                } else {
                    text
                };
                Err(Error::Zenoh { op: "open", reason })
            }
        }
    }

    /// This session's Zenoh id, in hexadecimal.
    pub fn zid(&self) -> String {
        self.z.zid().to_string()
    }

    /// The endpoints this session listens on, with the real port where
    /// port 0 was asked (`tcp/127.0.0.1:40123`): what a peer connects to.
    pub fn listening(&self) -> Vec<String> {
        self.z
            .info()
            .locators()
            .wait()
            .into_iter()
            .map(|l| l.to_string())
            .collect()
    }

    /// The Zenoh ids of the peers this session is connected to now.
    pub fn peers(&self) -> Vec<String> {
        self.z
            .info()
            .peers_zid()
            .wait()
            .map(|z| z.to_string())
            .collect()
    }

    /// Calls `f` for every link to a peer that is up now and, from then
    /// on, whenever one comes up or goes down, for as long as the session
    /// is open (Zenoh's link events, in a Zenoh thread: `f` must not
    /// block).
    pub fn watch_links(&self, f: impl Fn(LinkChange) + Send + Sync + 'static) -> Result<()> {
        self.z
            .info()
            .link_events_listener()
            .history(true)
            .callback(move |ev| {
                let l = ev.link();
                f(LinkChange {
                    up: ev.kind() == zenoh::sample::SampleKind::Put,
                    peer: l.zid().to_string(),
                    local: l.src().to_string(),
                    remote: l.dst().to_string(),
                })
            })
            .background()
            .wait()
            .map_err(config::zenoh_error("declare link events listener"))
    }

    /// A sender publishing on `key` (a key expression such as
    /// `site/jobs`): set its options, then [`open`](SenderBuilder::open)
    /// it.
    pub fn sender(&self, key: &str) -> SenderBuilder {
        SenderBuilder::new(self.clone(), key)
    }

    /// A receiver subscribed to `key` (a key expression, wildcards
    /// allowed: `site/*`, `site/**`): set its options, then
    /// [`open`](ReceiverBuilder::open) it.
    pub fn receiver(&self, key: &str) -> ReceiverBuilder {
        ReceiverBuilder::new(self.clone(), key)
    }

    /// The Zenoh session itself, for what this module does not wrap
    /// (queries, liveliness, …).
    pub fn zenoh(&self) -> &zenoh::Session {
        &self.z
    }
}

/// A link to a peer that came up or went down ([`Session::watch_links`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkChange {
    /// Up (connected) or down (gone).
    pub up: bool,
    /// The peer's Zenoh id.
    pub peer: String,
    /// This side's address of the link (`tcp/127.0.0.1:7447`).
    pub local: String,
    /// The peer's address of the link.
    pub remote: String,
}

/// Checks that `key` is a valid, canonical Zenoh key expression
/// (`site/jobs`, `site/*`, `site/**`): non-empty chunks separated by `/`,
/// no `#`, `?` or `$` outside the `$*` wildcard, `**` not repeated.
/// Returns Zenoh's reason when it is not.
pub fn check_key(key: &str) -> std::result::Result<(), String> {
    zenoh::key_expr::keyexpr::new(key)
        .map(|_| ())
        .map_err(|e| config::one_line(&e.to_string()))
}
