//! `queue:NAME`: the native shared-memory priority [queue](crate::queue).
//!
//! Policy: a queue persists, like the kernel's. A **sender creates** it if
//! missing (mode 0600, [`Options::capacity`] messages of at most
//! [`Options::max_message`] bytes), so its message waits for a receiver
//! started later; a receiver creates it only with
//! [`Options::create_queue`] (`--create`), so a mistyped name is an error
//! rather than a queue left behind. The priority travels in
//! [`Meta::priority`](crate::message::Meta::priority).

use super::Options;
use crate::Result;
use crate::queue::{Queue, QueueOptions};

/// Opens the queue `name`; with `create`, creates it if missing (mode
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
