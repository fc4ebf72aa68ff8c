//! Messages over byte streams: a [`FramedSender`] and a
//! [`FramedReceiver`] put [frames](crate::frame) on any readable or
//! writable descriptor — a pipe or FIFO end, a Unix or TCP stream socket,
//! standard input or output — and make it a mechanism of the one
//! [message interface](crate::message).
//!
//! A byte stream has no message boundaries, so each message travels as a
//! line ([`Framing::Lines`], what `cat`, `nc` and `socat` speak) or as a
//! length-prefixed frame ([`Framing::Frames`], any bytes). The receiver
//! reads until the writer's end is closed: then, after the last message,
//! [`Error::Disconnected`] (end of stream). [`Meta`] does not travel.
//!
//! Deadlines: a receive waits for the descriptor to become readable
//! (`poll`) at most until its deadline, so `try_recv` and
//! `recv_timeout` work on any stream. A send waits (`poll`) at most until
//! its deadline for room to *start* the message; once started, a message
//! is written whole (a byte stream cannot take half a message back), so a
//! message larger than the room in a pipe may still block for the rest.
//!
//! A stream that breaks the framing (a frame longer than the maximum, a
//! line too long, a stream ending mid-frame) or fails to read yields that
//! error once; the receiver is then out of step with the stream and ends:
//! later calls return [`Error::Disconnected`].
//!
//! ```
//! use ipcworks::frame::Framing;
//! use ipcworks::message::{MessageReceiver, MessageSender};
//! use ipcworks::stream::{FramedReceiver, FramedSender};
//!
//! let (r, w) = ipcworks::pipe::pipe()?;
//! let mut tx = FramedSender::new(w, Framing::Frames);
//! let mut rx = FramedReceiver::new(r, Framing::Frames);
//! tx.send(b"one")?;
//! tx.send(b"two\nlines")?;
//! drop(tx); // end of stream
//! let got: Vec<Vec<u8>> = rx.iter().collect::<ipcworks::Result<_>>()?;
//! assert_eq!(got, [b"one".to_vec(), b"two\nlines".to_vec()]);
//! # Ok::<(), ipcworks::Error>(())
//! ```

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};

use crate::frame::{FrameReader, FrameWriter, Framing};
use crate::message::{Deadline, MessageReceiver, MessageSender, Meta};
use crate::sys::fdio::{self, Ready};
use crate::{Error, Result};

/// The error for a wait that found the descriptor not ready by `deadline`.
fn not_ready(deadline: Deadline) -> Error {
    if deadline.is_now() {
        Error::WouldBlock
    } else {
        Error::Timeout
    }
}

/// Waits (`poll`) until `fd` is ready for `what`, at most until `deadline`.
fn ready(fd: BorrowedFd<'_>, what: Ready, deadline: Deadline) -> Result<()> {
    match fdio::wait(fd, what, deadline) {
        Ok(true) => Ok(()),
        Ok(false) => Err(not_ready(deadline)),
        Err(e) => Err(Error::io("poll", e)),
    }
}

/// Sends messages, framed, over a writable byte stream `W` (see the
/// [module docs](self)).
#[derive(Debug)]
pub struct FramedSender<W> {
    w: FrameWriter<W>,
}

impl<W: Write + AsFd> FramedSender<W> {
    /// Frames messages onto `inner`, refusing messages above
    /// [`frame::DEFAULT_MAX`](crate::frame::DEFAULT_MAX).
    pub fn new(inner: W, framing: Framing) -> Self {
        Self::with_max(inner, framing, crate::frame::DEFAULT_MAX)
    }

    /// Frames messages onto `inner`, refusing messages above `max` bytes
    /// ([`Error::MessageTooLarge`]).
    pub fn with_max(inner: W, framing: Framing, max: usize) -> Self {
        FramedSender {
            w: FrameWriter::with_max(inner, framing, max),
        }
    }

    /// The largest message sent.
    pub fn max_message(&self) -> usize {
        self.w.max()
    }

    /// The stream.
    pub fn get_ref(&self) -> &W {
        self.w.get_ref()
    }

    /// The stream (writing to it directly breaks the framing).
    pub fn get_mut(&mut self) -> &mut W {
        self.w.get_mut()
    }

    /// The stream, taken back.
    pub fn into_inner(self) -> W {
        self.w.into_inner()
    }
}

