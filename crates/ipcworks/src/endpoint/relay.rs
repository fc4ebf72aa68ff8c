//! Store and forward between two endpoints (`ipcworks relay FROM TO`): a
//! message leaves FROM only once TO has it.
//!
//! # The steps, and what a crash between them leaves
//!
//! For each message a [`Relay`] *receives* it from its [`Source`], *sends*
//! it to its destination, then *commits* (removes it from the source):
//!
//! - **From a native queue** (`queue:`) the receive is two-phase
//!   ([`Queue::recv_claim`]): the message stays in its slot, claimed by
//!   the relay, until the destination accepted it (for a native, POSIX or
//!   System V queue: its send returned); only then does the relay commit.
//!   A relay killed at any moment loses nothing and duplicates nothing:
//!   before the send, the message goes back into the source (the next
//!   receiver recovers the dead relay's claim, at its place within its
//!   priority); between the send and the commit it is in both, and the
//!   restarted relay offers it again with the same [`MessageId`] — a
//!   native queue destination remembers the ids relays delivered into it
//!   ([`Queue::send_relayed`], written in the very step that publishes
//!   the message) and refuses it ([`Delivery::AlreadyDelivered`]). After
//!   the commit the relay tells the destination to forget the id
//!   ([`Queue::forget_relayed`]); a relay killed just before that leaves
//!   the id behind, and the next relay over the same two queues forgets it
//!   when it starts ([`Queue::forget_relayed_from`]).
//!   Into a POSIX or System V queue (no ids there) a kill between the
//!   destination's send and the source's commit still delivers that one
//!   message twice (at most one per kill).
//!   A message the destination refuses (too large, …) is released: it
//!   stays first in line and the relay stops with the error.
//! - **From a POSIX (`mq:`) or System V (`sysv:`) queue** the kernel
//!   removes the message when it is received and has no peek-and-
//!   acknowledge: **one message in the relay's hands when it is killed can
//!   be lost** (at most one per kill; no duplicates). A message the
//!   destination refuses is sent back into the source, behind the others
//!   of its priority or type.
//! - From any other endpoint (a channel, a stream, Zenoh) the receive
//!   takes the message; a relay killed before its send loses it.
//!
//! Abort points (`IPCWORKS_ABORT_AT=relay-received:N`, `relay-sent:N`,
//! `relay-committed:N`, and inside a native destination's relayed send
//! `relayed-pending:N`, `relayed-published:N`; see the hidden `fault`
//! module) let tests kill a relay exactly after a step.
//!
//! ```no_run
//! use ipcworks::endpoint::relay::{Dest, Relay, Source};
//! use ipcworks::endpoint::Options;
//!
//! # fn main() -> ipcworks::Result<()> {
//! let opts = Options::default();
//! let from = Source::open(&"queue:jobs".parse()?, &opts)?;
//! let to = Dest::open(&"queue:done".parse()?, &opts)?;
//! // Moves every message of queue:jobs into queue:done, one at a time.
//! Relay::new(from, to).run(None).map_err(|f| f.error)?;
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::time::Duration;

use super::{Endpoint, Options, open_receiver, open_sender};
use crate::fault::abort_point;
use crate::message::{Deadline, MessageReceiver, MessageSender, Meta};
#[cfg(doc)]
use crate::queue::Delivery;
use crate::queue::{MessageId, Queue};
use crate::{Error, Result};

/// Where a [`Relay`] takes its messages from.
pub enum Source {
    /// A native queue: every message is taken in two phases.
    Queue {
        /// The queue.
        queue: Queue,
        /// Claims of dead processes (a killed relay's message) that
        /// opening it gave back (see [`Source::open`]).
        recovered: u64,
    },
    /// Any other receiver. For a kernel queue (`mq:`, `sysv:`) the
    /// endpoint is kept, to give a refused message back.
    Receiver {
        /// The opened receiver.
        rx: Box<dyn MessageReceiver>,
        /// The endpoint it was opened from.
        ep: Endpoint,
        /// How to open `ep` for sending (to give a message back).
        opts: Options,
    },
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Queue { queue, recovered } => f
                .debug_struct("Queue")
                .field("name", &queue.name())
                .field("recovered", recovered)
                .finish(),
            Source::Receiver { ep, .. } => f.debug_struct("Receiver").field("ep", ep).finish(),
        }
    }
}

