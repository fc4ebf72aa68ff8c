//! The near relay: a native queue's messages to the far relay over Zenoh
//! (see the [module docs](super)).

use std::time::{Duration, Instant};

use zenoh::Wait;
use zenoh::query::{ConsolidationMode, QueryTarget};

use super::wire::{self, Reply, Request};
use super::{Event, Events, REFUSAL, RelayOptions, deliver_key, plain_key, zenoh_error};
use crate::bridge::Session;
use crate::fault::abort_point;
use crate::message::TryRecvError;
use crate::queue::{Claim, MessageId, Queue};
use crate::{Error, Result};

/// How long the near relay waits before it sends a batch again after the
/// far relay did not answer.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// What became of one query.
enum Outcome {
    Answered(Reply),
    /// No answer (a timeout, no far relay on the key, a link down): try
    /// again.
    Lost(String),
    /// The far relay refused the batch (a message too large, a protocol
    /// it does not speak): stop.
    Refused(String),
}

/// The near relay of a pair: takes messages from a native queue in two
/// phases and removes them once the far relay's queue holds them (see the
/// [module docs](super)).
///
/// ```no_run
/// use std::sync::Arc;
/// use ipcworks::bridge::relay::{QueueToZenoh, RelayOptions};
/// use ipcworks::bridge::{Config, Session};
/// use ipcworks::queue::Queue;
///
/// # fn main() -> ipcworks::Result<()> {
/// let mut config = Config::new();
/// config.connect("tcp/192.0.2.7:7447"); // the far relay listens there
/// let session = Session::open(&config)?;
/// let jobs = Queue::open("jobs")?;
/// let events = Arc::new(|e: &ipcworks::bridge::relay::Event| eprintln!("relay: {e}"));
/// let mut relay = QueueToZenoh::open(jobs, session, "site/jobs", RelayOptions::default(), events)?;
/// relay.run(None)?; // for ever
/// # Ok(())
/// # }
/// ```
pub struct QueueToZenoh {
    queue: Queue,
    session: Session,
    key: String,
    opts: RelayOptions,
    events: Events,
    /// Ids committed here that the far relay may forget (sent with the
    /// next batch).
    forget: Vec<MessageId>,
    /// The window agreed with the far relay (0 until it answered).
    window: usize,
}

