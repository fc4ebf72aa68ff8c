//! One message interface over every mechanism: what a message carries
//! beside its bytes ([`Meta`]), how long a call may wait ([`Deadline`]),
//! and the sender and receiver traits ([`MessageSender`],
//! [`MessageReceiver`]) that the shared-memory channel, the native queue,
//! POSIX and System V queues and framed byte streams all implement.
//!
//! # The concept
//!
//! *Message passing* hands discrete messages from a sender to a receiver:
//! the receiver gets each message whole, in order (or by priority), and
//! waits while there is none; the sender waits while there is no room.
//! Every mechanism here is that, with its own strengths:
//!
//! | mechanism | sender | receiver | [`Meta`] carried |
//! |---|---|---|---|
//! | shared-memory channel | [`channel::Sender`](crate::channel::Sender) | [`channel::Receiver`](crate::channel::Receiver) | — |
//! | native priority queue | [`queue::Queue`](crate::queue::Queue) | [`queue::Queue`](crate::queue::Queue) | priority |
//! | POSIX message queue | [`mq::posix::Queue`](crate::mq::posix::Queue) | [`mq::posix::Queue`](crate::mq::posix::Queue) | priority |
//! | System V message queue | [`mq::sysv::Queue`](crate::mq::sysv::Queue) | [`mq::sysv::Receiver`](crate::mq::sysv::Receiver) (its type selection) | type |
//! | pipe, FIFO, Unix or TCP stream, stdio | [`stream::FramedSender`](crate::stream::FramedSender) | [`stream::FramedReceiver`](crate::stream::FramedReceiver) | — |
//!
//! Each implementor writes one method, [`MessageSender::send_until`] or
//! [`MessageReceiver::recv_until`], that takes a [`Deadline`]; the rest of
//! the family — `send`, `try_send`, `send_timeout`, `recv`, `try_recv`,
//! `recv_timeout`, `iter`, `try_iter`, shaped like
//! [`std::sync::mpsc`] and `crossbeam-channel` — is provided on top. The
//! `try_` and `_timeout` calls return per-operation errors
//! ([`TryRecvError`], [`RecvTimeoutError`], [`TrySendError`],
//! [`SendTimeoutError`]) whose common cases match exhaustively, with
//! corruption and I/O errors reachable through `Other`; the blocking
//! calls return [`Error`].
//!
//! The traits are object safe: the endpoint layer above
//! (`ipcworks::endpoint::open_receiver`) returns a `Box<dyn
//! MessageReceiver>` for whichever mechanism an address names, and code written against `&mut dyn MessageReceiver` works with
//! all of them. [`MessageReceiver::recv_until`] with [`Deadline::Now`] is
//! the one non-blocking attempt, and [`MessageReceiver::pollable_fd`] the
//! descriptor to wait on where the mechanism has one, which is what an
//! event loop or an async wrapper builds on.
//!
//! With the feature `tokio`, `AsyncMessageReceiver` and
//! `AsyncMessageSender` (here) are the async twins (`poll_recv`,
//! `poll_send`; object safe) with `.await` helpers in
//! `AsyncMessageReceiverExt` and `AsyncMessageSenderExt`; the module
//! `ipcworks::tokio` implements them for every mechanism.
//!
//! # Concrete types need no import
//!
//! Each concrete type keeps its own methods, so a user of one mechanism
//! does not import a trait: the channel's [`Sender`](crate::channel::Sender)
//! and [`Receiver`](crate::channel::Receiver) have inherent `send`,
//! `try_send`, `send_timeout`, `recv`, `try_recv`, `recv_timeout`, `iter`
//! and `try_iter` with exactly the trait's signatures and errors (one-line
//! wrappers over the same core the trait method calls, so calling a
//! concrete end directly is static dispatch, as fast as before, and
//! importing the traits too changes nothing: inherent methods win). The
//! queues keep their signatures with the priority or type in them
//! (`send(msg, priority)`, `recv() -> (Vec<u8>, u32)`, System V's
//! `recv(mtype)`), again as one-line wrappers over one core. The trait's
//! family on a queue is reached through the trait
//! (`MessageSender::send(&mut q, msg)`) or through generic code.
//!
//! # Example
//!
//! Generic code over `&mut dyn MessageReceiver`, receiving from a native
//! queue and from a shared-memory channel (both anonymous: nothing is left
//! in `/dev/shm`):
//!
//! ```
//! use ipcworks::channel::Channel;
//! use ipcworks::message::{MessageReceiver, MessageSender, Meta, TryRecvError};
//! use ipcworks::queue::Queue;
//!
//! /// Everything waiting now, from any mechanism.
//! fn drain(rx: &mut dyn MessageReceiver) -> ipcworks::Result<Vec<Vec<u8>>> {
//!     let mut got = Vec::new();
//!     loop {
//!         match rx.try_recv() {
//!             Ok(msg) => got.push(msg),
//!             Err(TryRecvError::Empty | TryRecvError::Disconnected) => return Ok(got),
//!             Err(TryRecvError::Other(e)) => return Err(e),
//!         }
//!     }
//! }
//!
//! # fn main() -> ipcworks::Result<()> {
//! let mut queue = Queue::anonymous()?;
//! queue.send(b"low", 1)?; // the queue's own method: a priority
//! queue.send_with(b"high", Meta::with_priority(5))?; // the trait's
//!
//! let chan = Channel::builder().anonymous()?;
//! let (mut tx, mut rx) = (chan.sender()?, chan.receiver()?);
//! tx.send(b"hello")?;
//!
//! assert_eq!(drain(&mut queue)?, [b"high".to_vec(), b"low".to_vec()]);
//! assert_eq!(drain(&mut rx)?, [b"hello".to_vec()]);
//! # Ok(())
//! # }
//! ```

