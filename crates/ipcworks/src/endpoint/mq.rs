//! `mq:NAME`: a POSIX message queue `/NAME` ([`mq::posix`](crate::mq::posix)).
//!
//! Policy: as for `queue:` — the queue persists; a **sender creates** it if
//! missing (mode 0600, [`Options::capacity`] messages of at most
//! [`Options::max_message`] bytes, within the system's limits), a
//! receiver only with [`Options::create_queue`]. The priority travels in
//! [`Meta::priority`](crate::message::Meta::priority).

use super::Options;
use crate::Result;
use crate::mq::posix::{Queue, QueueOptions};

/// Opens the queue `/name`; with `create`, creates it if missing (mode
/// 0600, persistent, sizes from `opts`).
pub fn open(name: &str, opts: &Options, create: bool) -> Result<Queue> {
    let mut o = QueueOptions::new();
    if let Some(c) = opts.capacity {
        o.capacity(c);
    }
    if let Some(m) = opts.max_message {
        o.max_message(m);
    }
    if create {
        Ok(o.open_or_create(name)?.0)
    } else {
        o.open(name)
    }
}