impl Source {
    /// Opens `ep` for receiving as [`open_receiver`] does; a `queue:`
    /// endpoint as a native [`Queue`], for its two-phase receive. A queue
    /// is recovered at once ([`Queue::recover`]): the message a killed
    /// predecessor held is ready again before this relay takes its first
    /// one, so it keeps its place within its priority.
    pub fn open(ep: &Endpoint, opts: &Options) -> Result<Source> {
        match ep {
            Endpoint::Queue(name) => {
                let queue = super::queue::open(name, opts, opts.create_queue)?;
                let recovered = match queue.recover() {
                    Ok((_, recvs)) => recvs,
                    // A recoverer stopped while holding the lock: the
                    // relay's waits recover later.
                    Err(Error::Timeout) => 0,
                    Err(e) => return Err(e),
                };
                Ok(Source::Queue { queue, recovered })
            }
            _ => Ok(Source::receiver(open_receiver(ep, opts)?, ep, opts)),
        }
    }

    /// A source over a receiver the caller opened from `ep` (a `zenoh:`
    /// one, say, opened with its own messages). For a `queue:` endpoint,
    /// prefer [`open`](Self::open): a plain receiver takes messages in one
    /// step.
    pub fn receiver(rx: Box<dyn MessageReceiver>, ep: &Endpoint, opts: &Options) -> Source {
        Source::Receiver {
            rx,
            ep: ep.clone(),
            opts: opts.clone(),
        }
    }

    /// Whether a relay killed while it holds a message can lose it
    /// (everything but a native queue: see the [module docs](self)).
    pub fn may_lose_one_per_crash(&self) -> bool {
        !matches!(self, Source::Queue { .. })
    }

    /// For a native queue: how many messages claimed by dead processes
    /// (a killed relay's) opening it made ready again; 0 otherwise.
    pub fn recovered(&self) -> u64 {
        match self {
            Source::Queue { recovered, .. } => *recovered,
            Source::Receiver { .. } => 0,
        }
    }
}

/// Where a [`Relay`] puts its messages.
// One per relay: the size of a queue handle does not matter here.
#[allow(clippy::large_enum_variant)]
pub enum Dest {
    /// A native queue: relayed messages keep their [`MessageId`].
    Queue(Queue),
    /// Any other sender.
    Sender(Box<dyn MessageSender>),
}

impl fmt::Debug for Dest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dest::Queue(q) => f.debug_tuple("Queue").field(&q.name()).finish(),
            Dest::Sender(_) => f.write_str("Sender"),
        }
    }
}

impl Dest {
    /// Opens `ep` for sending as [`open_sender`] does (a missing queue is
    /// created); a `queue:` endpoint as a native [`Queue`].
    pub fn open(ep: &Endpoint, opts: &Options) -> Result<Dest> {
        match ep {
            Endpoint::Queue(name) => Ok(Dest::Queue(super::queue::open(name, opts, true)?)),
            _ => Ok(Dest::Sender(open_sender(ep, opts)?)),
        }
    }

    /// Sends one message, waiting for room; returns once the destination
    /// holds it. A native queue given the message's id (and the relay's
    /// source, `via`) refuses one it already has (see
    /// [`Queue::send_relayed`]): that too means it holds it.
    fn send(&mut self, msg: &[u8], meta: Meta, id: Option<(MessageId, u64)>) -> Result<()> {
        match (self, id) {
            (Dest::Queue(q), Some((id, via))) => q
                .send_relayed(msg, meta.priority, id, via, Deadline::Never)
                .map(|_| ()),
            (Dest::Queue(q), None) => Queue::send(q, msg, meta.priority),
            (Dest::Sender(tx), _) => tx.send_with(msg, meta),
        }
    }
}

/// What became of a message the destination refused.
#[derive(Debug)]
pub enum GivenBack {
    /// Nothing to give back: the destination has it (the step that
    /// failed came after).
    Delivered,
    /// Released in the source native queue: first in line again.
    Released,
    /// Sent back into the source kernel queue (behind the others of its
    /// priority or type).
    Returned,
    /// The source is not a queue: the message is lost.
    NotAQueue,
    /// It could not go back: the error says why.
    Failed(Error),
}

