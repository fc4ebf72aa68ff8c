//! Sockets: Unix-domain (stream, datagram, seqpacket) and TCP, client and
//! server.
//!
//! The textbook sequence is `socket` → `bind` → `listen` → `accept` on the
//! server, which gets a *new connected socket per client*, and `socket` →
//! `connect` on the client. [`UnixListener`] and [`UnixStream`] are that
//! sequence for Unix-domain sockets, with the edge cases handled (mode
//! `0600` socket files, stale files replaced, live ones never displaced);
//! [`Server`] runs an event loop (epoll through mio) that serves many TCP or
//! Unix clients at once with limits on message size, connections, idle
//! time and buffered bytes.
//!
//! Unix-domain sockets also carry descriptors ([`UnixStream::send_fds`],
//! `SCM_RIGHTS`) and tell who the peer is ([`UnixStream::peer_cred`],
//! `SO_PEERCRED`). Every send uses `MSG_NOSIGNAL`: a vanished peer is an
//! error, never `SIGPIPE`.
//!
//! ```
//! use std::io::{Read, Write};
//! use std::os::fd::AsFd;
//! use ipcworks::socket::UnixStream;
//!
//! let (a, b) = UnixStream::pair()?;
//! // Hand the other side one end of a pipe, with a byte to carry it.
//! let (mut r, w) = ipcworks::pipe::pipe()?;
//! a.send_fds(b"p", &[w.as_fd()])?;
//! drop(w);
//! let mut buf = [0u8; 1];
//! let (n, mut fds) = b.recv_fds(&mut buf)?;
//! assert_eq!((n, fds.len()), (1, 1));
//! let mut passed = ipcworks::pipe::PipeWriter::from(fds.remove(0));
//! passed.write_all(b"via SCM_RIGHTS")?;
//! drop(passed);
//! let mut s = String::new();
//! r.read_to_string(&mut s)?;
//! assert_eq!(s, "via SCM_RIGHTS");
//! assert_eq!(b.peer_cred()?.pid, std::process::id());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod address;
mod file;
mod listener;
#[cfg(feature = "server")]
pub(crate) mod server;
mod unix;

pub use address::Address;
pub use file::{SocketFile, is_live};
pub use listener::UnixListener;
#[cfg(feature = "server")]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub use server::{Handler, Peer, Server, ServerOptions, ServerStats, ShutdownHandle};
pub use unix::{PeerCred, UnixDatagram, UnixSeqpacket, UnixStream};
