//! An event-driven server for TCP and Unix stream clients (epoll through
//! mio): many clients at once, each on its own connected socket, with
//! limits that keep one slow or hostile client from hurting the others.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mio::net::{
    TcpListener, TcpStream, UnixListener as MioUnixListener, UnixStream as MioUnixStream,
};
use mio::{Events, Interest, Poll, Token, Waker};

use self::conn::{Conn, Outcome, flush, serve};
use super::address::Address;
use super::file::{SocketFile, bind_path};
use super::unix::PeerCred;
use crate::frame::{self, Framing, Parsed};
use crate::sys::fdio;
use crate::sys::socket::Kind;
use crate::{Error, Result};

mod accept;
mod conn;

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
/// How often idle clients and the shutdown flags are checked.
const TICK: Duration = Duration::from_millis(100);
/// Bytes read from one client before the others get their turn.
const READ_BUDGET: usize = 64 * 1024;
/// Buffer growth step.
const STEP: usize = 16 * 1024;

/// Who a connected client is, for the handler and the log.
#[derive(Debug, Clone)]
pub struct Peer {
    /// A number unique to this connection within the server's run.
    pub id: u64,
    /// The client's address (`IP:PORT`), or `unix` plus its pid for Unix clients.
    pub addr: String,
    /// Unix clients: the credentials the kernel recorded (`SO_PEERCRED`).
    pub cred: Option<PeerCred>,
}

/// What the server does with each whole message a client sends.
pub trait Handler {
    /// Called for each message; `Some(reply)` sends `reply` back to that
    /// client as one message (framed like the input).
    fn on_message(&mut self, peer: &Peer, msg: &[u8]) -> Option<Vec<u8>>;

    /// Called when a client is accepted.
    fn on_connect(&mut self, _peer: &Peer) {}

    /// Called when a client is gone (closed, dropped or at shutdown).
    fn on_disconnect(&mut self, _peer: &Peer) {}
}

impl<F: FnMut(&Peer, &[u8]) -> Option<Vec<u8>>> Handler for F {
    fn on_message(&mut self, peer: &Peer, msg: &[u8]) -> Option<Vec<u8>> {
        self(peer, msg)
    }
}

/// Counts reported when [`Server::run`] returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Clients accepted.
    pub accepted: u64,
    /// Clients refused at accept (too many, or uid not allowed).
    pub refused: u64,
    /// Clients dropped for breaking a rule (too large, truncated, idle, error).
    pub dropped: u64,
    /// Messages handled.
    pub messages: u64,
}

/// Limits and behaviour of a [`Server`] (a builder).
#[derive(Debug, Clone)]
pub struct ServerOptions {
    // Read by the async server too (`ipcworks::tokio::AsyncServer`).
    pub(crate) framing: Framing,
    pub(crate) max_message: usize,
    pub(crate) max_connections: usize,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) max_buffered: usize,
    pub(crate) allowed_uids: Option<Vec<u32>>,
    pub(crate) unix_mode: u32,
    pub(crate) log: bool,
    pub(crate) out_of_fds_wait: Duration,
    raise_fd_limit: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            framing: Framing::Lines,
            max_message: 64 * 1024,
            max_connections: 1024,
            idle_timeout: Some(Duration::from_secs(60)),
            max_buffered: 1 << 20,
            allowed_uids: None,
            unix_mode: 0o600,
            log: true,
            out_of_fds_wait: Duration::from_secs(1),
            raise_fd_limit: false,
        }
    }
}

