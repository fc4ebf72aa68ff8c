//! The far relay: what the near relay sends over Zenoh, into a queue
//! here, exactly once (see the [module docs](super)).

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Duration;

use zenoh::Wait;
use zenoh::liveliness::LivelinessToken;
use zenoh::pubsub::Subscriber;
use zenoh::query::{Query, Queryable};
use zenoh::sample::{Sample, SampleKind};

use super::wire::{Item, Reply, Request};
use super::{Event, Events, REFUSAL, RelayOptions, deliver_key, plain_key, token_key, zenoh_error};
use crate::bridge::Session;
use crate::bridge::attachment::{self, Decoded};
use crate::fault::abort_point;
use crate::message::{Deadline, MessageSender, Meta};
use crate::queue::{Delivery, Queue};
use crate::{Error, Result};

/// Queries and samples waiting for the relay's thread (each at most one
/// batch): a full channel holds Zenoh back.
const INCOMING: usize = 4;

/// How long the far relay looks for another far relay's liveliness token
/// when it opens.
const TOKEN_LOOK: Duration = Duration::from_millis(500);

/// Where the far relay delivers.
pub enum Destination {
    /// A native queue, which remembers relayed ids itself.
    Queue(Queue),
    /// Another kind (a POSIX or System V queue), with a small native
    /// queue whose relay table remembers what was delivered into it.
    Kernel {
        /// The destination.
        tx: Box<dyn MessageSender>,
        /// The queue whose table keeps the delivered ids
        /// (`relay-state-…`, see the [module docs](super)).
        state: Queue,
    },
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::Queue(q) => f.debug_tuple("Queue").field(&q.name()).finish(),
            Destination::Kernel { state, .. } => f
                .debug_struct("Kernel")
                .field("state", &state.name())
                .finish_non_exhaustive(),
        }
    }
}

impl Destination {
    /// The queue whose table remembers relayed ids.
    fn table(&self) -> &Queue {
        match self {
            Destination::Queue(q) => q,
            Destination::Kernel { state, .. } => state,
        }
    }

    /// Delivers one relayed message, exactly once as far as the
    /// destination allows (see the module docs).
    fn deliver(&mut self, item: &Item, via: u64, until: Deadline) -> Result<Delivery> {
        match self {
            Destination::Queue(q) => {
                q.send_relayed(&item.bytes, item.meta.priority, item.id, via, until)
            }
            Destination::Kernel { tx, state } => {
                if state.relayed_contains(item.id)? {
                    return Ok(Delivery::AlreadyDelivered);
                }
                tx.send_until(&item.bytes, item.meta, until)?;
                // A kill here delivers this message twice (the only
                // window the kernel leaves).
                abort_point("relay-kernel-sent");
                state.remember_relayed(item.id, via, Deadline::Never)?;
                Ok(Delivery::Delivered)
            }
        }
    }

    /// Delivers a plain sample (no id: at most once).
    fn plain(&mut self, msg: &[u8], meta: Meta) -> Result<()> {
        match self {
            Destination::Queue(q) => Queue::send(q, msg, meta.priority),
            Destination::Kernel { tx, .. } => tx.send_with(msg, meta),
        }
    }
}

enum Incoming {
    Query(Query),
    Sample(Sample),
}

/// The far relay of a pair: answers the near relay's batches by
/// delivering them into its [`Destination`] exactly once, and
/// acknowledging them (duplicates too). Plain samples published on the
/// key (`ipcworks send zenoh:KEY`, any Zenoh program) are delivered as
/// well, as a subscriber would (at most once: they carry no id).
///
/// ```no_run
/// use std::sync::Arc;
/// use ipcworks::bridge::relay::{Destination, RelayOptions, ZenohToQueue};
/// use ipcworks::bridge::{Config, Session};
/// use ipcworks::queue::Queue;
///
/// # fn main() -> ipcworks::Result<()> {
/// let mut config = Config::new();
/// config.listen("tcp/0.0.0.0:7447");
/// let session = Session::open(&config)?;
/// let (jobs, _) = Queue::open_or_create("jobs")?;
/// let events = Arc::new(|e: &ipcworks::bridge::relay::Event| eprintln!("relay: {e}"));
/// let opts = RelayOptions::default();
/// let mut relay = ZenohToQueue::open(Destination::Queue(jobs), session, "site/jobs", opts, events)?;
/// relay.run(None)?; // for ever
/// # Ok(())
/// # }
/// ```
pub struct ZenohToQueue {
    dest: Destination,
    key: String,
    opts: RelayOptions,
    events: Events,
    rx: Receiver<Incoming>,
    // Dropped before the session: undeclared.
    _token: LivelinessToken,
    _queryable: Queryable<()>,
    _subscriber: Subscriber<()>,
    session: Session,
}

