//! A [`Link`] over the library's one message interface
//! ([`ipcworks::message`]): the library's own message mechanisms (`shm-*`,
//! `queue`) are measured through the calls a user of that interface makes,
//! `send_until` and `recv_into_until` (which copies straight into the
//! harness's buffer, as `recv_slice`/`recv_into` did). Generic over the
//! concrete ends, not `dyn`: the calls are statically dispatched, as when
//! a user calls the concrete types.

use std::io;

use ipcworks::message::{Deadline, MessageReceiver, MessageSender, Meta};

use crate::harness::{Link, relax};
use crate::schema::Wait;

/// A sending end and a receiving end (and `K`, whatever must outlive
/// them, e.g. the mappings).
pub struct Messages<S, R, K = ()> {
    tx: S,
    rx: R,
    /// `Block`: blocking calls ([`Deadline::Never`]), which wait the
    /// mechanism's own way. `Poll`: one attempt ([`Deadline::Now`])
    /// retried with [`relax`], never sleeping.
    wait: Wait,
    _keep: K,
}

impl<S: MessageSender, R: MessageReceiver, K> Messages<S, R, K> {
    /// A link sending on `tx` and receiving on `rx`, keeping `keep`.
    pub fn new(tx: S, rx: R, wait: Wait, keep: K) -> Self {
        Messages {
            tx,
            rx,
            wait,
            _keep: keep,
        }
    }

    fn deadline(&self) -> Deadline {
        match self.wait {
            Wait::Block => Deadline::Never,
            Wait::Poll => Deadline::Now,
        }
    }
}

impl<S: MessageSender, R: MessageReceiver, K> Link for Messages<S, R, K> {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        let deadline = self.deadline();
        loop {
            // `Error::WouldBlock` matched as itself: turning each miss into
            // an `io::Error` would allocate, a cost the other mechanisms'
            // polling loops (which see a bare `EAGAIN`) do not pay.
            match self.tx.send_until(msg, Meta::default(), deadline) {
                Ok(()) => return Ok(()),
                Err(ipcworks::Error::WouldBlock) => relax(),
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        let want = buf.len();
        let deadline = self.deadline();
        loop {
            match self.rx.recv_into_until(buf, deadline) {
                Ok(_) => break,
                Err(ipcworks::Error::WouldBlock) => relax(),
                Err(e) => return Err(e.into()),
            }
        }
        if buf.len() != want {
            return Err(io::Error::other(format!(
                "received {} bytes, expected {want}",
                buf.len()
            )));
        }
        Ok(())
    }
}