impl ServerOptions {
    /// Defaults: lines, 64 KiB messages, 1024 clients, 60 s idle timeout,
    /// 1 MiB of unsent replies per client, Unix socket mode 0600, drops
    /// logged to stderr.
    pub fn new() -> Self {
        Self::default()
    }
    /// Lines (default) or length-prefixed frames.
    pub fn framing(&mut self, f: Framing) -> &mut Self {
        self.framing = f;
        self
    }
    /// Largest message a client may send; a longer one drops the client.
    pub fn max_message(&mut self, bytes: usize) -> &mut Self {
        self.max_message = bytes.min(u32::MAX as usize);
        self
    }
    /// Most clients served at once; more are accepted and closed at once.
    pub fn max_connections(&mut self, n: usize) -> &mut Self {
        self.max_connections = n;
        self
    }
    /// A client that neither sends nor takes bytes for this long is
    /// dropped (`None`: never).
    pub fn idle_timeout(&mut self, t: Option<Duration>) -> &mut Self {
        self.idle_timeout = t;
        self
    }
    /// Unsent reply bytes kept per client; above this the server stops
    /// reading from that client until it takes its replies.
    pub fn max_buffered(&mut self, bytes: usize) -> &mut Self {
        self.max_buffered = bytes.max(1);
        self
    }
    /// Unix servers: accept only clients running as one of these uids
    /// (checked with `SO_PEERCRED`).
    pub fn allowed_uids(&mut self, uids: Option<Vec<u32>>) -> &mut Self {
        self.allowed_uids = uids;
        self
    }
    /// Unix servers: the socket file's mode (default 0600, exact).
    pub fn unix_mode(&mut self, mode: u32) -> &mut Self {
        self.unix_mode = mode;
        self
    }
    /// Log dropped and refused clients to stderr, one line each (default on).
    pub fn log(&mut self, on: bool) -> &mut Self {
        self.log = on;
        self
    }
    /// How long clients may wait in the listen backlog while the process
    /// is out of file descriptors (`EMFILE`/`ENFILE`) before the server
    /// closes them cleanly (default 1 s). See [`Server`] on running out.
    pub fn out_of_fds_wait(&mut self, wait: Duration) -> &mut Self {
        self.out_of_fds_wait = wait;
        self
    }
    /// Raise this process's limit on open descriptors (the soft
    /// `RLIMIT_NOFILE`, often 1024) to the hard limit when the server is
    /// bound, so it can hold as many clients as the system allows each
    /// process (default off). The limit is the whole process's, and stays
    /// raised; a limit that cannot be raised leaves the server running
    /// with the one it has (see [`Server`] on running out). (Replaces
    /// `sys::fdio::raise_fd_limit`, private since the kernel layer is.)
    #[doc(alias = "setrlimit")]
    pub fn raise_fd_limit(&mut self, on: bool) -> &mut Self {
        self.raise_fd_limit = on;
        self
    }

    /// [`raise_fd_limit`](Self::raise_fd_limit), if asked: best effort, as
    /// documented there.
    pub(crate) fn apply_fd_limit(&self) {
        if self.raise_fd_limit {
            let _ = fdio::raise_fd_limit();
        }
    }

    /// Binds a TCP server at `addr` (`"127.0.0.1:0"` picks a free port;
    /// see [`Server::local_addr`]).
    pub fn bind_tcp(&self, addr: &str) -> Result<Server> {
        self.apply_fd_limit();
        let l = std::net::TcpListener::bind(addr).map_err(|e| Error::io("bind", e))?;
        l.set_nonblocking(true)
            .map_err(|e| Error::io("fcntl(O_NONBLOCK)", e))?;
        let local = l.local_addr().ok();
        Server::new(
            Listener::Tcp(TcpListener::from_std(l)),
            self.clone(),
            None,
            local,
        )
    }

    /// Binds a Unix stream server at `path` (mode exactly as set; a stale
    /// file replaced, a live server never displaced; see
    /// [`UnixListener`](super::UnixListener)).
    pub fn bind_unix(&self, path: impl AsRef<Path>) -> Result<Server> {
        self.apply_fd_limit();
        let (fd, file) = bind_path(path.as_ref(), Kind::Stream, self.unix_mode)?;
        fdio::set_nonblocking(fd.as_fd(), true).map_err(|e| Error::io("fcntl(O_NONBLOCK)", e))?;
        let std_l = std::os::unix::net::UnixListener::from(fd);
        Server::new(
            Listener::Unix(MioUnixListener::from_std(std_l)),
            self.clone(),
            Some(file),
            None,
        )
    }

