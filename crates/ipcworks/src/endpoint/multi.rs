//! Several endpoints received from at once ([`MultiReceiver`]): whatever
//! arrives first, on a [`WaitSet`]. What `ipcworks recv A B C…` uses.

use std::time::Duration;

use super::{Endpoint, Options, open_receiver_listening, queue, shm};
use crate::message::{Deadline, MessageReceiver, Meta};
use crate::waitset::WaitSet;
use crate::{Error, Result};

/// How often an endpoint without a descriptor is looked at: a System V
/// queue (the kernel gives it none), a FIFO before its writer came.
pub const POLL_EVERY: Duration = Duration::from_millis(10);

/// How an endpoint is waited on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Watch {
    /// Added to the set once (a channel, a native queue, a POSIX queue).
    Fixed,
    /// Its descriptor changes (a listener, then a client's stream, then
    /// the listener again): added afresh before every wait.
    Stream,
    /// No descriptor: looked at every [`POLL_EVERY`].
    Poll,
}

struct Item {
    ep: Endpoint,
    rx: Box<dyn MessageReceiver>,
    watch: Watch,
    /// May have something: look before waiting.
    pending: bool,
    ended: bool,
}

/// Receives from several endpoints at once: [`recv_until`](Self::recv_until)
/// returns the first message any of them has, with the endpoint's index.
/// One endpoint ending (its sender closed, its stream ended) takes it out;
/// the others go on. Built on one [`WaitSet`]: shared-memory channels and
/// native queues through its helper threads (a killed channel sender is
/// noticed at once), POSIX queues and byte streams through their
/// descriptors; a System V queue, which has no descriptor, is looked at
/// every [`POLL_EVERY`].
///
/// Endpoints are served fairly: after a message from one, the next call
/// looks at the others first.
pub struct MultiReceiver {
    set: WaitSet,
    items: Vec<Item>,
    /// Where the next look starts (round robin).
    next: usize,
}

impl std::fmt::Debug for MultiReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let eps: Vec<String> = self.items.iter().map(|i| i.ep.to_string()).collect();
        f.debug_struct("MultiReceiver")
            .field("endpoints", &eps)
            .finish()
    }
}

/// What [`MultiReceiver::recv_until`] got from one endpoint: its index,
/// and its message (with the [`Meta`]) or the error it reported.
pub type Delivery = (usize, Result<(Vec<u8>, Meta)>);

/// What [`MultiReceiver::open`] opened: the receiver, and for each
/// endpoint that listens (`tcp:`, `unix:`) the address it listens on.
pub type Opened = (MultiReceiver, Vec<Option<Endpoint>>);

impl MultiReceiver {
    /// Opens every endpoint for receiving, as
    /// [`open_receiver_listening`] does for one (same policies), and adds
    /// it to a new [`WaitSet`]. `on_error` may wrap an endpoint's opening
    /// error (the caller's context); `|_, e| e` keeps them as they are.
    pub fn open(
        eps: &[Endpoint],
        opts: &Options,
        mut on_error: impl FnMut(&Endpoint, Error) -> Error,
    ) -> Result<Opened> {
        let mut set = WaitSet::new()?;
        let mut items = Vec::with_capacity(eps.len());
        let mut local = Vec::with_capacity(eps.len());
        for (key, ep) in eps.iter().enumerate() {
            let (rx, watch, at): (Box<dyn MessageReceiver>, Watch, Option<Endpoint>) = match ep {
                Endpoint::Shm(name) => {
                    let rx = shm::open_receiver(name, opts).map_err(|e| on_error(ep, e))?;
                    set.add_channel(key, &rx)?;
                    (Box::new(rx), Watch::Fixed, None)
                }
                Endpoint::Queue(name) => {
                    let q =
                        queue::open(name, opts, opts.create_queue).map_err(|e| on_error(ep, e))?;
                    set.add_queue(key, &q)?;
                    (Box::new(q), Watch::Fixed, None)
                }
                Endpoint::Mq(_) => {
                    let (rx, at) =
                        open_receiver_listening(ep, opts).map_err(|e| on_error(ep, e))?;
                    match rx.pollable_fd() {
                        Some(fd) => set.add_fd(key, fd)?,
                        None => unreachable!("a POSIX queue has a descriptor"),
                    }
                    (rx, Watch::Fixed, at)
                }
                Endpoint::Sysv(_) => {
                    let (rx, at) =
                        open_receiver_listening(ep, opts).map_err(|e| on_error(ep, e))?;
                    (rx, Watch::Poll, at)
                }
                // Byte streams, and any kind added later: by descriptor
                // when they have one, else looked at now and then.
                #[allow(unreachable_patterns)]
                _ => {
                    let (rx, at) =
                        open_receiver_listening(ep, opts).map_err(|e| on_error(ep, e))?;
                    (rx, Watch::Stream, at)
                }
            };
            items.push(Item {
                ep: ep.clone(),
                rx,
                watch,
                pending: true,
                ended: false,
            });
            local.push(at);
        }
        Ok((
            MultiReceiver {
                set,
                items,
                next: 0,
            },
            local,
        ))
    }

