//! `queue`: two native ipcworks priority queues in shared memory
//! (`ipcworks::queue`, the bounded buffer on the crate's own semaphores and
//! robust mutex), ping and pong, sized like the `mq` case: up to 10
//! messages of the case's size on ping, 1 on pong.

use std::io;

use ipcworks::queue::{MAX_MESSAGE, Queue};

use crate::harness::{Case, Handoff, Link, Mechanism, Setup, retry_io};
use crate::schema::Wait;

/// The native shared-memory queue.
pub struct NativeQueue;

struct Pair {
    rx: Queue,
    tx: Queue,
    wait: Wait,
}

impl Link for Pair {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        match self.wait {
            Wait::Block => Ok(self.tx.send(msg, 0)?),
            Wait::Poll => retry_io(Wait::Poll, || Ok(self.tx.try_send(msg, 0)?)),
        }
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let (m, _) = match self.wait {
            Wait::Block => self.rx.recv()?,
            Wait::Poll => retry_io(Wait::Poll, || Ok(self.rx.try_recv()?))?,
        };
        if m.len() != buf.len() {
            return Err(io::Error::other(format!(
                "received {} bytes, expected {}",
                m.len(),
                buf.len()
            )));
        }
        buf.copy_from_slice(&m);
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