    /// Binds at a TCP or Unix address ([`bind_tcp`](Self::bind_tcp) or
    /// [`bind_unix`](Self::bind_unix)). (Took an endpoint before; the
    /// endpoint layer's `ipcworks::endpoint::bind_server` does
    /// that now.)
    pub fn bind(&self, addr: &Address) -> Result<Server> {
        match addr {
            Address::Tcp { .. } => self.bind_tcp(&addr.authority()),
            Address::Unix(p) => self.bind_unix(p),
        }
    }
}

/// `accept` failed for want of a descriptor or kernel memory (the async
/// server's rule too).
pub(crate) fn is_shortage(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Why a client just accepted must be closed at once, if it must: too
/// many served already (`served` of `max_connections`), or a Unix client
/// (`unix`) whose uid is not allowed (or cannot be read). The blocking
/// and the async server's rule.
pub(crate) fn refusal(
    opts: &ServerOptions,
    served: usize,
    unix: bool,
    cred: Option<PeerCred>,
) -> Option<String> {
    if served >= opts.max_connections {
        return Some(format!("too many clients (max {})", opts.max_connections));
    }
    let allowed = opts.allowed_uids.as_ref().filter(|_| unix)?;
    match cred {
        Some(c) if allowed.contains(&c.uid) => None,
        Some(c) => Some(format!("uid {} is not allowed", c.uid)),
        None => Some("its credentials could not be read".into()),
    }
}

/// Out of descriptors for too long: frees the spare descriptor `reserve`,
/// accepts (`accept_now`) and closes every waiting client (each closed one
/// gives its descriptor back for the next), and takes the spare again.
/// Returns how many were closed and whether the backlog was emptied
/// (`accept` said `WouldBlock`). The blocking and the async server's rule.
pub(crate) fn shed<T>(
    reserve: &mut Option<OwnedFd>,
    mut accept_now: impl FnMut() -> io::Result<T>,
) -> (u64, bool) {
    *reserve = None;
    let mut closed = 0u64;
    let emptied = loop {
        match accept_now() {
            Ok(client) => {
                drop(client);
                closed += 1;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                ) => {}
            Err(e) => break e.kind() == io::ErrorKind::WouldBlock,
        }
    };
    *reserve = fdio::reserve().ok();
    (closed, emptied)
}

/// The next whole message in a client's unparsed input `input`: where its
/// payload is in `input` and how many bytes it takes up, `None` until more
/// arrives, or why the client must be dropped. `scanned` (bytes known to
/// hold no newline, lines) is taken, and set to all of `input` when the
/// message is incomplete. The blocking and the async server's rule.
pub(crate) fn next_message(
    input: &[u8],
    opts: &ServerOptions,
    scanned: &mut usize,
) -> std::result::Result<Option<(Range<usize>, usize)>, String> {
    let parsed = frame::parse_after(
        input,
        opts.framing,
        opts.max_message,
        std::mem::take(scanned),
    );
    match parsed {
        Err(Error::MessageTooLarge { len, max }) => Err(format!(
            "message of {len} bytes or more is over the limit of {max}"
        )),
        Err(e) => Err(e.to_string()),
        Ok(Parsed::Incomplete { .. }) => {
            *scanned = input.len();
            Ok(None)
        }
        Ok(Parsed::Message {
            start,
            end,
            consumed,
        }) => Ok(Some((start..end, consumed))),
    }
}

/// Makes room in a client's input buffer `buf`, whose unparsed bytes are
/// `buf[*pos..*end]`, before the next read: moves them to the front and
/// grows the buffer by a step, but never past `msg_cap` (the largest
/// message plus its header). `false` when it is full all the same (the
/// message in it is over the size limit). The blocking and the async
/// server's rule.
pub(crate) fn make_room(
    buf: &mut Vec<u8>,
    pos: &mut usize,
    end: &mut usize,
    msg_cap: usize,
) -> bool {
    if *pos > 0 {
        buf.copy_within(*pos..*end, 0);
        *end -= *pos;
        *pos = 0;
    }
    if buf.len() - *end < STEP.min(msg_cap) {
        let new_len = (*end + STEP).min(msg_cap).max(buf.len());
        buf.resize(new_len, 0);
    }
    *end < buf.len()
}

/// Why a client that closed its sending side in the middle of a frame
/// (`rest`, not empty, is what it sent of it) is dropped. The blocking and
/// the async server's rule.
pub(crate) fn cut_short(rest: &[u8], max_message: usize) -> String {
    let needed = match frame::parse(rest, Framing::Frames, max_message) {
        Ok(Parsed::Incomplete { needed }) => needed,
        _ => rest.len(),
    };
    format!(
        "disconnected mid-message: {} of {needed} bytes missing",
        needed - rest.len()
    )
}

enum Listener {
    Tcp(TcpListener),
    Unix(MioUnixListener),
}

enum Stream {
    Tcp(TcpStream),
    Unix(MioUnixStream),
}

impl Stream {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
        }
    }
}