/// Why a [`Relay::run`] stopped early.
#[derive(Debug)]
pub struct Failure {
    /// The error.
    pub error: Error,
    /// Whether it came from the destination (`true`) or the source.
    pub sending: bool,
    /// For a send error: where the message went.
    pub given_back: Option<GivenBack>,
    /// Messages relayed before.
    pub relayed: u64,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.error)?;
        match &self.given_back {
            Some(GivenBack::Released) => write!(f, " (the message stays in the source queue)"),
            Some(GivenBack::Returned) => write!(f, " (the message went back into the source)"),
            Some(GivenBack::Failed(e)) => {
                write!(f, " (the message could not go back into the source: {e})")
            }
            Some(GivenBack::NotAQueue | GivenBack::Delivered) | None => Ok(()),
        }
    }
}

/// A store-and-forward relay from a [`Source`] to a [`Dest`] (see the
/// [module docs](self)).
#[derive(Debug)]
pub struct Relay {
    from: Source,
    to: Dest,
    /// Whether the destination forgot what an earlier relay over the same
    /// queues left behind (done before the first message).
    tidied: bool,
}

impl Relay {
    /// A relay from `from` to `to`.
    pub fn new(from: Source, to: Dest) -> Relay {
        Relay {
            from,
            to,
            tidied: false,
        }
    }

    /// Queue to queue: forgets in the destination the ids a relay killed
    /// between its commit and its `forget` left behind (see
    /// [`Queue::forget_relayed_from`]). Once, before the first message.
    fn tidy(&mut self) -> Result<()> {
        if !self.tidied
            && let (Source::Queue { queue: a, .. }, Dest::Queue(b)) = (&self.from, &self.to)
        {
            b.forget_relayed_from(a)?;
        }
        self.tidied = true;
        Ok(())
    }

    /// Relays messages, one at a time, until `count` messages have gone
    /// (for ever when `None`) or the source's stream ends
    /// ([`Error::Disconnected`]). Returns how many were relayed.
    pub fn run(&mut self, count: Option<u64>) -> std::result::Result<u64, Box<Failure>> {
        let mut n = 0u64;
        while count.is_none_or(|c| n < c) {
            match self.one(Deadline::Never) {
                Ok(true) => n += 1,
                Ok(false) => break,
                Err(mut f) => {
                    f.relayed = n;
                    return Err(f);
                }
            }
        }
        Ok(n)
    }

    /// Relays one message, waiting for it until `until`. `Ok(false)` when
    /// the source's stream ended; a deadline that passes is a
    /// [`Failure`] with [`Error::Timeout`] (or [`Error::WouldBlock`]).
    pub fn one(&mut self, until: Deadline) -> std::result::Result<bool, Box<Failure>> {
        let recv_err = |error| {
            Box::new(Failure {
                error,
                sending: false,
                given_back: None,
                relayed: 0,
            })
        };
        let send_err = |error, back| {
            Box::new(Failure {
                error,
                sending: true,
                given_back: Some(back),
                relayed: 0,
            })
        };
        if let Err(e) = self.tidy() {
            return Err(Box::new(Failure {
                error: e,
                sending: true,
                given_back: None,
                relayed: 0,
            }));
        }
        match &mut self.from {
            Source::Queue { queue: q, .. } => {
                let claim = q.recv_claim_until(until).map_err(recv_err)?;
                abort_point("relay-received");
                let (id, via) = (claim.id(), q.origin());
                if let Err(e) = self.to.send(claim.message(), claim.meta(), Some((id, via))) {
                    let back = match claim.release() {
                        Ok(()) => GivenBack::Released,
                        Err(e) => GivenBack::Failed(e),
                    };
                    return Err(send_err(e, back));
                }
                abort_point("relay-sent");
                claim.commit().map_err(recv_err)?;
                abort_point("relay-committed");
                // Gone from the source: never offered again.
                if let Dest::Queue(b) = &self.to {
                    b.forget_relayed(&[id])
                        .map_err(|e| send_err(e, GivenBack::Delivered))?;
                }
            }
            Source::Receiver { rx, ep, opts } => {
                let (msg, meta) = match rx.recv_until(until) {
                    Ok(m) => m,
                    Err(Error::Disconnected) => return Ok(false),
                    Err(e) => return Err(recv_err(e)),
                };
                abort_point("relay-received");
                if let Err(e) = self.to.send(&msg, meta, None) {
                    return Err(send_err(e, give_back(ep, opts, &msg, meta)));
                }
                abort_point("relay-sent");
                // The kernel removed it when it was received: nothing
                // left to commit.
                abort_point("relay-committed");
            }
        }
        Ok(true)
    }
}

