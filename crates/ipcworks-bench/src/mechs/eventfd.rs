//! `eventfd`: two `eventfd(2)` counters, one per direction; a message is
//! an 8-byte `write` that adds to the counter and a `read` that takes it.

use std::io;
use std::os::fd::OwnedFd;

use rustix::event::{EventfdFlags, eventfd};

use crate::harness::{Case, Handoff, Link, Mechanism, Setup, retry, set_tag, tag};
use crate::schema::{Metric, Wait};

/// The eventfd ping-pong.
pub struct Eventfd;

struct Counters {
    rx: OwnedFd,
    tx: OwnedFd,
    wait: Wait,
}

impl Link for Counters {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        let v = u64::from(tag(msg)).to_ne_bytes();
        retry(self.wait, || rustix::io::write(&self.tx, &v))?;
        Ok(())
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        let buf = buf.as_mut_slice();
        let mut v = [0u8; 8];
        retry(self.wait, || rustix::io::read(&self.rx, &mut v))?;
        let v = u64::from_ne_bytes(v);
        set_tag(buf, u32::try_from(v).map_err(io::Error::other)?);
        Ok(())
    }
}

impl Mechanism for Eventfd {
    fn name(&self) -> &'static str {
        "eventfd"
    }

    fn supports(&self, case: &Case) -> Result<(), String> {
        if case.metric == Metric::Rtt && case.size != crate::harness::RTT_SIZE {
            return Err(
                "an eventfd carries an 8-byte counter: its round trip is the same at every size"
                    .into(),
            );
        }
        match case.metric {
            Metric::Rtt => Ok(()),
            Metric::Throughput => Err("an eventfd carries an 8-byte counter, not a payload".into()),
        }
    }

    fn setup(&self, case: &Case) -> io::Result<Setup> {
        // Both processes share each counter's open file description, so
        // O_NONBLOCK (poll) is set once here for both.
        let mut flags = EventfdFlags::CLOEXEC;
        if case.wait == Wait::Poll {
            flags |= EventfdFlags::NONBLOCK;
        }
        let ping = eventfd(0, flags)?;
        let pong = eventfd(0, flags)?;
        let fds = vec![ping.try_clone()?, pong.try_clone()?];
        let link = Counters {
            rx: pong,
            tx: ping,
            wait: case.wait,
        };
        Ok(Setup::ready(fds, vec![], link))
    }

    fn peer(&self, case: &Case, mut h: Handoff) -> io::Result<Box<dyn Link>> {
        Ok(Box::new(Counters {
            rx: h.fd(0)?,
            tx: h.fd(1)?,
            wait: case.wait,
        }))
    }
}
