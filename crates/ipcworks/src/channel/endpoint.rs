//! The `shm:NAME` endpoint: the channel behind [`crate::endpoint`].

use std::time::Duration;

use super::{Builder, Channel, DEFAULT_MAX_MESSAGE, Receiver, Sender};
use crate::endpoint::{DynReceiver, DynSender, Meta, Options};
use crate::{Error, Result};

/// How long a sender waits for the receiver to create the channel.
const OPEN_WAIT: Duration = Duration::from_secs(5);

impl DynSender for Sender {
    fn send(&mut self, msg: &[u8], _meta: Meta) -> Result<()> {
        Sender::send(self, msg)
    }
}

impl DynReceiver for Receiver {
    fn recv(&mut self, timeout: Option<Duration>) -> Result<(Vec<u8>, Meta)> {
        let msg = match timeout {
            Some(t) => self.recv_timeout(t)?,
            None => Receiver::recv(self)?,
        };
        Ok((msg, Meta::default()))
    }
}

/// `shm:NAME` for sending: opens the channel its receiver created, waiting
/// up to 5 s for it to appear.
pub fn open_sender(name: &str, _opts: &Options) -> Result<Box<dyn DynSender>> {
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
    Ok(Box::new(chan.sender()?))
}

/// `shm:NAME` for receiving: creates the channel (`options.max_message`,
/// and room for `options.capacity` messages of that size), or takes the
/// receiver seat of an existing one whose receiver is gone. Either way the
/// channel is removed when this receiver drops.
pub fn open_receiver(name: &str, opts: &Options) -> Result<Box<dyn DynReceiver>> {
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
    Ok(Box::new(rx))
}
