//! The byte-stream endpoints — `fifo:PATH`, `unix:PATH`, `tcp:HOST:PORT`
//! and `-` (stdio) — as [`DynSender`]/[`DynReceiver`], carrying lines by
//! default and length-prefixed frames with `binary`.
//!
//! Who creates what:
//! - `fifo:PATH`: whichever side comes first creates the FIFO (mode 0600)
//!   and removes it when done; the other uses it. A sender waits for a
//!   reader to open it; a receiver waits for the first writer. The
//!   receiver reads until every writer has closed (end of stream).
//! - `unix:PATH` and `tcp:HOST:PORT`: the receiver listens (a Unix socket
//!   file is created 0600 and removed on exit) and takes one client at a
//!   time, reading each to its end before accepting the next; the sender
//!   connects.
//! - `-`: the sender writes to stdout, the receiver reads stdin.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;

use super::{UnixListener, UnixStream};
use crate::endpoint::{DynReceiver, DynSender, Endpoint, Meta, Options};
use crate::frame::{FrameReader, FrameWriter, Framing};
use crate::pipe::{Fifo, FifoOptions};
use crate::sys::fdio::{self, Ready};
use crate::sys::time::Deadline;
use crate::{Error, Result};

/// Any readable or writable descriptor: a pipe, FIFO, socket or stdio.
/// Sockets are written with `MSG_NOSIGNAL`.
#[derive(Debug)]
struct Fd {
    fd: OwnedFd,
    socket: bool,
}

impl Read for Fd {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        fdio::read(self.fd.as_fd(), buf).map_err(|e| match e {
            crate::sys::Errno::CONNRESET => Error::Disconnected.into(),
            e => Error::io("read", e).into(),
        })
    }
}

impl Write for Fd {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let r = if self.socket {
            fdio::send(self.fd.as_fd(), buf)
        } else {
            fdio::write(self.fd.as_fd(), buf)
        };
        r.map_err(|e| crate::pipe::write_error("write", e))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsFd for Fd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn framing(opts: &Options) -> Framing {
    if opts.binary {
        Framing::Frames
    } else {
        Framing::Lines
    }
}

fn max(opts: &Options) -> usize {
    opts.max_message.unwrap_or(crate::frame::DEFAULT_MAX)
}

fn dup(fd: BorrowedFd<'_>) -> Result<OwnedFd> {
    fdio::dup(fd).map_err(|e| Error::io("fcntl(F_DUPFD_CLOEXEC)", e))
}

fn tcp_addr(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The sending side of a byte-stream endpoint.
#[derive(Debug)]
pub struct StreamSender {
    w: FrameWriter<Fd>,
    _fifo: Option<Fifo>,
}

impl StreamSender {
    /// Opens `ep` (fifo, unix, tcp or stdio) for sending.
    pub fn open(ep: &Endpoint, opts: &Options) -> Result<Self> {
        let mut fifo = None;
        let fd = match ep {
            Endpoint::Fifo(p) => {
                let (f, _) = FifoOptions::new().open_or_create(p)?;
                let w = Fifo::open_write(p, None)?;
                fifo = Some(f);
                Fd {
                    fd: w.into(),
                    socket: false,
                }
            }
            Endpoint::Unix(p) => Fd {
                fd: UnixStream::connect(p)?.into(),
                socket: true,
            },
            Endpoint::Tcp { host, port } => {
                let s = TcpStream::connect(tcp_addr(host, *port))
                    .map_err(|e| Error::io("connect", e))?;
                let _ = s.set_nodelay(true);
                Fd {
                    fd: s.into(),
                    socket: true,
                }
            }
            Endpoint::Stdio => Fd {
                fd: dup(io::stdout().as_fd())?,
                socket: false,
            },
            other => {
                return Err(Error::InvalidArgument(format!(
                    "{other} is not a byte stream"
                )));
            }
        };
        Ok(StreamSender {
            w: FrameWriter::with_max(fd, framing(opts), max(opts)),
            _fifo: fifo,
        })
    }
}

impl DynSender for StreamSender {
    fn send(&mut self, msg: &[u8], _meta: Meta) -> Result<()> {
        self.w.write_frame(msg)
    }
}

enum Source {
    /// A FIFO, opened at the first `recv` (so its timeout applies).
    Fifo {
        path: PathBuf,
        _guard: Fifo,
    },
    /// A listener; each accepted client is read to its end in turn.
    Unix(UnixListener),
    Tcp(std::net::TcpListener),
    /// Stdin: nothing to open.
    Stdio,
}

/// The receiving side of a byte-stream endpoint.
pub struct StreamReceiver {
    source: Source,
    current: Option<FrameReader<Fd>>,
    framing: Framing,
    max: usize,
    done: bool,
}

impl std::fmt::Debug for StreamReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamReceiver").finish_non_exhaustive()
    }
}