/// Puts a message the destination refused back into a kernel queue
/// source, so that it is not lost.
fn give_back(from: &Endpoint, opts: &Options, msg: &[u8], meta: Meta) -> GivenBack {
    if !matches!(from, Endpoint::Mq(_) | Endpoint::Sysv(_)) {
        return GivenBack::NotAQueue;
    }
    // The room the message left, unless another sender took it meanwhile.
    let deadline = Deadline::after(Duration::from_secs(5));
    match open_sender(from, opts).and_then(|mut q| q.send_until(msg, meta, deadline)) {
        Ok(()) => GivenBack::Returned,
        Err(e) => GivenBack::Failed(e),
    }
}

/// The two ends of a relay pair over Zenoh (`ipcworks relay queue:jobs
/// zenoh:site/jobs` and `ipcworks relay zenoh:site/jobs queue:jobs`):
/// each opened from endpoints, with its Zenoh session as `opts.zenoh`
/// says (see [`bridge::relay`](crate::bridge::relay) for what they
/// guarantee).
#[cfg(feature = "zenoh")]
pub mod pair {
    use super::{Endpoint, Options};
    use crate::bridge::relay::{Destination, Events, QueueToZenoh, RelayOptions, ZenohToQueue};
    use crate::{Error, Result};

    /// The near relay from the native queue `from` (which must exist,
    /// unless `opts.create_queue`) to the far relay on `key`.
    pub fn near(
        from: &Endpoint,
        key: &str,
        opts: &Options,
        relay: RelayOptions,
        events: Events,
    ) -> Result<QueueToZenoh> {
        let Endpoint::Queue(name) = from else {
            return Err(Error::InvalidArgument(format!(
                "a relay pair takes from a native queue (queue:NAME), not {from}"
            )));
        };
        let queue = super::super::queue::open(name, opts, opts.create_queue)?;
        let session = super::super::zenoh::session(opts)?;
        QueueToZenoh::open(queue, session, key, relay, events)
    }

    /// The far relay on `key` into `to`: a native queue (created if
    /// missing), or a POSIX or System V queue with a native queue
    /// `relay-state-mq-NAME` / `relay-state-sysv-KEY` keeping the ids
    /// delivered into it.
    pub fn far(
        key: &str,
        to: &Endpoint,
        opts: &Options,
        relay: RelayOptions,
        events: Events,
    ) -> Result<ZenohToQueue> {
        let dest = || {
            Ok(match to {
                Endpoint::Queue(name) => {
                    Destination::Queue(super::super::queue::open(name, opts, true)?)
                }
                Endpoint::Mq(_) | Endpoint::Sysv(_) => {
                    let state = match to {
                        Endpoint::Mq(n) => format!("relay-state-mq-{n}"),
                        _ => format!("relay-state-sysv-{to}").replace("sysv:", ""),
                    };
                    let state = crate::queue::Queue::options()
                        .capacity(1)
                        .max_message(1)
                        .open_or_create(&state)?
                        .0;
                    Destination::Kernel {
                        tx: super::open_sender(to, opts)?,
                        state,
                    }
                }
                other => {
                    return Err(Error::InvalidArgument(format!(
                        "a relay pair delivers into a queue (queue:, mq:, sysv:), not {other}"
                    )));
                }
            })
        };
        let session = super::super::zenoh::session(opts)?;
        ZenohToQueue::open_with(session, key, relay, events, dest)
    }
}