use std::os::fd::BorrowedFd;
use std::time::Duration;

use crate::{Error, Result};

#[cfg(feature = "tokio")]
mod async_traits;
mod deadline;
mod error;

#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use async_traits::{
    AsyncMessageReceiver, AsyncMessageReceiverExt, AsyncMessageSender, AsyncMessageSenderExt, Recv,
    RecvWithMeta, SendMsg,
};
pub use deadline::Deadline;
pub use error::{RecvTimeoutError, SendTimeoutError, TryRecvError, TrySendError};

/// What travels beside a message's bytes on the mechanisms that have it.
/// A mechanism without it ignores it on sending and reports the default
/// on receiving.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Meta {
    /// Priority (POSIX `mq:` and native `queue:`; higher comes out first).
    pub priority: u32,
    /// Message type (System V `sysv:`; a sent message with type 0, the
    /// default, goes out as type 1, the lowest valid one).
    pub msg_type: i64,
}

impl Meta {
    /// Metadata with a priority (for POSIX and native queues).
    pub fn with_priority(priority: u32) -> Meta {
        Meta {
            priority,
            ..Meta::default()
        }
    }

    /// Metadata with a System V message type.
    pub fn with_type(msg_type: i64) -> Meta {
        Meta {
            msg_type,
            ..Meta::default()
        }
    }
}

/// The sending end of any message mechanism (see the [module docs](self)).
///
/// One method to implement, [`send_until`](Self::send_until); the others
/// are provided.
pub trait MessageSender: Send {
    /// Sends `msg` with `meta`, waiting for room at most until `deadline`.
    ///
    /// Errors: [`Error::WouldBlock`] when `deadline` is
    /// [`Deadline::Now`] and there is no room, [`Error::Timeout`] when an
    /// instant passed, [`Error::Disconnected`] when the receiver is gone,
    /// [`Error::MessageTooLarge`] when `msg` is longer than the mechanism
    /// carries, anything else the mechanism reports.
    fn send_until(&mut self, msg: &[u8], meta: Meta, deadline: Deadline) -> Result<()>;

