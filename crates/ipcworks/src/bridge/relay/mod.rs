//! A native queue moved to another host exactly once: the relay pair
//! `ipcworks relay queue:jobs zenoh:site/jobs` (the *near* relay,
//! [`QueueToZenoh`]) and `ipcworks relay zenoh:site/jobs queue:jobs` (the
//! *far* relay, [`ZenohToQueue`]), across SIGKILL of either relay at any
//! moment and links that drop for a while.
//!
//! # The steps
//!
//! The near relay takes up to a window of messages from its source queue
//! in two phases ([`Queue::recv_claim`](crate::queue::Queue::recv_claim):
//! copied out, left in their slots, claimed) — *received* — and sends them,
//! each with its [`MessageId`](crate::queue::MessageId), priority and
//! type, as one Zenoh query to the far relay — *sent*. The far relay puts
//! each into its destination queue with the idempotent
//! [`Queue::send_relayed`](crate::queue::Queue::send_relayed) — *stored
//! remotely* — and replies how many of the batch its queue now holds,
//! counting those it already had. On that reply — *acknowledged* — the
//! near relay commits them — *removed locally* — and tells the far relay,
//! with its next batch, to forget their ids. A message leaves its source
//! only once the far queue holds it.
//!
//! What a kill or a cut between the steps leaves:
//!
//! - **near relay killed** (at any step): its claims die with it and the
//!   restarted relay's open gives them back to the source
//!   ([`Queue::recover`](crate::queue::Queue::recover)), first of their
//!   priority; it sends them again, and the far queue, which remembers
//!   their ids, acknowledges those it already holds without delivering
//!   them twice. Ids it was about to tell the far side to forget are
//!   found at the restart (the far relay lists what it remembers from this
//!   source, the near relay forgets those no longer in its queue).
//! - **far relay killed**: what it stored before is in its queue and
//!   remembered there (a kill inside a relayed send is settled by the
//!   queue itself, see `queue/dedup.rs`); the near relay gets no reply,
//!   keeps its claims and sends the batch again to the restarted far relay.
//! - **link cut**: the same: no reply within the query's timeout, the
//!   batch kept and sent again, every few hundred milliseconds, until the
//!   far relay answers (Zenoh reconnects by itself).
//!
//! # Backpressure and memory
//!
//! The near relay holds at most its window of claims (default
//! [`DEFAULT_WINDOW`], never more than half the far queue's relay table)
//! and one batch on the wire; the far relay at most a few queries. While
//! the far side is away or its queue is full, nothing piles up in either
//! relay: the source queue fills and its senders block (or get `Full`).
//!
//! # A pair is point to point
//!
//! The far relay declares a Zenoh liveliness token on
//! `KEY/@ipcworks/relay-far` and refuses to start when one is already
//! there ([`crate::Error::Refused`]): two far relays on
//! one key would split the batches between two queues and break the
//! de-duplication. (Zenoh can only see a token across a link that is up:
//! two far relays on networks that do not reach each other cannot be
//! told apart.) Several near relays may feed one far relay.
//!
//! # Destinations that are kernel queues
//!
//! Into a POSIX (`mq:`) or System V (`sysv:`) queue, which keeps no ids,
//! the far relay remembers what it delivered itself, in a small native
//! queue's relay table (`ipcworks.queue.relay-state-…`, one per
//! destination): it looks the id up, sends into the kernel queue, then
//! records the id. A far relay killed between the kernel's send and that
//! record — a few instructions — leaves the message delivered but not
//! recorded: the near relay sends it again and it arrives twice. That is
//! the only duplicate the kernel leaves room for: at most one per kill of
//! the far relay.
//!
//! # Abort points (tests)
//!
//! `IPCWORKS_ABORT_AT=NAME:N` kills a relay the Nth time it reaches
//! `relay-received` (a batch claimed), `relay-sent` (its query on the
//! wire), `relay-acknowledged` (the reply in hand), `relay-committed`
//! (removed locally) in the near relay, and `relay-far-received` (a query
//! decoded), `relay-stored` (the batch in the destination, not replied
//! yet) in the far relay (and `relayed-pending`, `relayed-published`
//! inside the queue's relayed send; `relay-kernel-sent` between a kernel
//! queue's send and the record of its id).

mod far;
mod near;
// The wire format lives at the crate's root (`src/relay_wire.rs`): it is
// built without the `zenoh` feature too, for its fuzz target
// (`crate::__fuzz`).
use crate::relay_wire as wire;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use far::{Destination, ZenohToQueue};
pub use near::QueueToZenoh;

use super::LinkChange;
use super::config::zenoh_error;
use crate::{Error, Result};

