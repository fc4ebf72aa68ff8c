//! Links over descriptors: byte streams (pipes, FIFOs, stream sockets) and
//! message descriptors (datagram and seqpacket sockets), shared by several
//! mechanisms.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use rustix::io::{FdFlags, read, write};

use crate::harness::{Link, retry};
use crate::schema::Wait;

/// Sets or clears `O_NONBLOCK` to match `wait`.
pub fn set_wait(fd: impl AsFd, wait: Wait) -> io::Result<()> {
    let fd = fd.as_fd();
    let mut fl = rustix::fs::fcntl_getfl(fd)?;
    fl.set(rustix::fs::OFlags::NONBLOCK, wait == Wait::Poll);
    rustix::fs::fcntl_setfl(fd, fl)?;
    Ok(())
}

/// Marks a descriptor close-on-exec (the harness hands it over itself).
pub fn cloexec(fd: &OwnedFd) -> io::Result<()> {
    rustix::io::fcntl_setfd(fd, FdFlags::CLOEXEC)?;
    Ok(())
}

/// A copy of a segment's descriptor to hand to the peer (close-on-exec:
/// the harness hands it over itself).
pub fn handed(seg: &ipcworks::shm::Segment) -> io::Result<OwnedFd> {
    let fd = seg.as_fd().try_clone_to_owned()?;
    cloexec(&fd)?;
    Ok(fd)
}

/// A byte stream: messages are written whole with as many `write` calls
/// as it takes and read back with as many `read` calls.
pub struct Stream {
    rx: OwnedFd,
    tx: Option<OwnedFd>,
    wait: Wait,
}

impl Stream {
    /// Reads from `rx`, writes to `tx` (or to `rx` when `None`: a socket).
    pub fn new(rx: OwnedFd, tx: Option<OwnedFd>, wait: Wait) -> io::Result<Stream> {
        set_wait(&rx, wait)?;
        if let Some(t) = &tx {
            set_wait(t, wait)?;
        }
        Ok(Stream { rx, tx, wait })
    }
}

impl Link for Stream {
    fn send(&mut self, mut msg: &[u8]) -> io::Result<()> {
        let fd = self.tx.as_ref().unwrap_or(&self.rx);
        while !msg.is_empty() {
            let n = retry(self.wait, || write(fd, msg))?;
            msg = &msg[n..];
        }
        Ok(())
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        let mut buf = buf.as_mut_slice();
        while !buf.is_empty() {
            let n = retry(self.wait, || read(&self.rx, &mut *buf))?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            buf = &mut buf[n..];
        }
        Ok(())
    }
}

/// A connected datagram or seqpacket socket: one `write` per message, one
/// `read` per message, boundaries kept by the kernel.
pub struct Datagram {
    fd: OwnedFd,
    wait: Wait,
}

impl Datagram {
    /// Wraps a connected socket.
    pub fn new(fd: OwnedFd, wait: Wait) -> io::Result<Datagram> {
        set_wait(&fd, wait)?;
        Ok(Datagram { fd, wait })
    }
}

impl Link for Datagram {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        let n = retry(self.wait, || write(&self.fd, msg))?;
        if n != msg.len() {
            return Err(io::Error::other(format!("sent {n} of {} bytes", msg.len())));
        }
        Ok(())
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        let buf = buf.as_mut_slice();
        let n = retry(self.wait, || read(&self.fd, &mut *buf))?;
        if n != buf.len() {
            return Err(io::Error::other(format!(
                "received a {n}-byte message, expected {}",
                buf.len()
            )));
        }
        Ok(())
    }
}