impl<W: Write + AsFd + Send> MessageSender for FramedSender<W> {
    /// Checks `msg` (size; no newline in line mode), waits at most until
    /// `deadline` for the stream to take bytes, then writes the message
    /// whole. `meta` does not travel. A reader that is gone is
    /// [`Error::Disconnected`], never `SIGPIPE` on sockets (see
    /// [`pipe`](crate::pipe#broken-pipes) for pipes).
    fn send_until(&mut self, msg: &[u8], _meta: Meta, deadline: Deadline) -> Result<()> {
        self.w.check(msg)?;
        if deadline != Deadline::Never {
            ready(self.w.get_ref().as_fd(), Ready::Write, deadline)?;
        }
        self.w.write_frame(msg)
    }

    /// The stream's descriptor: writable when it takes bytes.
    fn pollable_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.w.get_ref().as_fd())
    }

    /// The message's frame (checked as [`send_until`](Self::send_until)
    /// checks it), for an async wrapper that writes it piecemeal.
    fn frame(&self, msg: &[u8]) -> Option<Result<Vec<u8>>> {
        let framed = self.w.check(msg).and_then(|()| {
            let mut out = Vec::with_capacity(msg.len() + crate::frame::HEADER);
            crate::frame::encode(msg, self.w.framing(), &mut out)?;
            Ok(out)
        });
        Some(framed)
    }
}

/// Receives messages, framed, from a readable byte stream `R` (see the
/// [module docs](self)).
#[derive(Debug)]
pub struct FramedReceiver<R> {
    r: FrameReader<R>,
    /// How the stream ended, once it has: nothing more to read.
    end: Option<End>,
}

/// How a [`FramedReceiver`]'s stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// End of stream between messages.
    Clean,
    /// An error: a broken frame, a read that failed.
    Broken,
}

impl<R: Read + AsFd> FramedReceiver<R> {
    /// Reads messages from `inner`, refusing messages above
    /// [`frame::DEFAULT_MAX`](crate::frame::DEFAULT_MAX).
    pub fn new(inner: R, framing: Framing) -> Self {
        Self::with_max(inner, framing, crate::frame::DEFAULT_MAX)
    }

    /// Reads messages from `inner`, refusing messages above `max` bytes
    /// ([`Error::MessageTooLarge`], checked before they are read).
    pub fn with_max(inner: R, framing: Framing, max: usize) -> Self {
        FramedReceiver {
            r: FrameReader::with_max(inner, framing, max),
            end: None,
        }
    }

    /// The largest message accepted.
    pub fn max_message(&self) -> usize {
        self.r.max()
    }

    /// Whether the stream has ended (or broke the framing): every later
    /// receive is [`Error::Disconnected`].
    pub fn is_done(&self) -> bool {
        self.end.is_some()
    }

    /// Whether the stream ended cleanly: end of stream between messages,
    /// after the last one was received (not a broken frame or a failed
    /// read).
    pub fn is_at_end(&self) -> bool {
        self.end == Some(End::Clean)
    }

    /// The stream.
    pub fn get_ref(&self) -> &R {
        self.r.get_ref()
    }

    /// The stream, taken back (bytes read but not yet returned as a
    /// message are lost).
    pub fn into_inner(self) -> R {
        self.r.into_inner()
    }

    /// Ends the stream with `e` (the receiver is out of step with it).
    fn fail<T>(&mut self, e: Error) -> Result<T> {
        self.end = Some(End::Broken);
        Err(e)
    }
}

impl<R: Read + AsFd + Send> MessageReceiver for FramedReceiver<R> {
    /// The next message: one already buffered, else what the stream
    /// brings by `deadline`. [`Error::Disconnected`] after the last
    /// message of a stream whose writers have all closed.
    fn recv_until(&mut self, deadline: Deadline) -> Result<(Vec<u8>, Meta)> {
        if self.end.is_some() {
            return Err(Error::Disconnected);
        }
        loop {
            match self.r.try_frame() {
                Ok(Some(m)) => return Ok((m, Meta::default())),
                Ok(None) => {}
                Err(e) => return self.fail(e),
            }
            if !self.r.is_eof() {
                ready(self.r.get_ref().as_fd(), Ready::Read, deadline)?;
                match self.r.fill() {
                    Ok(0) => {}
                    Ok(_) => continue,
                    // A descriptor someone else made non-blocking, read
                    // before its data arrived: wait again.
                    Err(Error::WouldBlock) => continue,
                    Err(e) => return self.fail(e),
                }
            }
            // End of stream: a last message (a line without its newline),
            // a frame cut short, or nothing more.
            return match self.r.read_frame() {
                Ok(Some(m)) => Ok((m, Meta::default())),
                Ok(None) => {
                    self.end = Some(End::Clean);
                    Err(Error::Disconnected)
                }
                Err(e) => self.fail(e),
            };
        }
    }

    /// The stream's descriptor: readable when bytes (or the end) arrived.
    fn pollable_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.r.get_ref().as_fd())
    }
}