/// Messages the near relay keeps in flight by default.
pub const DEFAULT_WINDOW: usize = 64;
/// How long the near relay waits for the far relay's reply by default.
pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// Options of a relay pair's ends.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// Near: messages claimed and in flight at once (at least 1; capped at
    /// half the far queue's relay window).
    pub window: usize,
    /// Near: how long a batch waits for its reply before it is sent again
    /// (a link cut, a far relay killed); the far relay stores for at most
    /// three quarters of it and acknowledges what it stored.
    pub reply_timeout: Duration,
    /// Largest message (far: larger ones are refused, and the near relay
    /// stops with the error, the message first in its source).
    pub max_message: usize,
}

impl Default for RelayOptions {
    fn default() -> Self {
        RelayOptions {
            window: DEFAULT_WINDOW,
            reply_timeout: DEFAULT_REPLY_TIMEOUT,
            max_message: super::DEFAULT_MAX_MESSAGE,
        }
    }
}

/// Something a relay of a pair reports (one line each, for its log).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A Zenoh link to a peer came up or went down.
    Link(LinkChange),
    /// Near: the far relay answers (at the start, or again after it was
    /// away); it still remembered `remembered` ids from this source, of
    /// which `forgotten` had left the source (a killed relay's leftovers).
    FarRelayReached {
        /// Ids the far queue remembered from this source.
        remembered: usize,
        /// Of those, forgotten now.
        forgotten: usize,
    },
    /// Near: the far relay does not answer; `in_flight` messages stay
    /// claimed and are sent again until it does.
    FarRelayLost {
        /// Why (a timeout, no far relay on the key, …).
        reason: String,
        /// Messages claimed and waiting.
        in_flight: usize,
    },
    /// Near: the far relay answers again after it did not; the batch
    /// waiting meanwhile went.
    FarRelayBack {
        /// Messages of that batch.
        in_flight: usize,
    },
    /// Near: messages a killed relay had claimed were given back to the
    /// source when this one opened it.
    ClaimsRecovered {
        /// How many.
        messages: u64,
    },
    /// Far: a batch sent again held messages already delivered: they were
    /// acknowledged, not delivered twice.
    DuplicatesAcknowledged {
        /// How many.
        messages: u32,
    },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Link(l) => {
                let what = if l.up {
                    "connected to"
                } else {
                    "disconnected from"
                };
                write!(f, "{what} Zenoh peer {} ({})", l.peer, l.remote)
            }
            Event::FarRelayReached {
                remembered,
                forgotten,
            } => write!(
                f,
                "far relay reached (it remembered {remembered} message id(s) from this queue; \
                 {forgotten} of them had left it and are forgotten)"
            ),
            Event::FarRelayLost { reason, in_flight } => write!(
                f,
                "far relay not answering ({reason}); {in_flight} message(s) stay in the queue, \
                 claimed, and are sent again when it answers"
            ),
            Event::FarRelayBack { in_flight } => write!(
                f,
                "recovery: the far relay answers again; the {in_flight} message(s) waiting went"
            ),
            Event::ClaimsRecovered { messages } => write!(
                f,
                "recovered {messages} message(s) a killed relay had taken: back in line"
            ),
            Event::DuplicatesAcknowledged { messages } => write!(
                f,
                "recovery: {messages} message(s) sent again were already here: acknowledged, \
                 not delivered twice"
            ),
        }
    }
}

/// Where a relay reports its [`Event`]s (called from the relay's thread
/// and from Zenoh's: it must not block).
pub type Events = Arc<dyn Fn(&Event) + Send + Sync>;

/// The key expression of the far relay's queryable for `key`.
fn deliver_key(key: &str) -> String {
    format!("{key}/@ipcworks/relay")
}

/// The key expression of the far relay's liveliness token for `key`.
fn token_key(key: &str) -> String {
    format!("{key}/@ipcworks/relay-far")
}

/// The prefix of a far relay's refusal (an error reply), which the near
/// relay tells from Zenoh's own errors (a timeout).
const REFUSAL: &str = "ipcworks relay refused: ";

/// Checks that `key` names one key (a pair needs one: no wildcards).
fn plain_key(key: &str) -> Result<()> {
    super::pubsub::checked_key(key)?;
    if key.contains('*') || key.contains('$') || key.split('/').any(|c| c.starts_with('@')) {
        return Err(Error::InvalidArgument(format!(
            "a relay pair needs one plain Zenoh key, not {key:?} (no wildcards, no @ chunks): \
             e.g. site/jobs"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_keys_are_valid_and_outside_wildcards() {
        for k in [deliver_key("site/jobs"), token_key("site/jobs")] {
            super::super::check_key(&k).unwrap();
            let k: &zenoh::key_expr::keyexpr = k.as_str().try_into().unwrap();
            let all: &zenoh::key_expr::keyexpr = "site/**".try_into().unwrap();
            // A plain subscriber to site/** does not see the pair's traffic.
            assert!(!all.intersects(k), "{k}");
        }
        assert!(plain_key("site/jobs").is_ok());
        for bad in ["site/*", "site/**", "a/$*b", "a/@x", ""] {
            assert!(plain_key(bad).is_err(), "{bad}");
        }
    }
}