    /// Sends `msg`, waiting while there is no room.
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_until(msg, Meta::default(), Deadline::Never)
    }

    /// Sends `msg` with `meta` (a priority, a System V type), waiting
    /// while there is no room.
    fn send_with(&mut self, msg: &[u8], meta: Meta) -> Result<()> {
        self.send_until(msg, meta, Deadline::Never)
    }

    /// Sends `msg` if there is room now.
    fn try_send(&mut self, msg: &[u8]) -> Result<(), TrySendError> {
        self.send_until(msg, Meta::default(), Deadline::Now)
            .map_err(TrySendError::from)
    }

    /// Sends `msg`, waiting at most `timeout` for room.
    fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<(), SendTimeoutError> {
        self.send_until(msg, Meta::default(), Deadline::after(timeout))
            .map_err(SendTimeoutError::from)
    }

    /// A descriptor that `poll`/`epoll` reports writable when a send may
    /// find room (a hint: another sender may take it first), for the
    /// mechanisms that have one (POSIX queues, byte streams); `None` for
    /// the others.
    fn pollable_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }

    /// For the mechanisms that write a byte stream (framed streams): the
    /// bytes `msg` travels as (its frame: length prefix or newline
    /// added), checked as a send would check it, so an async wrapper can
    /// write them as the stream takes them, over several polls, without
    /// blocking; the stream is [`pollable_fd`](Self::pollable_fd). `None`
    /// (the default) for a mechanism that takes each message whole in
    /// one call.
    fn frame(&self, _msg: &[u8]) -> Option<Result<Vec<u8>>> {
        None
    }
}

/// The receiving end of any message mechanism (see the [module docs](self)).
///
/// One method to implement, [`recv_until`](Self::recv_until); the others
/// are provided.
pub trait MessageReceiver: Send {
    /// Receives the next message and its [`Meta`], waiting at most until
    /// `deadline`.
    ///
    /// Errors: [`Error::WouldBlock`] when `deadline` is [`Deadline::Now`]
    /// and nothing is there, [`Error::Timeout`] when an instant passed,
    /// [`Error::Disconnected`] when the sender is gone (or the stream
    /// ended) and everything it sent was received, anything else the
    /// mechanism reports.
    fn recv_until(&mut self, deadline: Deadline) -> Result<(Vec<u8>, Meta)>;

    /// Receives the next message into `buf` (replacing its contents),
    /// waiting at most until `deadline`; returns its [`Meta`]. Mechanisms
    /// that can copy straight into the buffer do so, reusing its
    /// allocation; the default moves [`recv_until`](Self::recv_until)'s
    /// vector in.
    fn recv_into_until(&mut self, buf: &mut Vec<u8>, deadline: Deadline) -> Result<Meta> {
        let (msg, meta) = self.recv_until(deadline)?;
        *buf = msg;
        Ok(meta)
    }

    /// Receives the next message, waiting while there is none.
    fn recv(&mut self) -> Result<Vec<u8>> {
        self.recv_until(Deadline::Never).map(|(msg, _)| msg)
    }

    /// Receives the next message and its [`Meta`], waiting while there is
    /// none.
    fn recv_with_meta(&mut self) -> Result<(Vec<u8>, Meta)> {
        self.recv_until(Deadline::Never)
    }

    /// Receives a message if one is there now.
    fn try_recv(&mut self) -> Result<Vec<u8>, TryRecvError> {
        self.recv_until(Deadline::Now)
            .map(|(msg, _)| msg)
            .map_err(TryRecvError::from)
    }

    /// Receives the next message, waiting at most `timeout`.
    fn recv_timeout(&mut self, timeout: Duration) -> Result<Vec<u8>, RecvTimeoutError> {
        self.recv_until(Deadline::after(timeout))
            .map(|(msg, _)| msg)
            .map_err(RecvTimeoutError::from)
    }

