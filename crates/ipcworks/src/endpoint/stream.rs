//! The byte-stream endpoints — `fifo:PATH`, `unix:PATH`, `tcp:HOST:PORT`
//! and `-` (stdio) — carrying lines by default and length-prefixed frames
//! with [`Options::binary`], over [`FramedSender`] and
//! [`FramedReceiver`].
//!
//! Who creates what:
//! - `fifo:PATH`: whichever side comes first creates the FIFO (mode 0600)
//!   and removes it when done; the other uses it. A sender waits for a
//!   reader to open it; a receiver waits for the first writer. The
//!   receiver reads until every writer has closed (end of stream).
//! - `unix:PATH` and `tcp:HOST:PORT`: the receiver listens (a Unix socket
//!   file is created 0600 and removed on exit) and takes one client at a
//!   time, reading each to its end before accepting the next; the sender
//!   connects. [`bind_server`] binds a [`Server`] there instead, for many
//!   clients at once.
//! - `-`: the sender writes to stdout, the receiver reads stdin.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use super::{Endpoint, Options};
use crate::frame::Framing;
use crate::message::{Deadline, MessageReceiver, MessageSender, Meta};
use crate::pipe::{Fifo, FifoOptions};
use crate::socket::{Address, UnixListener, UnixStream};
#[cfg(feature = "server")]
use crate::socket::{Server, ServerOptions};
use crate::stream::{FramedReceiver, FramedSender};
use crate::sys::fdio::{self, Ready};
use crate::{Error, Result};

/// Any readable or writable descriptor of these endpoints: a FIFO, a
/// socket or stdio. Sockets are written with `MSG_NOSIGNAL`; a reset
/// connection reads as [`Error::Disconnected`].
#[derive(Debug)]
struct Conn {
    fd: OwnedFd,
    socket: bool,
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        fdio::read(self.fd.as_fd(), buf).map_err(|e| match e {
            crate::sys::Errno::CONNRESET => Error::Disconnected.into(),
            e => Error::io("read", e).into(),
        })
    }
}

impl Write for Conn {
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

impl AsFd for Conn {
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

fn not_a_stream(ep: &Endpoint) -> Error {
    Error::InvalidArgument(format!("{ep} is not a byte stream"))
}

/// The sending side of a byte-stream endpoint.
#[derive(Debug)]
pub struct StreamSender {
    tx: FramedSender<Conn>,
    _fifo: Option<Fifo>,
}

impl StreamSender {
    /// Opens `ep` (fifo, unix, tcp or stdio) for sending.
    pub fn open(ep: &Endpoint, opts: &Options) -> Result<Self> {
        let mut fifo = None;
        let conn = match ep {
            Endpoint::Fifo(p) => {
                let (f, _) = FifoOptions::new().open_or_create(p)?;
                let w = Fifo::open_write(p, None)?;
                fifo = Some(f);
                Conn {
                    fd: w.into(),
                    socket: false,
                }
            }
            Endpoint::Unix(p) => Conn {
                fd: UnixStream::connect(p)?.into(),
                socket: true,
            },
            Endpoint::Tcp { host, port } => {
                let addr = Address::tcp(host.clone(), *port);
                let s = TcpStream::connect(addr.authority().as_str())
                    .map_err(|e| Error::io("connect", e))?;
                let _ = s.set_nodelay(true);
                Conn {
                    fd: s.into(),
                    socket: true,
                }
            }
            Endpoint::Stdio => Conn {
                fd: dup(io::stdout().as_fd())?,
                socket: false,
            },
            other => return Err(not_a_stream(other)),
        };
        Ok(StreamSender {
            tx: FramedSender::with_max(conn, framing(opts), max(opts)),
            _fifo: fifo,
        })
    }
}

impl MessageSender for StreamSender {
    fn send_until(&mut self, msg: &[u8], meta: Meta, deadline: Deadline) -> Result<()> {
        self.tx.send_until(msg, meta, deadline)
    }

    fn pollable_fd(&self) -> Option<BorrowedFd<'_>> {
        self.tx.pollable_fd()
    }

    fn frame(&self, msg: &[u8]) -> Option<Result<Vec<u8>>> {
        self.tx.frame(msg)
    }
}

enum Source {
    /// A FIFO, opened at the first `recv` (so its deadline applies).
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

/// The receiving side of a byte-stream endpoint: one stream (a FIFO,
/// stdin) read to its end, or a listener whose clients are read to their
/// ends one after another.
pub struct StreamReceiver {
    source: Source,
    current: Option<FramedReceiver<Conn>>,
    framing: Framing,
    max: usize,
    /// The one stream of a FIFO or stdin was opened: no next one.
    opened: bool,
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
            Endpoint::Tcp { host, port } => {
                let addr = Address::tcp(host.clone(), *port);
                Source::Tcp(
                    std::net::TcpListener::bind(addr.authority().as_str())
                        .map_err(|e| Error::io("bind", e))?,
                )
            }
            Endpoint::Stdio => Source::Stdio,
            other => return Err(not_a_stream(other)),
        };
        Ok(StreamReceiver {
            source,
            current: None,
            framing: framing(opts),
            max: max(opts),
            opened: false,
        })
    }