impl std::fmt::Debug for ZenohToQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZenohToQueue")
            .field("dest", &self.dest)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl ZenohToQueue {
    /// A far relay on `key` (one plain key, no wildcards) over `session`,
    /// delivering into `dest`. Refuses ([`Error::Refused`]) when another
    /// far relay's liveliness token for `key` is visible from `session`.
    pub fn open(
        dest: Destination,
        session: Session,
        key: &str,
        opts: RelayOptions,
        events: Events,
    ) -> Result<ZenohToQueue> {
        Self::open_with(session, key, opts, events, || Ok(dest))
    }

    /// [`open`](Self::open), making the destination only once no other
    /// far relay was seen (so a refused relay creates no queue).
    pub fn open_with(
        session: Session,
        key: &str,
        opts: RelayOptions,
        events: Events,
        dest: impl FnOnce() -> Result<Destination>,
    ) -> Result<ZenohToQueue> {
        plain_key(key)?;
        let z = session.zenoh();
        let token = token_key(key);
        let replies = z
            .liveliness()
            .get(&token)
            .timeout(TOKEN_LOOK)
            .wait()
            .map_err(zenoh_error("liveliness get"))?;
        while let Ok(r) = replies.recv() {
            if r.result().is_ok() {
                return Err(Error::Refused {
                    name: format!("zenoh:{key}"),
                    reason: "another relay already delivers this key into a queue (its \
                             liveliness token is up): a relay pair is point to point, and \
                             two far relays would split the messages between two queues"
                        .into(),
                });
            }
        }
        let dest = dest()?;
        let ev = events.clone();
        session.watch_links(move |l| ev(&Event::Link(l)))?;
        let _token = z
            .liveliness()
            .declare_token(&token)
            .wait()
            .map_err(zenoh_error("declare liveliness token"))?;
        let (tx, rx) = sync_channel(INCOMING);
        let t: SyncSender<Incoming> = tx.clone();
        let _queryable = z
            .declare_queryable(deliver_key(key))
            .callback(move |q| {
                let _ = t.send(Incoming::Query(q));
            })
            .wait()
            .map_err(zenoh_error("declare_queryable"))?;
        let _subscriber = z
            .declare_subscriber(key.to_string())
            .callback(move |s| {
                if s.kind() == SampleKind::Put {
                    let _ = tx.send(Incoming::Sample(s));
                }
            })
            .wait()
            .map_err(zenoh_error("declare_subscriber"))?;
        Ok(ZenohToQueue {
            dest,
            key: key.to_string(),
            opts,
            events,
            rx,
            _token,
            _queryable,
            _subscriber,
            session,
        })
    }

    /// The session (for its [`listening`](Session::listening) addresses).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Delivers until `count` new messages are in the destination (for
    /// ever when `None`); returns how many. Fails on an error of the
    /// destination other than a full queue (a full one makes the near
    /// relay wait).
    pub fn run(&mut self, count: Option<u64>) -> Result<u64> {
        let mut n = 0u64;
        while count.is_none_or(|c| n < c) {
            let left = count.map_or(u64::MAX, |c| c - n);
            match self.rx.recv() {
                Ok(Incoming::Query(q)) => n += self.answer(&q, left)?,
                Ok(Incoming::Sample(s)) => n += self.plain(&s)?,
                Err(_) => return Err(Error::Disconnected),
            }
        }
        Ok(n)
    }

    /// A plain sample: delivered (1), or reported and skipped (0).
    fn plain(&mut self, s: &Sample) -> Result<u64> {
        let len = s.payload().len();
        if len > self.opts.max_message {
            return Err(Error::MessageTooLarge {
                len,
                max: self.opts.max_message,
            });
        }
        let att = s.attachment().map(|a| a.to_bytes());
        let meta = match attachment::decode(att.as_deref()) {
            Decoded::Foreign => Meta::default(),
            Decoded::Meta(m) => m,
            Decoded::Malformed(_) => return Ok(0),
        };
        self.dest.plain(&s.payload().to_bytes(), meta)?;
        Ok(1)
    }

    /// Answers one query; returns how many new messages it delivered (at
    /// most `left`).
    fn answer(&mut self, q: &Query, left: u64) -> Result<u64> {
        let payload = q.payload().map(|p| p.to_bytes()).unwrap_or_default();
        let window = self.dest.table().relay_window();
        let req = match Request::decode(&payload, self.opts.max_message, window) {
            Ok(r) => r,
            Err(why) => {
                refuse(q, &why);
                return Ok(0);
            }
        };
        abort_point("relay-far-received");
        let (reply, new) = match req {
            Request::Hello { via } => {
                let reply = Reply::Hello {
                    window: u32::try_from(window).unwrap_or(u32::MAX),
                    remembered: self.dest.table().relayed_via(via)?,
                };
                (reply, 0)
            }
            Request::Batch {
                via,
                deadline_ms,
                forget,
                items,
            } => {
                self.dest.table().forget_relayed(&forget)?;
                let until = Deadline::after(Duration::from_millis(deadline_ms.into()));
                let (mut done, mut dups) = (0u32, 0u32);
                for item in &items {
                    if u64::from(done - dups) >= left {
                        break;
                    }
                    match self.dest.deliver(item, via, until) {
                        Ok(Delivery::Delivered) => done += 1,
                        Ok(Delivery::AlreadyDelivered) => {
                            done += 1;
                            dups += 1;
                        }
                        // Full: acknowledge what went, the rest later.
                        Err(Error::Timeout | Error::WouldBlock) => break,
                        Err(e @ (Error::MessageTooLarge { .. } | Error::InvalidArgument(_))) => {
                            if done == 0 {
                                refuse(q, &e.to_string());
                                return Ok(0);
                            }
                            break;
                        }
                        Err(e) => return Err(e),
                    }
                }
                abort_point("relay-stored");
                if dups > 0 {
                    (self.events)(&Event::DuplicatesAcknowledged { messages: dups });
                }
                (Reply::Batch { done, dups }, u64::from(done - dups))
            }
        };
        // A reply lost on the way is a batch sent again: idempotent.
        let _ = q.reply(q.key_expr().clone(), reply.encode()).wait();
        Ok(new)
    }
}

/// Refuses a query, saying why (the near relay stops with the reason).
fn refuse(q: &Query, why: &str) {
    let _ = q.reply_err(format!("{REFUSAL}{why}")).wait();
}
