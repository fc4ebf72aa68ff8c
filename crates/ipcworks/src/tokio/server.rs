//! The async twin of [`socket::Server`](crate::socket::Server): the same
//! options ([`ServerOptions`]), each client a tokio task.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ::tokio::sync::{Notify, watch};
use ::tokio::task::JoinSet;

use super::stream::{AsyncListener, Listener};
use crate::socket::server::{is_shortage, refusal, shed};
use crate::socket::{
    Address, Peer, PeerCred, ServerOptions, ServerStats, UnixListener, UnixStream,
};
use crate::sys::fdio;
use crate::{Error, Result};

mod conn;

/// While out of descriptors, how often `accept` is tried again when no
/// client leaves (the blocking server's tick).
const TICK: Duration = Duration::from_millis(100);

/// What an [`AsyncServer`] does with each whole message a client sends:
/// the async twin of [`socket::Handler`](crate::socket::Handler), shared
/// by every client's task (so `&self`, `Send + Sync`).
///
/// A closure `|peer: &Peer, msg: Vec<u8>| async move { … }` returning
/// `Option<Vec<u8>>` is one.
pub trait AsyncHandler: Send + Sync + 'static {
    /// Called for each message; `Some(reply)` sends `reply` back to that
    /// client as one message (framed like the input). The client's next
    /// message is read once this future is done.
    fn on_message(&self, peer: &Peer, msg: Vec<u8>)
    -> impl Future<Output = Option<Vec<u8>>> + Send;

    /// Called when a client is accepted (in the accepting task).
    fn on_connect(&self, _peer: &Peer) {}

    /// Called when a client is gone (closed, dropped or at shutdown), in
    /// its task.
    fn on_disconnect(&self, _peer: &Peer) {}
}

