//! `floor`: two processes bouncing one cache line, spinning. Nothing
//! between two cores can be faster; every round trip is shown as a
//! multiple of this one.

use std::io;

use crate::harness::{Case, Handoff, Link, Mechanism, Setup};
use crate::mechs::line::Line;
use crate::schema::{Metric, Wait};

/// The cache-line bounce.
pub struct Floor;

struct Spin(Line);

impl Link for Spin {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.0.send(msg);
        Ok(())
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        let buf = buf.as_mut_slice();
        while !self.0.try_recv(buf) {
            crate::harness::relax();
        }
        Ok(())
    }
}

impl Mechanism for Floor {
    fn name(&self) -> &'static str {
        "floor"
    }

    fn supports(&self, case: &Case) -> Result<(), String> {
        if case.metric == Metric::Rtt && case.size != crate::harness::RTT_SIZE {
            return Err(
                "the floor carries no payload: its round trip is the same at every size".into(),
            );
        }
        match (case.metric, case.wait) {
            (Metric::Rtt, Wait::Poll) => Ok(()),
            (Metric::Rtt, Wait::Block) => {
                Err("the floor only spins: it is the cost of moving one cache line".into())
            }
            (Metric::Throughput, _) => {
                Err("the floor carries no payload (memcpy is the throughput baseline)".into())
            }
        }
    }

    fn throughput_wait(&self) -> Wait {
        Wait::Poll
    }

    fn setup(&self, _case: &Case) -> io::Result<Setup> {
        let (line, fd) = Line::create()?;
        Ok(Setup::ready(vec![fd], vec![], Spin(line)))
    }

    fn peer(&self, _case: &Case, mut h: Handoff) -> io::Result<Box<dyn Link>> {
        Ok(Box::new(Spin(Line::open(h.fd(0)?)?)))
    }
}
