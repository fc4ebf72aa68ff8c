//! `futex`: the floor's cache line plus `futex(2)`: the sender stores the
//! word and calls `FUTEX_WAKE`; the receiver sleeps in `FUTEX_WAIT`
//! (block) or spins on the word (poll, so the figure is the floor plus one
//! wake system call that finds nobody asleep).

use std::io;

use ipcworks::__bench::{futex_wait, futex_wake};

use crate::harness::{Case, Handoff, Link, Mechanism, Setup};
use crate::mechs::line::Line;
use crate::schema::{Metric, Wait};

/// The futex hand-off.
pub struct Futex;

struct Wakeup {
    line: Line,
    wait: Wait,
}

impl Link for Wakeup {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.line.send(msg);
        futex_wake(self.line.tx(), 1);
        Ok(())
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        let buf = buf.as_mut_slice();
        while !self.line.try_recv(buf) {
            match self.wait {
                Wait::Block => {
                    futex_wait(self.line.rx(), self.line.last());
                }
                Wait::Poll => crate::harness::relax(),
            }
        }
        Ok(())
    }
}

impl Mechanism for Futex {
    fn name(&self) -> &'static str {
        "futex"
    }

    fn supports(&self, case: &Case) -> Result<(), String> {
        if case.metric == Metric::Rtt && case.size != crate::harness::RTT_SIZE {
            return Err(
                "a futex carries no payload: its round trip is the same at every size".into(),
            );
        }
        match case.metric {
            Metric::Rtt => Ok(()),
            Metric::Throughput => Err("a futex hands off a wake-up, not a payload".into()),
        }
    }

    fn setup(&self, case: &Case) -> io::Result<Setup> {
        let (line, fd) = Line::create()?;
        let link = Wakeup {
            line,
            wait: case.wait,
        };
        Ok(Setup::ready(vec![fd], vec![], link))
    }

    fn peer(&self, case: &Case, mut h: Handoff) -> io::Result<Box<dyn Link>> {
        Ok(Box::new(Wakeup {
            line: Line::open(h.fd(0)?)?,
            wait: case.wait,
        }))
    }
}
