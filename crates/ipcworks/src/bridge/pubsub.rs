//! [`Sender`] (a Zenoh publisher) and [`Receiver`] (a Zenoh subscriber)
//! behind the crate's message interface.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use zenoh::Wait;
use zenoh::handlers::{FifoChannel, FifoChannelHandler};
use zenoh::matching::MatchingListener;
use zenoh::pubsub::{Publisher, Subscriber};
use zenoh::qos::{CongestionControl, Reliability};
use zenoh::sample::{Sample, SampleKind};

use super::attachment::{self, Decoded};
use super::config::zenoh_error;
use super::{DEFAULT_MAX_MESSAGE, Session, check_key};
use crate::message::{Deadline, MessageReceiver, MessageSender, Meta};
use crate::{Error, Result};

/// How long a [`Sender`] waits for a subscriber when it opens, unless told
/// otherwise.
pub const DEFAULT_SUBSCRIBER_WAIT: Duration = Duration::from_secs(5);

/// The samples a [`Receiver`] holds before its publishers wait, unless
/// told otherwise.
pub const DEFAULT_CAPACITY: usize = 256;

/// `key`, checked to be a key expression Zenoh accepts.
pub(super) fn checked_key(key: &str) -> Result<String> {
    check_key(key).map_err(|why| {
        Error::InvalidArgument(format!("invalid Zenoh key expression {key:?}: {why}"))
    })?;
    Ok(key.to_string())
}

/// Whether a publisher has a matching subscriber, as its matching
/// listener last said, and a condition to wait for it on.
#[derive(Default)]
struct Matching {
    now: Mutex<bool>,
    changed: Condvar,
}

impl Matching {
    fn set(&self, matching: bool) {
        *self.now.lock().unwrap_or_else(|p| p.into_inner()) = matching;
        self.changed.notify_all();
    }

