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

mod listener;
mod server;
pub(crate) mod stream;
mod unix;

pub use listener::{SocketFile, UnixListener, is_live};
pub use server::{Handler, Peer, Server, ServerOptions, ServerStats, ShutdownHandle};
pub use stream::{StreamReceiver, StreamSender};
pub use unix::{PeerCred, UnixDatagram, UnixSeqpacket, UnixStream};
