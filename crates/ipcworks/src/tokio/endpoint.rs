//! Endpoints opened as async trait objects.

use super::{
    Async, AsyncMessageReceiver, AsyncMessageSender, AsyncQueue, AsyncReceiver, AsyncSender,
};
use crate::Result;
use crate::endpoint::{self, Endpoint, Options};

/// [`endpoint::open_receiver`], awaitable: a `shm:` channel as an
/// [`AsyncReceiver`], a `queue:` as an [`AsyncQueue`], every other kind
/// through [`Async`] (its descriptor in tokio's reactor; System V on
/// tokio's timer). Opening itself is synchronous, as the blocking
/// opener's (creating or binding; a socket may wait for its peer). Must be
/// called inside a tokio runtime.
pub fn open_receiver(ep: &Endpoint, opts: &Options) -> Result<Box<dyn AsyncMessageReceiver>> {
    Ok(match ep {
        Endpoint::Shm(name) => Box::new(AsyncReceiver::new(endpoint::shm::open_receiver(
            name, opts,
        )?)?),
        Endpoint::Queue(name) => Box::new(AsyncQueue::new(endpoint::queue::open(
            name,
            opts,
            opts.create_queue,
        )?)?),
        _ => Box::new(Async::receiver(endpoint::open_receiver(ep, opts)?)?),
    })
}

/// [`endpoint::open_sender`], awaitable (see [`open_receiver`]).
pub fn open_sender(ep: &Endpoint, opts: &Options) -> Result<Box<dyn AsyncMessageSender>> {
    Ok(match ep {
        Endpoint::Shm(name) => Box::new(AsyncSender::new(endpoint::shm::open_sender(name, opts)?)?),
        Endpoint::Queue(name) => {
            Box::new(AsyncQueue::new(endpoint::queue::open(name, opts, true)?)?)
        }
        _ => Box::new(Async::sender(endpoint::open_sender(ep, opts)?)?),
    })
}
