//! `shm:NAME`: the shared-memory [channel](crate::channel).
//!
//! Policy: the **receiver creates** the channel (mode 0600, sized by
//! [`Options::max_message`] and [`Options::capacity`]) and removes it when
//! it drops; a receiver that finds the channel already there takes over
//! the seat of a receiver that is gone (a live one refuses it) and removes
//! the channel in its turn. A sender opens the channel its receiver
//! created, waiting up to 5 s for it to appear.

use std::time::Duration;

use super::Options;
use crate::channel::{Builder, Channel, DEFAULT_MAX_MESSAGE, Receiver, Sender};
use crate::{Error, Result};

/// How long a sender waits for the receiver to create the channel.
const OPEN_WAIT: Duration = Duration::from_secs(5);

/// `shm:NAME` for sending: opens the channel its receiver created, waiting
/// up to 5 s for it to appear.
pub fn open_sender(name: &str, _opts: &Options) -> Result<Sender> {
    let chan = Builder::default()
        .open_wait(OPEN_WAIT)
        .open(name)
        .map_err(|e| match e {
            Error::NotFound { .. } => Error::NotFound {
                kind: "shared-memory channel (start its receiver first, e.g. `ipcworks recv shm:NAME`)",
                name: name.to_string(),
            },
            other => other,
        })?;
    chan.sender()
}

/// `shm:NAME` for receiving: creates the channel (`opts.max_message`, and
/// room for `opts.capacity` messages of that size), or takes the receiver
/// seat of an existing one whose receiver is gone. Either way the channel
/// is removed when this receiver drops.
pub fn open_receiver(name: &str, opts: &Options) -> Result<Receiver> {
    let max = opts.max_message.unwrap_or(DEFAULT_MAX_MESSAGE);
    let mut b = Builder::default();
    b.max_message(max);
    if let Some(n) = opts.capacity {
        b.capacity(n);
    }
    let (chan, created): (Channel, bool) = match b.create(name) {
        Ok(c) => (c, true),
        Err(Error::AlreadyExists { .. }) => (b.open(name)?, false),
        Err(e) => return Err(e),
    };
    let rx = chan.receiver()?;
    if !created {
        // We took over the seat of a receiver that is gone: its channel is
        // ours to remove now.
        chan.remove_on_drop();
    }
    Ok(rx)
}