    /// Waits until a subscriber matches or `deadline` passes; returns
    /// whether one matches.
    fn wait(&self, deadline: Deadline) -> bool {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        while !*now {
            now = match deadline.remaining() {
                Some(Duration::ZERO) => return false,
                Some(left) => {
                    self.changed
                        .wait_timeout(now, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
                None => self.changed.wait(now).unwrap_or_else(|p| p.into_inner()),
            };
        }
        true
    }
}

/// Options for a [`Sender`] ([`Session::sender`]).
#[derive(Debug)]
pub struct SenderBuilder {
    session: Session,
    key: String,
    max: usize,
    wait: Option<Duration>,
}

impl SenderBuilder {
    pub(super) fn new(session: Session, key: &str) -> Self {
        SenderBuilder {
            session,
            key: key.to_string(),
            max: DEFAULT_MAX_MESSAGE,
            wait: Some(DEFAULT_SUBSCRIBER_WAIT),
        }
    }

    /// The largest message to send (default [`DEFAULT_MAX_MESSAGE`]).
    pub fn max_message(mut self, max: usize) -> Self {
        self.max = max;
        self
    }

    /// `Some(t)` (the default, 5 s): [`open`](Self::open) waits up to `t`
    /// until a subscriber matches the key, and fails with
    /// [`Error::NoSubscriber`] if none does; each send then waits, within
    /// its deadline, while no subscriber matches. `None`: plain Zenoh
    /// publication, fire and forget: a message sent while nobody
    /// subscribes goes to nobody.
    pub fn wait_for_subscriber(mut self, wait: Option<Duration>) -> Self {
        self.wait = wait;
        self
    }

    /// Declares the publisher (`declare_publisher`, reliable, congestion
    /// control `Block`) and its matching listener, then waits for a
    /// subscriber as [`wait_for_subscriber`](Self::wait_for_subscriber)
    /// says.
    ///
    /// Errors: [`Error::InvalidArgument`] for an invalid key expression,
    /// [`Error::NoSubscriber`], [`Error::Zenoh`].
    pub fn open(self) -> Result<Sender> {
        let key = checked_key(&self.key)?;
        let z = self.session.zenoh();
        let publisher = z
            .declare_publisher(key.clone())
            .congestion_control(CongestionControl::Block)
            .reliability(Reliability::Reliable)
            .wait()
            .map_err(zenoh_error("declare_publisher"))?;
        let matching = Arc::new(Matching::default());
        let m = Arc::clone(&matching);
        // Called at once with `true` if a subscriber matches already,
        // then on every change.
        let listener = publisher
            .matching_listener()
            .callback(move |s| m.set(s.matching()))
            .wait()
            .map_err(zenoh_error("declare matching listener"))?;
        if let Some(wait) = self.wait
            && !matching.wait(Deadline::after(wait))
        {
            return Err(Error::NoSubscriber { key, waited: wait });
        }
        Ok(Sender {
            _listener: listener,
            publisher,
            matching,
            waits: self.wait.is_some(),
            max: self.max,
            key,
            _session: self.session,
        })
    }
}

/// The publishing end of a `zenoh:` endpoint: each message is one sample
/// on its key, the payload the message's bytes, the [`Meta`] in the
/// attachment (see [`attachment`]).
pub struct Sender {
    // Dropped in this order: the listener and the publisher before the
    // session they were declared on.
    _listener: MatchingListener<()>,
    publisher: Publisher<'static>,
    matching: Arc<Matching>,
    waits: bool,
    max: usize,
    key: String,
    _session: Session,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("key", &self.key)
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

impl Sender {
    /// The key expression it publishes on.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether a subscriber matches the key now.
    pub fn has_subscriber(&self) -> bool {
        self.matching.wait(Deadline::Now)
    }

    /// Waits until a subscriber matches the key, or `deadline` passes
    /// ([`Error::Timeout`]; [`Error::WouldBlock`] for [`Deadline::Now`]).
    pub fn wait_for_subscriber(&self, deadline: Deadline) -> Result<()> {
        if self.matching.wait(deadline) {
            Ok(())
        } else if deadline.is_now() {
            Err(Error::WouldBlock)
        } else {
            Err(Error::Timeout)
        }
    }
}

impl MessageSender for Sender {
    /// Publishes `msg` (`Publisher::put`, with the attachment for `meta`).
    /// Unless the sender publishes fire-and-forget, it first waits within
    /// `deadline` for a matching subscriber ([`Error::Timeout`],
    /// [`Error::WouldBlock`] for [`Deadline::Now`]). The put itself waits
    /// while the link's queue is full (congestion control `Block`), which
    /// the deadline does not bound.
    fn send_until(&mut self, msg: &[u8], meta: Meta, deadline: Deadline) -> Result<()> {
        if msg.len() > self.max {
            return Err(Error::MessageTooLarge {
                len: msg.len(),
                max: self.max,
            });
        }
        if self.waits {
            self.wait_for_subscriber(deadline)?;
        }
        let put = self.publisher.put(msg);
        match attachment::encode(meta) {
            Some(a) => put.attachment(&a[..]).wait(),
            None => put.wait(),
        }
        .map_err(zenoh_error("put"))
    }
}

/// Options for a [`Receiver`] ([`Session::receiver`]).
#[derive(Debug)]
pub struct ReceiverBuilder {
    session: Session,
    key: String,
    max: usize,
    capacity: usize,
}

impl ReceiverBuilder {
    pub(super) fn new(session: Session, key: &str) -> Self {
        ReceiverBuilder {
            session,
            key: key.to_string(),
            max: DEFAULT_MAX_MESSAGE,
            capacity: DEFAULT_CAPACITY,
        }
    }

    /// The largest message to accept (default [`DEFAULT_MAX_MESSAGE`]): a
    /// larger sample is reported as [`Error::MessageTooLarge`] and dropped.
    pub fn max_message(mut self, max: usize) -> Self {
        self.max = max;
        self
    }

    /// How many samples wait here for a `recv` before publishers are held
    /// back (default 256 samples).
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// Declares the subscriber (`declare_subscriber`). Once this returns,
    /// the subscription is on its way to the connected peers; a sender
    /// there sees it match.
    ///
    /// Errors: [`Error::InvalidArgument`] for an invalid key expression,
    /// [`Error::Zenoh`].
    pub fn open(self) -> Result<Receiver> {
        let key = checked_key(&self.key)?;
        let subscriber = self
            .session
            .zenoh()
            .declare_subscriber(key.clone())
            .with(FifoChannel::new(self.capacity))
            .wait()
            .map_err(zenoh_error("declare_subscriber"))?;
        Ok(Receiver {
            subscriber,
            max: self.max,
            key,
            _session: self.session,
        })
    }
}

/// The subscribing end of a `zenoh:` endpoint: each sample put on a key
/// its key expression matches is one message, its [`Meta`] read from the
/// attachment (the default for a plain sample).
pub struct Receiver {
    subscriber: Subscriber<FifoChannelHandler<Sample>>,
    max: usize,
    key: String,
    _session: Session,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("key", &self.key)
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

impl Receiver {
    /// The key expression it subscribes to.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The next put sample within `deadline` (delete samples skipped).
    fn next_sample(&self, deadline: Deadline) -> Result<Sample> {
        let closed = |_| Error::Disconnected;
        loop {
            let got = match deadline {
                Deadline::Now => self.subscriber.try_recv().map_err(closed)?,
                Deadline::At(t) => self.subscriber.recv_deadline(t).map_err(closed)?,
                Deadline::Never => Some(self.subscriber.recv().map_err(closed)?),
            };
            match got {
                Some(s) if s.kind() == SampleKind::Put => return Ok(s),
                Some(_) => continue,
                None if deadline.is_now() => return Err(Error::WouldBlock),
                None => return Err(Error::Timeout),
            }
        }
    }

    /// Checks a sample's size and reads its metadata.
    fn check(&self, sample: &Sample) -> Result<Meta> {
        let len = sample.payload().len();
        if len > self.max {
            return Err(Error::MessageTooLarge { len, max: self.max });
        }
        let att = sample.attachment().map(|a| a.to_bytes());
        match attachment::decode(att.as_deref()) {
            Decoded::Foreign => Ok(Meta::default()),
            Decoded::Meta(meta) => Ok(meta),
            Decoded::Malformed(why) => Err(Error::Zenoh {
                op: "receive",
                reason: format!(
                    "a sample on {} carries a malformed ipcworks attachment ({why}); \
                     the message was dropped",
                    sample.key_expr()
                ),
            }),
        }
    }
}

impl MessageReceiver for Receiver {
    /// The next sample's payload and metadata. Nothing ever disconnects a
    /// subscription: [`Deadline::Never`] waits for ever, and
    /// [`Error::Disconnected`] means only that the session was closed.
    fn recv_until(&mut self, deadline: Deadline) -> Result<(Vec<u8>, Meta)> {
        let sample = self.next_sample(deadline)?;
        let meta = self.check(&sample)?;
        Ok((sample.payload().to_bytes().into_owned(), meta))
    }

    /// As [`recv_until`](Self::recv_until), copying the payload into
    /// `buf` (one copy, reusing its allocation).
    fn recv_into_until(&mut self, buf: &mut Vec<u8>, deadline: Deadline) -> Result<Meta> {
        let sample = self.next_sample(deadline)?;
        let meta = self.check(&sample)?;
        buf.clear();
        buf.extend_from_slice(&sample.payload().to_bytes());
        Ok(meta)
    }
}