/// What [`Server::run`] keeps between turns of its loop.
struct Clients {
    /// The clients being served, by token.
    conns: HashMap<usize, Conn>,
    /// Clients with input to serve, in turn.
    ready: VecDeque<usize>,
    /// The next client's token (0 and 1 are the listener's and the waker's).
    next_token: usize,
    /// The last client's id.
    next_id: u64,
    stats: ServerStats,
}

impl Default for Clients {
    fn default() -> Self {
        Clients {
            conns: HashMap::new(),
            ready: VecDeque::new(),
            next_token: 2,
            next_id: 0,
            stats: ServerStats::default(),
        }
    }
}

/// Stops a running [`Server`] from any thread.
#[derive(Clone)]
pub struct ShutdownHandle {
    flag: Arc<AtomicBool>,
    waker: Arc<Waker>,
}

impl std::fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShutdownHandle").finish_non_exhaustive()
    }
}

impl ShutdownHandle {
    /// Asks the server to stop: it closes every client and returns from
    /// [`Server::run`] promptly.
    pub fn shutdown(&self) {
        self.flag.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
    }
}

/// A TCP or Unix stream server (`socket`/`bind`/`listen`, then `accept` →
/// one connected socket per client), event-driven with epoll (mio).
///
/// Each whole message (a line, or a length-prefixed frame) goes to the
/// [`Handler`], whose reply goes back to that client. Limits: message
/// size, number of clients, idle time, and unsent bytes per client; a
/// client breaking one is logged (one line on stderr) and dropped while the
/// others go on. Reads are taken in turns of at most 64 KiB per client, so
/// a fast sender cannot starve the rest.
///
/// # Out of file descriptors
///
/// Each client is a descriptor. When `accept` fails for want of one
/// (`EMFILE`, `ENFILE`; or `ENOBUFS`/`ENOMEM`), waiting clients stay in
/// the listen backlog and the server tries again as clients leave and on
/// every tick (100 ms): the listener's readiness is never lost, although
/// epoll reports it only once per new connection (edge-triggered). If the
/// shortage lasts longer than
/// [`out_of_fds_wait`](ServerOptions::out_of_fds_wait), the server closes a
/// spare descriptor it keeps for this, accepts each waiting client and
/// closes it at once (the client reads end of stream; counted as refused),
/// and takes the spare again. One line on stderr says so. `ipcworks serve`
/// raises its descriptor limit to the hard limit first
/// ([`ServerOptions::raise_fd_limit`]).
///
/// ```no_run
/// use ipcworks::socket::ServerOptions;
///
/// let server = ServerOptions::new().max_connections(100).bind_tcp("127.0.0.1:7000")?;
/// let stop = server.shutdown_handle(); // call stop.shutdown() from elsewhere
/// server.run(|_peer: &ipcworks::socket::Peer, msg: &[u8]| Some(msg.to_vec()))?; // echo
/// # Ok::<(), ipcworks::Error>(())
/// ```
pub struct Server {
    poll: Poll,
    listener: Listener,
    opts: ServerOptions,
    flag: Arc<AtomicBool>,
    waker: Arc<Waker>,
    signals: bool,
    _file: Option<SocketFile>,
    local: Option<SocketAddr>,
    /// A spare descriptor, closed to accept and close clients when out of
    /// descriptors.
    reserve: Option<OwnedFd>,
    /// Since when `accept` has failed for want of resources (clients may be
    /// waiting in the backlog with no epoll event to come); reset when a
    /// client is accepted.
    starved: Option<Instant>,
    /// The shortage was logged; logged again only after the backlog was
    /// once emptied.
    short_logged: bool,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

fn poll_err(e: io::Error) -> Error {
    Error::io("epoll_wait", e)
}

impl Server {
    fn new(
        mut listener: Listener,
        opts: ServerOptions,
        file: Option<SocketFile>,
        local: Option<SocketAddr>,
    ) -> Result<Server> {
        let poll = Poll::new().map_err(|e| Error::io("epoll_create", e))?;
        match &mut listener {
            Listener::Tcp(l) => poll.registry().register(l, LISTENER, Interest::READABLE),
            Listener::Unix(l) => poll.registry().register(l, LISTENER, Interest::READABLE),
        }
        .map_err(|e| Error::io("epoll_ctl", e))?;
        let waker =
            Arc::new(Waker::new(poll.registry(), WAKER).map_err(|e| Error::io("eventfd", e))?);
        Ok(Server {
            poll,
            listener,
            opts,
            flag: Arc::new(AtomicBool::new(false)),
            waker,
            signals: false,
            _file: file,
            local,
            reserve: fdio::reserve().ok(),
            starved: None,
            short_logged: false,
        })
    }

