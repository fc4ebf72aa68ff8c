//! `unix`, `unix-dgram`, `unix-seqpacket`: a connected pair of Unix-domain
//! sockets (`socketpair(2)`) of each type, one end inherited by the peer.

use std::io;

use rustix::net::{AddressFamily, SocketFlags, SocketType, socketpair};

use crate::harness::{Case, Handoff, Link, Mechanism, Setup};
use crate::mechs::fd::{Datagram, Stream};

/// A Unix-domain socket pair of one type.
pub struct Unix {
    name: &'static str,
    kind: SocketType,
}

/// Stream sockets.
pub const STREAM: Unix = Unix {
    name: "unix",
    kind: SocketType::STREAM,
};
/// Datagram sockets.
pub const DGRAM: Unix = Unix {
    name: "unix-dgram",
    kind: SocketType::DGRAM,
};
/// Sequenced-packet sockets.
pub const SEQPACKET: Unix = Unix {
    name: "unix-seqpacket",
    kind: SocketType::SEQPACKET,
};

/// The default socket send buffer (`net.core.wmem_default`), which one
/// datagram must fit in.
fn send_buffer() -> usize {
    std::fs::read_to_string("/proc/sys/net/core/wmem_default")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(212_992)
}

impl Unix {
    fn link(&self, fd: std::os::fd::OwnedFd, case: &Case) -> io::Result<Box<dyn Link>> {
        Ok(if self.kind == SocketType::STREAM {
            Box::new(Stream::new(fd, None, case.wait)?)
        } else {
            Box::new(Datagram::new(fd, case.wait)?)
        })
    }
}

impl Mechanism for Unix {
    fn name(&self) -> &'static str {
        self.name
    }

    fn detects_death(&self) -> bool {
        // A stream reports the end of its peer as end of file.
        self.kind == SocketType::STREAM
    }

    fn supports(&self, case: &Case) -> Result<(), String> {
        let buf = send_buffer();
        // Each datagram also pays for its kernel buffer header (round
        // trips at several sizes too: `--rtt-sizes`).
        if self.kind != SocketType::STREAM && case.size + 1024 > buf {
            return Err(format!(
                "a message must fit in the socket send buffer (net.core.wmem_default = {buf} bytes)"
            ));
        }
        Ok(())
    }

    fn setup(&self, case: &Case) -> io::Result<Setup> {
        let (a, b) = socketpair(AddressFamily::UNIX, self.kind, SocketFlags::CLOEXEC, None)?;
        Ok(Setup {
            fds: vec![b],
            args: vec![],
            connect: {
                let link = self.link(a, case)?;
                Box::new(move |_| Ok(link))
            },
            keep: vec![],
        })
    }

    fn peer(&self, case: &Case, mut h: Handoff) -> io::Result<Box<dyn Link>> {
        self.link(h.fd(0)?, case)
    }
}