impl StreamReceiver {
    /// Opens `ep` (fifo, unix, tcp or stdio) for receiving: creates the FIFO
    /// if missing, or listens on the socket address.
    pub fn open(ep: &Endpoint, opts: &Options) -> Result<Self> {
        let source = match ep {
            Endpoint::Fifo(p) => {
                let (f, _) = FifoOptions::new().open_or_create(p)?;
                Source::Fifo {
                    path: p.clone(),
                    _guard: f,
                }
            }
            Endpoint::Unix(p) => Source::Unix(UnixListener::bind(p)?),
            Endpoint::Tcp { host, port } => Source::Tcp(
                std::net::TcpListener::bind(tcp_addr(host, *port))
                    .map_err(|e| Error::io("bind", e))?,
            ),
            Endpoint::Stdio => Source::Stdio,
            other => {
                return Err(Error::InvalidArgument(format!(
                    "{other} is not a byte stream"
                )));
            }
        };
        Ok(StreamReceiver {
            source,
            current: None,
            framing: framing(opts),
            max: max(opts),
            done: false,
        })
    }

    /// Opens or accepts the next stream to read, within the deadline.
    fn next_stream(&mut self, deadline: Option<Deadline>) -> Result<Option<Fd>> {
        let timeout = || match deadline {
            None => Ok(None),
            Some(d) => d.remaining().map(Some).ok_or(Error::Timeout),
        };
        match &self.source {
            Source::Fifo { path, .. } => {
                if self.done {
                    return Ok(None);
                }
                self.done = true;
                let r = Fifo::open_read(path, timeout()?)?;
                Ok(Some(Fd {
                    fd: r.into(),
                    socket: false,
                }))
            }
            Source::Stdio => {
                if self.done {
                    return Ok(None);
                }
                self.done = true;
                Ok(Some(Fd {
                    fd: dup(io::stdin().as_fd())?,
                    socket: false,
                }))
            }
            Source::Unix(l) => {
                if !l.wait_acceptable(timeout()?)? {
                    return Err(Error::Timeout);
                }
                Ok(Some(Fd {
                    fd: l.accept()?.into(),
                    socket: true,
                }))
            }
            Source::Tcp(l) => {
                if !fdio::wait(l.as_fd(), Ready::Read, deadline)
                    .map_err(|e| Error::io("poll", e))?
                {
                    return Err(Error::Timeout);
                }
                let (s, _) = l.accept().map_err(|e| Error::io("accept", e))?;
                Ok(Some(Fd {
                    fd: s.into(),
                    socket: true,
                }))
            }
        }
    }
}

impl DynReceiver for StreamReceiver {
    fn local_endpoint(&self) -> Option<Endpoint> {
        match &self.source {
            Source::Unix(l) => Some(Endpoint::Unix(l.path().to_path_buf())),
            Source::Tcp(l) => l.local_addr().ok().map(|a| Endpoint::Tcp {
                host: a.ip().to_string(),
                port: a.port(),
            }),
            Source::Fifo { .. } | Source::Stdio => None,
        }
    }

    fn recv(&mut self, timeout: Option<Duration>) -> Result<(Vec<u8>, Meta)> {
        let deadline = Deadline::from_timeout(timeout);
        loop {
            let Some(r) = self.current.as_mut() else {
                match self.next_stream(deadline)? {
                    None => return Err(Error::Disconnected),
                    Some(fd) => {
                        self.current = Some(FrameReader::with_max(fd, self.framing, self.max));
                        continue;
                    }
                }
            };
            // A stream that broke the framing (too large, read error) is
            // dropped, so the next call moves on to the next stream.
            match r.try_frame() {
                Ok(Some(m)) => return Ok((m, Meta::default())),
                Ok(None) => {}
                Err(e) => {
                    self.current = None;
                    return Err(e);
                }
            }
            if !r.is_eof() {
                let ready = fdio::wait(r.get_ref().as_fd(), Ready::Read, deadline)
                    .map_err(|e| Error::io("poll", e))?;
                if !ready {
                    return Err(Error::Timeout);
                }
                match r.fill() {
                    Ok(0) => {}
                    Ok(_) => continue,
                    Err(e) => {
                        self.current = None;
                        return Err(e);
                    }
                }
            }
            // End of this stream: a last message, an error, or the next stream.
            let last = r.read_frame();
            match last {
                Ok(Some(m)) => return Ok((m, Meta::default())),
                Ok(None) => self.current = None,
                Err(e) => {
                    self.current = None;
                    return Err(e);
                }
            }
        }
    }
}

/// `open_sender` for the byte-stream kinds.
pub(crate) fn open_sender(ep: &Endpoint, opts: &Options) -> Result<Box<dyn DynSender>> {
    Ok(Box::new(StreamSender::open(ep, opts)?))
}

/// `open_receiver` for the byte-stream kinds.
pub(crate) fn open_receiver(ep: &Endpoint, opts: &Options) -> Result<Box<dyn DynReceiver>> {
    Ok(Box::new(StreamReceiver::open(ep, opts)?))
}