impl std::fmt::Debug for QueueToZenoh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueToZenoh")
            .field("queue", &self.queue.name())
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl QueueToZenoh {
    /// A near relay from `queue` to the far relay on `key` (one plain key,
    /// no wildcards) over `session`. Gives back at once what a killed
    /// predecessor had claimed ([`Queue::recover`], reported as
    /// [`Event::ClaimsRecovered`]), and watches the session's links
    /// ([`Event::Link`]).
    pub fn open(
        queue: Queue,
        session: Session,
        key: &str,
        opts: RelayOptions,
        events: Events,
    ) -> Result<QueueToZenoh> {
        plain_key(key)?;
        match queue.recover() {
            Ok((_, 0)) | Err(Error::Timeout) => {}
            Ok((_, n)) => events(&Event::ClaimsRecovered { messages: n }),
            Err(e) => return Err(e),
        }
        let ev = events.clone();
        session.watch_links(move |l| ev(&Event::Link(l)))?;
        Ok(QueueToZenoh {
            queue,
            session,
            key: key.to_string(),
            opts,
            events,
            forget: Vec::new(),
            window: 0,
        })
    }

    /// The source queue.
    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// Relays until `count` messages are in the far queue (for ever when
    /// `None`). Returns how many went. Waits while the far relay does not
    /// answer (reporting [`Event::FarRelayLost`] once per absence); fails
    /// when it refuses a message (too large for it: the message stays
    /// first in the source queue) or on an error of the source queue.
    pub fn run(&mut self, count: Option<u64>) -> Result<u64> {
        let mut n = 0u64;
        while count.is_none_or(|c| n < c) {
            if self.window == 0 {
                self.hello()?;
            }
            let left = count.map_or(u64::MAX, |c| c - n);
            n += self.one_batch(left.min(self.window as u64) as usize)?;
        }
        Ok(n)
    }

    /// Asks the far relay for its window and what it remembers from this
    /// source; forgets (with the next batch) what left the source. Waits
    /// until it answers.
    fn hello(&mut self) -> Result<()> {
        let via = self.queue.origin();
        let payload = Request::Hello { via }.encode();
        let mut lost = false;
        loop {
            match self.query(payload.clone())? {
                Outcome::Answered(Reply::Hello { window, remembered }) => {
                    let gone = self.queue.absent(&remembered)?;
                    (self.events)(&Event::FarRelayReached {
                        remembered: remembered.len(),
                        forgotten: gone.len(),
                    });
                    self.forget.extend(gone);
                    // Half the far table: a batch in flight plus the ids
                    // of the last one still to forget.
                    self.window = self.opts.window.min(window as usize / 2).max(1);
                    return Ok(());
                }
                Outcome::Answered(other) => {
                    return Err(protocol(format!("a hello answered with {other:?}")));
                }
                Outcome::Refused(why) => return Err(refused(&self.key, why)),
                Outcome::Lost(why) => {
                    if !lost {
                        lost = true;
                        (self.events)(&Event::FarRelayLost {
                            reason: why,
                            in_flight: 0,
                        });
                    }
                    std::thread::sleep(RETRY_PAUSE);
                }
            }
        }
    }

    /// Claims up to `max` messages (waiting for the first), sends them
    /// until the far relay holds them all, commits them. Returns how many.
    fn one_batch(&mut self, max: usize) -> Result<u64> {
        let q = &self.queue;
        let mut claims: Vec<Claim<'_>> = vec![q.recv_claim()?];
        while claims.len() < max {
            match q.try_recv_claim() {
                Ok(c) => claims.push(c),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Other(e)) => return Err(e),
                Err(TryRecvError::Disconnected) => return Err(Error::Disconnected),
            }
        }
        abort_point("relay-received");
        let via = q.origin();
        let mut moved = 0u64;
        let mut lost = None;
        while !claims.is_empty() {
            let deadline_ms = self.far_deadline();
            let payload = wire::batch(
                via,
                deadline_ms,
                &self.forget,
                claims.iter().map(|c| (c.id(), c.meta(), c.message())),
            );
            let sent_at = Instant::now();
            match query(&self.session, &self.key, &self.opts, payload)? {
                Outcome::Answered(Reply::Batch { done, .. }) => {
                    abort_point("relay-acknowledged");
                    if let Some(in_flight) = lost.take() {
                        (self.events)(&Event::FarRelayBack { in_flight });
                    }
                    self.forget.clear();
                    let done = (done as usize).min(claims.len());
                    for c in claims.drain(..done) {
                        let id = c.id();
                        c.commit()?;
                        self.forget.push(id);
                    }
                    abort_point("relay-committed");
                    moved += done as u64;
                    if done == 0 {
                        // The far queue is full: it waited its deadline.
                        let spent = sent_at.elapsed();
                        if spent < RETRY_PAUSE {
                            std::thread::sleep(RETRY_PAUSE - spent);
                        }
                    }
                }
                Outcome::Answered(other) => {
                    return Err(protocol(format!("a batch answered with {other:?}")));
                }
                Outcome::Refused(why) => {
                    // Released by their drop: first in line again.
                    drop(claims);
                    return Err(refused(&self.key, why));
                }
                Outcome::Lost(why) => {
                    if lost.is_none() {
                        lost = Some(claims.len());
                        (self.events)(&Event::FarRelayLost {
                            reason: why,
                            in_flight: claims.len(),
                        });
                    }
                    std::thread::sleep(RETRY_PAUSE);
                }
            }
        }
        Ok(moved)
    }

    /// How long the far relay may take to store a batch: most of the
    /// reply timeout, leaving time for the reply to come back.
    fn far_deadline(&self) -> u32 {
        let t = self.opts.reply_timeout;
        let ms = (t - t / 4).as_millis();
        u32::try_from(ms).unwrap_or(u32::MAX).max(1)
    }

    fn query(&self, payload: Vec<u8>) -> Result<Outcome> {
        query(&self.session, &self.key, &self.opts, payload)
    }
}

/// Sends one query to the far relay on `key` and waits for its reply.
fn query(session: &Session, key: &str, opts: &RelayOptions, payload: Vec<u8>) -> Result<Outcome> {
    let replies = match session
        .zenoh()
        .get(deliver_key(key))
        .payload(payload)
        .target(QueryTarget::BestMatching)
        .consolidation(ConsolidationMode::None)
        .timeout(opts.reply_timeout)
        .wait()
    {
        Ok(r) => r,
        Err(e) => return Ok(Outcome::Lost(zenoh_error("get")(e).to_string())),
    };
    abort_point("relay-sent");
    let reply = match replies.recv() {
        Ok(r) => r,
        Err(_) => {
            return Ok(Outcome::Lost(format!(
                "no far relay answers on zenoh:{key} (start `ipcworks relay zenoh:{key} \
                 queue:NAME` on the other host, and check the link)"
            )));
        }
    };
    Ok(match reply.result() {
        Ok(sample) => match Reply::decode(&sample.payload().to_bytes()) {
            Ok(r) => Outcome::Answered(r),
            Err(why) => Outcome::Refused(why),
        },
        Err(e) => {
            let text = String::from_utf8_lossy(&e.payload().to_bytes()).into_owned();
            match text.strip_prefix(REFUSAL) {
                Some(why) => Outcome::Refused(why.to_string()),
                None => Outcome::Lost(format!(
                    "no reply from the far relay within {:?} ({text})",
                    opts.reply_timeout
                )),
            }
        }
    })
}

fn refused(key: &str, why: String) -> Error {
    Error::Zenoh {
        op: "relay",
        reason: format!("the far relay on zenoh:{key} refused a message: {why}"),
    }
}

fn protocol(why: String) -> Error {
    Error::Zenoh {
        op: "relay",
        reason: format!("the far relay does not speak this relay's protocol: {why}"),
    }
}
