//! `tcp`: a TCP connection over loopback (127.0.0.1), `TCP_NODELAY` on both
//! ends so small messages leave at once.

use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use crate::harness::{Case, Handoff, Link, Mechanism, Setup};
use crate::mechs::fd::Stream;

/// TCP over loopback.
pub struct Tcp;

fn stream(s: TcpStream, case: &Case) -> io::Result<Box<dyn Link>> {
    s.set_nodelay(true)?;
    let fd: OwnedFd = s.into();
    Ok(Box::new(Stream::new(fd, None, case.wait)?))
}

impl Mechanism for Tcp {
    fn name(&self) -> &'static str {
        "tcp"
    }

    fn setup(&self, case: &Case) -> io::Result<Setup> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let case = *case;
        let connect = Box::new(move |deadline: Instant| -> io::Result<Box<dyn Link>> {
            loop {
                match listener.accept() {
                    Ok((s, _)) => {
                        s.set_nonblocking(false)?;
                        return stream(s, &case);
                    }
                    Err(e)
                        if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline =>
                    {
                        std::thread::sleep(Duration::from_micros(200))
                    }
                    Err(e) => return Err(e),
                }
            }
        });
        Ok(Setup {
            fds: vec![],
            args: vec![port.to_string()],
            connect,
            keep: vec![],
        })
    }

    fn peer(&self, case: &Case, h: Handoff) -> io::Result<Box<dyn Link>> {
        let port: u16 = h.arg(0)?.parse().map_err(io::Error::other)?;
        stream(TcpStream::connect(("127.0.0.1", port))?, case)
    }
}
