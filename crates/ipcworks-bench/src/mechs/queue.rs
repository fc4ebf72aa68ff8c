//! `queue`: two native ipcworks priority queues in shared memory
//! (`ipcworks::queue`, the bounded buffer on the crate's own semaphores and
//! robust mutex), ping and pong, sized like the `mq` case: up to 10
//! messages of the case's size on ping, 1 on pong.

use std::io;

use ipcworks::queue::{MAX_MESSAGE, Queue};

use crate::harness::{Case, Handoff, Link, Mechanism, Setup, relax};
use crate::schema::Wait;

/// The native shared-memory queue.
pub struct NativeQueue;

struct Pair {
    rx: Queue,
    tx: Queue,
    wait: Wait,
}

/// Retries a `try_` call while it would block (spinning, never sleeping),
/// matching `Error::WouldBlock` itself: turning each miss into an
/// `io::Error` would allocate, a cost the other mechanisms' polling loops
/// (which see a bare `EAGAIN`) do not pay.
fn poll<T>(mut f: impl FnMut() -> ipcworks::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(ipcworks::Error::WouldBlock) => relax(),
            Err(e) => return Err(e.into()),
        }
    }
}

impl Link for Pair {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        match self.wait {
            Wait::Block => Ok(self.tx.send(msg, 0)?),
            Wait::Poll => poll(|| self.tx.try_send(msg, 0)),
        }
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<()> {
        // Straight into the caller's buffer, like mq_receive.
        let (n, _) = match self.wait {
            Wait::Block => self.rx.recv_into(buf)?,
            Wait::Poll => poll(|| self.rx.try_recv_into(buf))?,
        };
        if n != buf.len() {
            return Err(io::Error::other(format!(
                "received {n} bytes, expected {}",
                buf.len()
            )));
        }
        Ok(())
    }
}

fn names(base: &str) -> (String, String) {
    (format!("{base}-ping"), format!("{base}-pong"))
}

impl Mechanism for NativeQueue {
    fn name(&self) -> &'static str {
        "queue"
    }

    fn supports(&self, case: &Case) -> Result<(), String> {
        if case.size > MAX_MESSAGE {
            return Err(format!("messages above {MAX_MESSAGE} bytes"));
        }
        Ok(())
    }

    fn setup(&self, case: &Case) -> io::Result<Setup> {
        let base = super::unique("queue");
        let (ping, pong) = names(&base);
        let make = |name: &str, capacity: usize| {
            Queue::options()
                .capacity(capacity)
                .max_message(case.size.max(1))
                .remove_on_drop(true)
                .create(name)
        };
        // The parent's queues remove their names when the link drops.
        let link = Pair {
            tx: make(&ping, 10)?,
            rx: make(&pong, 1)?,
            wait: case.wait,
        };
        Ok(Setup::ready(vec![], vec![base], link))
    }

    fn peer(&self, case: &Case, h: Handoff) -> io::Result<Box<dyn Link>> {
        let (ping, pong) = names(h.arg(0)?);
        Ok(Box::new(Pair {
            rx: Queue::open(&ping)?,
            tx: Queue::open(&pong)?,
            wait: case.wait,
        }))
    }
}