    /// A blocking iterator over the messages: each item is what
    /// [`recv`](Self::recv) returns; it ends at
    /// [`Error::Disconnected`], and after yielding any other error.
    ///
    /// A `Box<dyn MessageReceiver>` has it too; through a
    /// `rx: &mut dyn MessageReceiver`, write [`Iter::new(rx)`](Iter::new)
    /// (or `(&mut rx).iter()`).
    fn iter(&mut self) -> Iter<'_, Self>
    where
        Self: Sized,
    {
        Iter::new(self)
    }

    /// An iterator over the messages waiting now: it ends when there is
    /// none (or the sender is gone), and after yielding any other error.
    /// (Through a `&mut dyn MessageReceiver`: [`TryIter::new`].)
    fn try_iter(&mut self) -> TryIter<'_, Self>
    where
        Self: Sized,
    {
        TryIter::new(self)
    }

    /// A descriptor that `poll`/`epoll` reports readable when a receive
    /// may find a message (a hint: another receiver may take it first),
    /// for the mechanisms that have one (POSIX queues, byte streams);
    /// `None` for the others.
    fn pollable_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }
}

impl<S: MessageSender + ?Sized> MessageSender for Box<S> {
    fn send_until(&mut self, msg: &[u8], meta: Meta, deadline: Deadline) -> Result<()> {
        (**self).send_until(msg, meta, deadline)
    }
    fn pollable_fd(&self) -> Option<BorrowedFd<'_>> {
        (**self).pollable_fd()
    }
    fn frame(&self, msg: &[u8]) -> Option<Result<Vec<u8>>> {
        (**self).frame(msg)
    }
}

impl<S: MessageSender + ?Sized> MessageSender for &mut S {
    fn send_until(&mut self, msg: &[u8], meta: Meta, deadline: Deadline) -> Result<()> {
        (**self).send_until(msg, meta, deadline)
    }
    fn pollable_fd(&self) -> Option<BorrowedFd<'_>> {
        (**self).pollable_fd()
    }
    fn frame(&self, msg: &[u8]) -> Option<Result<Vec<u8>>> {
        (**self).frame(msg)
    }
}

impl<R: MessageReceiver + ?Sized> MessageReceiver for Box<R> {
    fn recv_until(&mut self, deadline: Deadline) -> Result<(Vec<u8>, Meta)> {
        (**self).recv_until(deadline)
    }
    fn recv_into_until(&mut self, buf: &mut Vec<u8>, deadline: Deadline) -> Result<Meta> {
        (**self).recv_into_until(buf, deadline)
    }
    fn pollable_fd(&self) -> Option<BorrowedFd<'_>> {
        (**self).pollable_fd()
    }
}

impl<R: MessageReceiver + ?Sized> MessageReceiver for &mut R {
    fn recv_until(&mut self, deadline: Deadline) -> Result<(Vec<u8>, Meta)> {
        (**self).recv_until(deadline)
    }
    fn recv_into_until(&mut self, buf: &mut Vec<u8>, deadline: Deadline) -> Result<Meta> {
        (**self).recv_into_until(buf, deadline)
    }
    fn pollable_fd(&self) -> Option<BorrowedFd<'_>> {
        (**self).pollable_fd()
    }
}

/// A blocking iterator over a receiver's messages
/// ([`MessageReceiver::iter`]): each item is a message or the error that
/// ended the iteration. It ends at [`Error::Disconnected`] (the sender is
/// gone and everything it sent was received) and right after yielding
/// any other error, so corruption and I/O errors are never swallowed.
#[derive(Debug)]
pub struct Iter<'a, R: ?Sized> {
    rx: &'a mut R,
    done: bool,
}

impl<'a, R: MessageReceiver + ?Sized> Iter<'a, R> {
    /// An iterator over `rx`'s messages.
    pub fn new(rx: &'a mut R) -> Self {
        Iter { rx, done: false }
    }
}

