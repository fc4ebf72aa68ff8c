//! `sysv:KEY`: a System V message queue ([`mq::sysv`](crate::mq::sysv)).
//!
//! Policy: as for `queue:` — the queue persists; a **sender creates** it if
//! missing (mode 0600), a receiver only with [`Options::create_queue`].
//! [`Options::capacity`] and [`Options::max_message`] do not apply: System
//! V sizes a queue in bytes (`kernel.msgmnb`) and messages by
//! `kernel.msgmax`. The sender's type travels in
//! [`Meta::msg_type`](crate::message::Meta::msg_type) (0 sends type 1);
//! the receiver selects by [`Options::recv_type`] as `msgrcv(2)` does.

use super::Options;
use crate::Result;
use crate::mq::sysv::{Queue, QueueOptions, Receiver};

/// Opens the queue under `key`; with `create`, creates it if missing (mode
/// 0600, persistent).
pub fn open(key: i32, _opts: &Options, create: bool) -> Result<Queue> {
    if create {
        Ok(QueueOptions::new().open_or_create(key)?.0)
    } else {
        QueueOptions::new().open(key)
    }
}

/// Opens the queue under `key` for receiving the type `opts.recv_type`
/// selects, creating it only with [`Options::create_queue`].
pub fn open_receiver(key: i32, opts: &Options) -> Result<Receiver> {
    Ok(Receiver::new(
        open(key, opts, opts.create_queue)?,
        opts.recv_type,
    ))
}
