//! `queue`: two native ipcworks priority queues in shared memory
//! (`ipcworks::queue`, the bounded buffer on the crate's own semaphores and
//! robust mutex), ping and pong, sized like the `mq` case: up to 10
//! messages of the case's size on ping, 1 on pong.

use std::io;

use ipcworks::queue::{MAX_MESSAGE, Queue};

use super::message::Messages;
use crate::harness::{Case, Handoff, Link, Mechanism, Setup};

/// The native shared-memory queue.
pub struct NativeQueue;

/// Send on one queue, receive from the other, through the library's
/// message interface ([`Messages`]): `Block` the blocking calls, `Poll`
/// one attempt retried; a receive copies straight into the harness's
/// buffer, like `mq_receive`.
type Pair = Messages<Queue, Queue>;

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
        let link: Pair = Messages::new(make(&ping, 10)?, make(&pong, 1)?, case.wait, ());
        Ok(Setup::ready(vec![], vec![base], link))
    }

    fn peer(&self, case: &Case, h: Handoff) -> io::Result<Box<dyn Link>> {
        let (ping, pong) = names(h.arg(0)?);
        let link: Pair = Messages::new(Queue::open(&pong)?, Queue::open(&ping)?, case.wait, ());
        Ok(Box::new(link))
    }
}