    /// The address this receiver listens on (`unix:`, `tcp:` with the port
    /// the kernel chose for port 0, from `getsockname`); `None` for a FIFO
    /// or stdin.
    pub fn local_endpoint(&self) -> Option<Endpoint> {
        match &self.source {
            Source::Unix(l) => Some(Endpoint::Unix(l.path().to_path_buf())),
            Source::Tcp(l) => l.local_addr().ok().map(|a| Endpoint::Tcp {
                host: a.ip().to_string(),
                port: a.port(),
            }),
            Source::Fifo { .. } | Source::Stdio => None,
        }
    }

    /// Opens or accepts the next stream to read, within the deadline;
    /// `None` when there is no next one (a FIFO or stdin already read).
    fn next_stream(&mut self, deadline: Deadline) -> Result<Option<Conn>> {
        let not_ready = || {
            if deadline.is_now() {
                Error::WouldBlock
            } else {
                Error::Timeout
            }
        };
        match &self.source {
            Source::Fifo { path, .. } => {
                if self.opened {
                    return Ok(None);
                }
                let r = match Fifo::open_read(path, deadline.remaining()) {
                    Err(Error::Timeout) => return Err(not_ready()),
                    r => r?,
                };
                self.opened = true;
                Ok(Some(Conn {
                    fd: r.into(),
                    socket: false,
                }))
            }
            Source::Stdio => {
                if self.opened {
                    return Ok(None);
                }
                let fd = dup(io::stdin().as_fd())?;
                self.opened = true;
                Ok(Some(Conn { fd, socket: false }))
            }
            Source::Unix(l) => {
                if !l.wait_acceptable(deadline.remaining())? {
                    return Err(not_ready());
                }
                Ok(Some(Conn {
                    fd: l.accept()?.into(),
                    socket: true,
                }))
            }
            Source::Tcp(l) => {
                if !fdio::wait(l.as_fd(), Ready::Read, deadline)
                    .map_err(|e| Error::io("poll", e))?
                {
                    return Err(not_ready());
                }
                let (s, _) = l.accept().map_err(|e| Error::io("accept", e))?;
                Ok(Some(Conn {
                    fd: s.into(),
                    socket: true,
                }))
            }
        }
    }
}

impl MessageReceiver for StreamReceiver {
    /// The next message of the current stream; at its clean end, the next
    /// stream (the next client of a listener), or [`Error::Disconnected`]
    /// when there is none. A stream that broke the framing or failed to
    /// read gives its error and is dropped: the next call moves on.
    fn recv_until(&mut self, deadline: Deadline) -> Result<(Vec<u8>, Meta)> {
        loop {
            let Some(r) = self.current.as_mut() else {
                match self.next_stream(deadline)? {
                    None => return Err(Error::Disconnected),
                    Some(conn) => {
                        self.current = Some(FramedReceiver::with_max(conn, self.framing, self.max));
                        continue;
                    }
                }
            };
            match r.recv_until(deadline) {
                Ok(m) => return Ok(m),
                Err(e @ (Error::WouldBlock | Error::Timeout)) => return Err(e),
                // The clean end of this stream: on to the next.
                Err(Error::Disconnected) if r.is_at_end() => self.current = None,
                Err(e) => {
                    self.current = None;
                    return Err(e);
                }
            }
        }
    }

    /// The current stream's descriptor, or the listener's while waiting
    /// for a client; `None` before a FIFO is opened.
    fn pollable_fd(&self) -> Option<BorrowedFd<'_>> {
        if let Some(r) = &self.current {
            return r.pollable_fd();
        }
        match &self.source {
            Source::Unix(l) => Some(l.as_fd()),
            Source::Tcp(l) => Some(l.as_fd()),
            Source::Fifo { .. } | Source::Stdio => None,
        }
    }
}

/// Binds a [`Server`] (many clients at once) at a `tcp:` or `unix:`
/// endpoint, with `opts`.
#[cfg(feature = "server")]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub fn bind_server(ep: &Endpoint, opts: &ServerOptions) -> Result<Server> {
    match ep {
        Endpoint::Tcp { host, port } => opts.bind(&Address::tcp(host.clone(), *port)),
        Endpoint::Unix(p) => opts.bind(&Address::Unix(p.clone())),
        other => Err(Error::InvalidArgument(format!(
            "cannot serve on {other}: a server listens on tcp:HOST:PORT or unix:PATH"
        ))),
    }
}