impl<F, Fut> AsyncHandler for F
where
    F: Fn(&Peer, Vec<u8>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Option<Vec<u8>>> + Send,
{
    fn on_message(
        &self,
        peer: &Peer,
        msg: Vec<u8>,
    ) -> impl Future<Output = Option<Vec<u8>>> + Send {
        self(peer, msg)
    }
}

/// Stops a running [`AsyncServer`] from anywhere (a task, a thread, a
/// signal handler's task). Cheap to clone.
#[derive(Debug, Clone)]
pub struct AsyncShutdown {
    tx: Arc<watch::Sender<bool>>,
}

impl AsyncShutdown {
    /// Asks the server to stop (see [`AsyncServer::run`] for what a
    /// graceful stop does). Idempotent.
    pub fn shutdown(&self) {
        self.tx.send_replace(true);
    }
}

enum Listen {
    Tcp(AsyncListener<std::net::TcpListener>),
    Unix(AsyncListener<UnixListener>),
}

/// A TCP or Unix stream server on tokio: the async twin of
/// [`socket::Server`](crate::socket::Server), with the same
/// [`ServerOptions`] and [`ServerStats`], each client served by a task of
/// its own and each message handled by an [`AsyncHandler`] (`accept4`
/// through `AsyncFd` on the listening socket; every client an
/// [`AsyncStream`](super::AsyncStream)).
///
/// The options mean what they mean for the blocking server: lines or
/// length-prefixed frames, the largest message (a longer one drops the
/// client), the most clients served at once (more are accepted and closed
/// at once, counted as refused), the idle timeout (a client that neither
/// sends nor takes bytes for that long is dropped), the allowed uids of
/// Unix clients (`SO_PEERCRED`; others are closed at once), the socket
/// file's mode, logging to stderr, and what to do out of descriptors.
/// A client's task reads, hands each whole message to the handler, and
/// writes the replies of what it read before it reads again: a client
/// that does not take its replies is not read from
/// ([`max_buffered`](ServerOptions::max_buffered) bounds the replies kept
/// between two writes).
///
/// # Out of file descriptors
///
/// As the blocking server: when `accept` fails for want of a descriptor
/// (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`), waiting clients stay in the
/// listen backlog and the server tries again each time a client's task
/// ends, and every 100 ms. If the shortage lasts longer than
/// [`out_of_fds_wait`](ServerOptions::out_of_fds_wait), it closes a spare
/// descriptor kept for this, accepts each waiting client and closes it at
/// once (the client reads end of stream; counted as refused), and takes
/// the spare again.
///
/// # Shutdown
///
/// [`run`](Self::run) serves until an [`AsyncShutdown`] handle is used;
/// [`run_until`](Self::run_until) also stops when a future ends (e.g.
/// `tokio::signal::ctrl_c()`). Stopping is graceful: the server stops
/// accepting, each client's task stops reading, lets the handler finish
/// the message in hand and writes the replies it has (giving up on a
/// client that takes none of them for a second), closes the connection
/// and tells the handler; `run` returns the counts once every task has
/// ended, and a Unix socket file is removed.
///
/// Cancel safety: dropping the `run` future closes every client at once
/// (their tasks are aborted; handler futures in progress are dropped).
///
/// ```no_run
/// use ipcworks::socket::{Peer, ServerOptions};
/// use ipcworks::tokio::AsyncServer;
///
/// # async fn run() -> ipcworks::Result<()> {
/// let server = AsyncServer::bind_tcp(ServerOptions::new().max_connections(100), "127.0.0.1:7000")?;
/// let stop = server.shutdown_handle(); // stop.shutdown() from elsewhere
/// let echo = |_peer: &Peer, msg: Vec<u8>| async move { Some(msg) };
/// let stats = server.run_until(echo, async { let _ = tokio::signal::ctrl_c().await; }).await?;
/// println!("{} clients served", stats.accepted);
/// # Ok(())
/// # }
/// ```
pub struct AsyncServer {
    listen: Listen,
    opts: ServerOptions,
    local: Option<SocketAddr>,
    stop: Arc<watch::Sender<bool>>,
    /// A spare descriptor, closed to accept and close clients when out of
    /// descriptors (taken at bind, as the blocking server's).
    reserve: Option<OwnedFd>,
}

impl std::fmt::Debug for AsyncServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncServer")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

/// What the accepting loop and the clients' tasks share.
struct Shared {
    opts: ServerOptions,
    stats: Mutex<ServerStats>,
    /// Clients being served.
    live: AtomicUsize,
    /// Told each time a client's task ends (a descriptor came back).
    left: Notify,
}

impl Shared {
    fn count(&self, f: impl FnOnce(&mut ServerStats)) {
        f(&mut self.stats.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

/// A connected client as the server sees it: who it is.
pub(crate) trait Client:
    super::stream::ReadStream + super::stream::WriteStream + 'static
{
    /// Unix clients have credentials, which the uid allow-list checks.
    const UNIX: bool;
    /// Its address for the log, and its credentials (Unix).
    fn describe(&self) -> (String, Option<PeerCred>);
}

impl Client for UnixStream {
    const UNIX: bool = true;
    fn describe(&self) -> (String, Option<PeerCred>) {
        let cred = self.peer_cred().ok();
        let addr = match cred {
            Some(c) => format!("unix pid {} uid {}", c.pid, c.uid),
            None => "unix peer".to_string(),
        };
        (addr, cred)
    }
}

impl Client for std::net::TcpStream {
    const UNIX: bool = false;
    fn describe(&self) -> (String, Option<PeerCred>) {
        let _ = self.set_nodelay(true);
        let addr = match self.peer_addr() {
            Ok(a) => a.to_string(),
            Err(_) => "tcp peer".to_string(),
        };
        (addr, None)
    }
}

impl AsyncServer {
    /// Binds a TCP server at `addr` (`"127.0.0.1:0"` picks a free port;
    /// see [`local_addr`](Self::local_addr)). Must be called inside a
    /// tokio runtime.
    pub fn bind_tcp(opts: &ServerOptions, addr: &str) -> Result<AsyncServer> {
        super::in_runtime()?;
        opts.apply_fd_limit();
        let l = std::net::TcpListener::bind(addr).map_err(|e| Error::io("bind", e))?;
        let local = l.local_addr().ok();
        Ok(AsyncServer::new(
            Listen::Tcp(AsyncListener::new(l)?),
            opts,
            local,
        ))
    }

    /// Binds a Unix stream server at `path` (mode exactly as set, a stale
    /// file replaced, a live server never displaced, the file removed
    /// when the server is done; see [`UnixListener`]). Must be called
    /// inside a tokio runtime.
    pub fn bind_unix(opts: &ServerOptions, path: impl AsRef<Path>) -> Result<AsyncServer> {
        super::in_runtime()?;
        opts.apply_fd_limit();
        let l = UnixListener::bind_with_mode(path, opts.unix_mode)?;
        Ok(AsyncServer::new(
            Listen::Unix(AsyncListener::new(l)?),
            opts,
            None,
        ))
    }

    /// Binds at a TCP or Unix address.
    pub fn bind(opts: &ServerOptions, addr: &Address) -> Result<AsyncServer> {
        match addr {
            Address::Tcp { .. } => Self::bind_tcp(opts, &addr.authority()),
            Address::Unix(p) => Self::bind_unix(opts, p),
        }
    }

    fn new(listen: Listen, opts: &ServerOptions, local: Option<SocketAddr>) -> AsyncServer {
        AsyncServer {
            listen,
            opts: opts.clone(),
            local,
            stop: Arc::new(watch::channel(false).0),
            reserve: fdio::reserve().ok(),
        }
    }

    /// The TCP address actually bound (useful after binding port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local
    }

    /// A handle that stops [`run`](Self::run).
    pub fn shutdown_handle(&self) -> AsyncShutdown {
        AsyncShutdown {
            tx: self.stop.clone(),
        }
    }

    /// Serves clients until an [`AsyncShutdown`] handle asks it to stop,
    /// then stops gracefully (see [Shutdown](Self#shutdown)) and returns
    /// the counts.
    pub async fn run(self, handler: impl AsyncHandler) -> Result<ServerStats> {
        self.run_until(handler, std::future::pending()).await
    }

    /// [`run`](Self::run), also stopping when `shutdown` completes.
    pub async fn run_until(
        mut self,
        handler: impl AsyncHandler,
        shutdown: impl Future<Output = ()>,
    ) -> Result<ServerStats> {
        let shared = Arc::new(Shared {
            opts: self.opts.clone(),
            stats: Mutex::new(ServerStats::default()),
            live: AtomicUsize::new(0),
            left: Notify::new(),
        });
        let handler = Arc::new(handler);
        let mut tasks = JoinSet::new();
        let mut stop = self.stop.subscribe();
        let mut ctx = Accepting {
            shared: &shared,
            stop: &self.stop,
            tasks: &mut tasks,
            reserve: &mut self.reserve,
        };
        let accepting = async {
            match &self.listen {
                Listen::Tcp(l) => accept_loop(l, &handler, &mut ctx).await,
                Listen::Unix(l) => accept_loop(l, &handler, &mut ctx).await,
            }
        };
        ::tokio::select! {
            () = accepting => {}
            () = shutdown => {}
            _ = stop.wait_for(|s| *s) => {}
        }
        // Tell every client's task, then wait for them all.
        self.stop.send_replace(true);
        while tasks.join_next().await.is_some() {}
        let stats = *shared.stats.lock().unwrap_or_else(|p| p.into_inner());
        Ok(stats)
    }
}

/// What the accepting loop works with.
struct Accepting<'a> {
    shared: &'a Arc<Shared>,
    stop: &'a Arc<watch::Sender<bool>>,
    tasks: &'a mut JoinSet<()>,
    reserve: &'a mut Option<OwnedFd>,
}

/// Accepts clients for ever (until the caller stops polling it): each
/// one refused or given a task; out of descriptors, waits for a client to
/// leave or a tick.
async fn accept_loop<L, H>(listener: &AsyncListener<L>, handler: &Arc<H>, ctx: &mut Accepting<'_>)
where
    L: Listener,
    L::Stream: Client,
    H: AsyncHandler,
{
    let (shared, stop) = (ctx.shared, ctx.stop);
    let opts = &shared.opts;
    // Since when `accept` has failed for want of resources.
    let mut starved: Option<Instant> = None;
    let mut short_logged = false;
    let mut other_errors = 0u32;
    let mut next_id = 0u64;
    loop {
        // Reap the tasks that ended (their results are `()`).
        while ctx.tasks.try_join_next().is_some() {}
        let r = match starved {
            None => std::future::poll_fn(|cx| listener.poll_accept_io(cx)).await,
            Some(_) => {
                // Readiness stays set after an error: wait otherwise.
                let _ = ::tokio::time::timeout(TICK, shared.left.notified()).await;
                listener.accept_now()
            }
        };
        let stream = match r {
            Ok(s) => {
                starved = None;
                other_errors = 0;
                s
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                starved = None;
                short_logged = false;
                continue;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                ) =>
            {
                continue;
            }
            Err(e) if is_shortage(&e) => {
                if opts.log && !short_logged {
                    eprintln!(
                        "ipcworks server: out of file descriptors ({e}); waiting clients are \
                         accepted as others leave"
                    );
                }
                short_logged = true;
                let since = *starved.get_or_insert_with(Instant::now);
                if since.elapsed() >= opts.out_of_fds_wait {
                    let (closed, emptied) = shed(ctx.reserve, || listener.accept_now());
                    if emptied {
                        starved = None;
                        short_logged = false;
                    }
                    shared.count(|s| s.refused += closed);
                    if opts.log && closed > 0 {
                        eprintln!(
                            "ipcworks server: out of file descriptors for {} ms: closed \
                             {closed} waiting client(s)",
                            since.elapsed().as_millis()
                        );
                    }
                }
                continue;
            }
            Err(e) => {
                // A network error about one connection, or a listener gone
                // bad: retry a few times, then on the tick.
                if opts.log && other_errors == 0 {
                    eprintln!("ipcworks server: accept failed: {e}");
                }
                other_errors += 1;
                if other_errors >= 16 {
                    starved.get_or_insert_with(Instant::now);
                }
                continue;
            }
        };
        let (addr, cred) = stream.describe();
        if let Some(why) = refusal(
            opts,
            shared.live.load(Ordering::SeqCst),
            L::Stream::UNIX,
            cred,
        ) {
            shared.count(|s| s.refused += 1);
            if opts.log {
                eprintln!("ipcworks server: refused client {addr}: {why}");
            }
            continue;
        }
        let io = match super::AsyncStream::new(stream) {
            Ok(io) => io,
            Err(e) => {
                if opts.log {
                    eprintln!("ipcworks server: could not watch client {addr}: {e}");
                }
                continue;
            }
        };
        next_id += 1;
        let peer = Peer {
            id: next_id,
            addr,
            cred,
        };
        shared.live.fetch_add(1, Ordering::SeqCst);
        shared.count(|s| s.accepted += 1);
        handler.on_connect(&peer);
        let (shared, handler, stop) = (shared.clone(), handler.clone(), stop.subscribe());
        ctx.tasks.spawn(async move {
            conn::serve(io, &peer, &*handler, &shared, stop).await;
            handler.on_disconnect(&peer);
            shared.live.fetch_sub(1, Ordering::SeqCst);
            shared.left.notify_one();
        });
    }
}