impl<R: MessageReceiver + ?Sized> Iterator for Iter<'_, R> {
    type Item = Result<Vec<u8>>;

    fn next(&mut self) -> Option<Result<Vec<u8>>> {
        if self.done {
            return None;
        }
        match self.rx.recv_until(Deadline::Never) {
            Ok((msg, _)) => Some(Ok(msg)),
            Err(Error::Disconnected) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl<R: MessageReceiver + ?Sized> std::iter::FusedIterator for Iter<'_, R> {}

/// An iterator over the messages a receiver has now
/// ([`MessageReceiver::try_iter`]): it ends when nothing is there (or the
/// sender is gone), and right after yielding any other error.
#[derive(Debug)]
pub struct TryIter<'a, R: ?Sized> {
    rx: &'a mut R,
    done: bool,
}

impl<'a, R: MessageReceiver + ?Sized> TryIter<'a, R> {
    /// An iterator over the messages `rx` has now.
    pub fn new(rx: &'a mut R) -> Self {
        TryIter { rx, done: false }
    }
}

impl<R: MessageReceiver + ?Sized> Iterator for TryIter<'_, R> {
    type Item = Result<Vec<u8>>;

    fn next(&mut self) -> Option<Result<Vec<u8>>> {
        if self.done {
            return None;
        }
        match self.rx.recv_until(Deadline::Now) {
            Ok((msg, _)) => Some(Ok(msg)),
            Err(Error::WouldBlock | Error::Disconnected) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl<R: MessageReceiver + ?Sized> std::iter::FusedIterator for TryIter<'_, R> {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A receiver that replays a script of results.
    struct Script(VecDeque<Result<Vec<u8>>>);

    impl MessageReceiver for Script {
        fn recv_until(&mut self, _deadline: Deadline) -> Result<(Vec<u8>, Meta)> {
            let next = self.0.pop_front().unwrap_or(Err(Error::Disconnected));
            next.map(|m| (m, Meta::default()))
        }
    }

    fn script(items: Vec<Result<Vec<u8>>>) -> Script {
        Script(items.into())
    }

    #[test]
    fn iter_yields_an_error_then_ends_and_ends_quietly_at_disconnect() {
        let mut rx = script(vec![
            Ok(b"a".to_vec()),
            Err(Error::corrupted("scribbled")),
            Ok(b"never".to_vec()),
        ]);
        let got: Vec<_> = rx.iter().collect();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].as_deref().unwrap(), b"a");
        assert!(matches!(got[1], Err(Error::Corrupted { .. })));
        let mut rx = script(vec![Ok(b"a".to_vec()), Ok(b"b".to_vec())]);
        let dyn_rx: &mut dyn MessageReceiver = &mut rx;
        let got: Vec<_> = Iter::new(dyn_rx).map(|r| r.unwrap()).collect();
        assert_eq!(got, [b"a".to_vec(), b"b".to_vec()]);
    }

    #[test]
    fn try_iter_stops_at_empty() {
        let mut rx = script(vec![
            Ok(b"a".to_vec()),
            Err(Error::WouldBlock),
            Ok(b"later".to_vec()),
        ]);
        let got: Vec<_> = rx.try_iter().map(|r| r.unwrap()).collect();
        assert_eq!(got, [b"a".to_vec()]);
        // The rest is still there for the next look.
        assert!(matches!(rx.try_recv(), Ok(m) if m == b"later"));
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Disconnected)));
    }

    #[test]
    fn boxed_and_borrowed_receivers_are_receivers() {
        fn takes(mut rx: impl MessageReceiver) -> Vec<u8> {
            rx.recv().unwrap()
        }
        let boxed: Box<dyn MessageReceiver> = Box::new(script(vec![Ok(b"x".to_vec())]));
        assert_eq!(takes(boxed), b"x");
        let mut boxed: Box<dyn MessageReceiver> = Box::new(script(vec![Ok(b"z".to_vec())]));
        assert_eq!(boxed.iter().count(), 1);
        let mut s = script(vec![Ok(b"y".to_vec())]);
        assert_eq!(takes(&mut s), b"y");
    }
}