    /// The endpoints, in the order given (what the indices refer to).
    pub fn endpoints(&self) -> impl Iterator<Item = &Endpoint> {
        self.items.iter().map(|i| &i.ep)
    }

    /// Whether endpoint `index` has ended (its sender closed).
    pub fn has_ended(&self, index: usize) -> bool {
        self.items.get(index).is_none_or(|i| i.ended)
    }

    /// The next message from any endpoint, with the endpoint's index,
    /// waiting at most until `deadline`. The inner result is that
    /// endpoint's: a message, or the error it reported (the endpoint is
    /// then taken out, the others go on). The outer error is the wait's:
    /// [`Error::Timeout`] (or [`Error::WouldBlock`] for
    /// [`Deadline::Now`]) when nothing came in time,
    /// [`Error::Disconnected`] once every endpoint has ended.
    pub fn recv_until(&mut self, deadline: Deadline) -> Result<Delivery> {
        loop {
            let n = self.items.len();
            for step in 0..n {
                let i = (self.next + step) % n;
                let item = &mut self.items[i];
                if item.ended || !(item.pending || item.watch != Watch::Fixed) {
                    continue;
                }
                match item.rx.recv_until(Deadline::Now) {
                    Ok(m) => {
                        // Still pending (it may hold more); the others
                        // are looked at first next time.
                        self.next = (i + 1) % n;
                        return Ok((i, Ok(m)));
                    }
                    Err(Error::WouldBlock) => item.pending = false,
                    Err(Error::Disconnected) => self.end(i),
                    Err(e) => {
                        self.end(i);
                        self.next = (i + 1) % n;
                        return Ok((i, Err(e)));
                    }
                }
            }
            if self.items.iter().all(|i| i.ended) {
                return Err(Error::Disconnected);
            }
            if deadline.expired() {
                return Err(match deadline {
                    Deadline::Now => Error::WouldBlock,
                    _ => Error::Timeout,
                });
            }
            let mut until = deadline;
            for (key, item) in self.items.iter().enumerate() {
                if item.ended || item.watch == Watch::Fixed {
                    continue;
                }
                self.set.remove(key);
                let fd = match item.watch {
                    Watch::Stream => item.rx.pollable_fd(),
                    _ => None,
                };
                match fd {
                    Some(fd) => self.set.add_fd(key, fd)?,
                    None => until = until.min(Deadline::after(POLL_EVERY)),
                }
            }
            for key in self.set.wait(until)? {
                if let Some(item) = self.items.get_mut(key) {
                    item.pending = true;
                }
            }
        }
    }

    fn end(&mut self, i: usize) {
        self.items[i].ended = true;
        self.set.remove(i);
    }
}
