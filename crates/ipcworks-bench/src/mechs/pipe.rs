//! `pipe`: two anonymous pipes (`pipe2(2)`), one per direction, inherited
//! by the peer.

use std::io;

use rustix::pipe::{PipeFlags, pipe_with};

use crate::harness::{Case, Handoff, Link, Mechanism, Setup};
use crate::mechs::fd::Stream;

/// The anonymous pipe pair.
pub struct Pipe;

impl Mechanism for Pipe {
    fn name(&self) -> &'static str {
        "pipe"
    }

    fn setup(&self, case: &Case) -> io::Result<Setup> {
        let (ping_r, ping_w) = pipe_with(PipeFlags::CLOEXEC)?;
        let (pong_r, pong_w) = pipe_with(PipeFlags::CLOEXEC)?;
        let link = Stream::new(pong_r, Some(ping_w), case.wait)?;
        Ok(Setup::ready(vec![ping_r, pong_w], vec![], link))
    }

    fn peer(&self, case: &Case, mut h: Handoff) -> io::Result<Box<dyn Link>> {
        Ok(Box::new(Stream::new(h.fd(0)?, Some(h.fd(1)?), case.wait)?))
    }
}