    /// Binds with default options at a TCP or Unix address.
    pub fn bind(addr: &Address) -> Result<Server> {
        ServerOptions::new().bind(addr)
    }

    /// The TCP address actually bound (useful after binding port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local
    }

    /// A handle that stops [`run`](Self::run) from another thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            flag: self.flag.clone(),
            waker: self.waker.clone(),
        }
    }

    /// Also stop gracefully on `SIGINT` or `SIGTERM` (installs a handler
    /// for the rest of the process's life that only sets a flag).
    pub fn shutdown_on_signals(&mut self) -> Result<()> {
        crate::sys::signal::catch_terminate().map_err(|e| Error::io("sigaction", e))?;
        self.signals = true;
        Ok(())
    }

    fn stop_requested(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
            || (self.signals && crate::sys::signal::terminate_requested())
    }

    /// Serves clients until shut down; then closes every client, removes a
    /// Unix socket file, and returns the counts.
    pub fn run(mut self, mut handler: impl Handler) -> Result<ServerStats> {
        let mut clients = Clients::default();
        let mut events = Events::with_capacity(1024);
        let mut last_sweep = Instant::now();
        while !self.stop_requested() {
            let timeout = if clients.ready.is_empty() {
                TICK
            } else {
                Duration::ZERO
            };
            match self.poll.poll(&mut events, Some(timeout)) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(poll_err(e)),
                Ok(()) => {}
            }
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept_all(&mut clients, &mut handler),
                    WAKER => {}
                    Token(t) => self.on_client_event(t, ev, &mut clients, &mut handler),
                }
            }
            self.serve_ready(&mut clients, &mut handler);
            // Out of descriptors: clients may wait in the backlog with no
            // event to come (edge-triggered), so try again every turn.
            if self.starved.is_some() {
                self.accept_all(&mut clients, &mut handler);
            }
            if last_sweep.elapsed() >= TICK {
                last_sweep = Instant::now();
                self.drop_idle(&mut clients, &mut handler);
            }
        }
        for (_, c) in clients.conns.drain() {
            handler.on_disconnect(&c.peer);
        }
        Ok(clients.stats)
    }

    /// Readiness of client `t`: input queues it for [`serve_ready`]
    /// (unless it is paused or closing); room to write flushes its
    /// replies, and resumes reading from it once they have drained to
    /// half of `max_buffered`.
    ///
    /// [`serve_ready`]: Self::serve_ready
    fn on_client_event(
        &self,
        t: usize,
        ev: &mio::event::Event,
        clients: &mut Clients,
        handler: &mut impl Handler,
    ) {
        let Some(c) = clients.conns.get_mut(&t) else {
            return;
        };
        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
            c.readable = true;
            if !c.queued && !c.paused && !c.closing {
                c.queued = true;
                clients.ready.push_back(t);
            }
        }
        if ev.is_writable() || ev.is_write_closed() {
            let out = flush(c).map(|()| {
                if c.closing && c.out_pos == c.out.len() {
                    Outcome::Close
                } else {
                    Outcome::Keep
                }
            });
            let out = match out {
                Err(_) if c.closing => Outcome::Close,
                other => other.unwrap_or_else(Outcome::Drop),
            };
            if c.paused && c.out.len() - c.out_pos <= self.opts.max_buffered / 2 {
                c.paused = false;
                if !c.queued {
                    c.queued = true;
                    clients.ready.push_back(t);
                }
            }
            self.settle(t, out, clients, handler);
        }
    }

    /// Serves each client with pending input once, one read budget each,
    /// in turn; one that still has input goes to the back of the line.
    fn serve_ready(&self, clients: &mut Clients, handler: &mut impl Handler) {
        let msg_cap = self.opts.max_message + frame::HEADER + 1;
        for _ in 0..clients.ready.len() {
            let Some(t) = clients.ready.pop_front() else {
                break;
            };
            let Some(c) = clients.conns.get_mut(&t) else {
                continue;
            };
            c.queued = false;
            let out = serve(c, &self.opts, msg_cap, handler, &mut clients.stats);
            if matches!(out, Outcome::Keep) && c.readable && !c.paused && !c.closing {
                c.queued = true;
                clients.ready.push_back(t);
            }
            self.settle(t, out, clients, handler);
        }
    }

    /// Drops the clients idle for longer than `idle_timeout`.
    fn drop_idle(&self, clients: &mut Clients, handler: &mut impl Handler) {
        let Some(idle) = self.opts.idle_timeout else {
            return;
        };
        let stale: Vec<usize> = clients
            .conns
            .iter()
            .filter(|(_, c)| c.last_active.elapsed() > idle)
            .map(|(t, _)| *t)
            .collect();
        for t in stale {
            let why = format!("idle for more than {} ms", idle.as_millis());
            self.settle(t, Outcome::Drop(why), clients, handler);
        }
    }

    /// Carries out what a turn decided for client `t`: nothing, or closing
    /// or dropping it (counted, logged, and told to the handler).
    fn settle(&self, t: usize, out: Outcome, clients: &mut Clients, handler: &mut impl Handler) {
        let why = match out {
            Outcome::Keep => return,
            Outcome::Close => None,
            Outcome::Drop(why) => Some(why),
        };
        if let Some(mut c) = clients.conns.remove(&t) {
            let _ = match &mut c.stream {
                Stream::Tcp(s) => self.poll.registry().deregister(s),
                Stream::Unix(s) => self.poll.registry().deregister(s),
            };
            if let Some(why) = why {
                clients.stats.dropped += 1;
                if self.opts.log {
                    eprintln!("ipcworks server: dropped client {}: {why}", c.peer.addr);
                }
            }
            handler.on_disconnect(&c.peer);
        }
    }
}
