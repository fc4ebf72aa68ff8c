//! Accepting clients: every waiting one in a row, each refused or
//! admitted, and what the server does when it runs out of descriptors.

use std::io;
use std::os::fd::AsFd;
use std::time::Instant;

use mio::{Interest, Token};

use super::conn::Conn;
use super::{
    Clients, Handler, Listener, Peer, Server, ServerStats, Stream, is_shortage, refusal, shed,
};
use crate::socket::unix::{PeerCred, peer_cred};

impl Server {
    /// One `accept4` on the listener: the client, its address for the log,
    /// and its credentials (Unix).
    fn accept_one(&self) -> io::Result<(Stream, String, Option<PeerCred>)> {
        match &self.listener {
            Listener::Tcp(l) => l
                .accept()
                .map(|(s, a)| (Stream::Tcp(s), a.to_string(), None)),
            Listener::Unix(l) => l.accept().map(|(s, _)| {
                let cred = peer_cred(s.as_fd()).ok();
                let addr = match cred {
                    Some(c) => format!("unix pid {} uid {}", c.pid, c.uid),
                    None => "unix peer".to_string(),
                };
                (Stream::Unix(s), addr, cred)
            }),
        }
    }

    /// `accept` failed for want of descriptors (or memory): remember it so
    /// the run loop retries, and once that has lasted longer than
    /// `out_of_fds_wait`, close the waiting clients cleanly.
    fn out_of_descriptors(&mut self, e: &io::Error, stats: &mut ServerStats) {
        if self.opts.log && !self.short_logged {
            eprintln!(
                "ipcworks server: out of file descriptors ({e}); waiting clients are accepted \
                 as others leave"
            );
        }
        self.short_logged = true;
        let since = *self.starved.get_or_insert_with(Instant::now);
        if since.elapsed() < self.opts.out_of_fds_wait {
            return;
        }
        // Free the spare, then accept and close every waiting client: each
        // closed one gives its descriptor back for the next.
        let mut reserve = self.reserve.take();
        let (closed, emptied) = shed(&mut reserve, || self.accept_one());
        self.reserve = reserve;
        if emptied {
            self.starved = None;
            self.short_logged = false;
        }
        stats.refused += closed;
        if self.opts.log && closed > 0 {
            eprintln!(
                "ipcworks server: out of file descriptors for {} ms: closed {closed} waiting \
                 client(s)",
                since.elapsed().as_millis()
            );
        }
    }

    /// Accepts every waiting client: each one refused ([`refusal`]) is
    /// closed, each other one admitted.
    pub(super) fn accept_all(&mut self, clients: &mut Clients, handler: &mut impl Handler) {
        let mut other_errors = 0;
        while let Some((stream, addr, cred)) = self.accept_next(&mut other_errors, clients) {
            let unix = matches!(stream, Stream::Unix(_));
            if let Some(why) = refusal(&self.opts, clients.conns.len(), unix, cred) {
                clients.stats.refused += 1;
                if self.opts.log {
                    eprintln!("ipcworks server: refused client {addr}: {why}");
                }
                continue;
            }
            self.admit(stream, addr, cred, clients, handler);
        }
    }

    /// The next waiting client, or `None` when the backlog is empty or
    /// `accept` must wait for a later turn: out of descriptors (see
    /// [`out_of_descriptors`]), or another error 16 times in this round
    /// (`other_errors` counts them).
    ///
    /// [`out_of_descriptors`]: Self::out_of_descriptors
    fn accept_next(
        &mut self,
        other_errors: &mut u32,
        clients: &mut Clients,
    ) -> Option<(Stream, String, Option<PeerCred>)> {
        loop {
            match self.accept_one() {
                Ok(x) => {
                    self.starved = None;
                    return Some(x);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.starved = None;
                    self.short_logged = false;
                    return None;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(e) if is_shortage(&e) => {
                    self.out_of_descriptors(&e, &mut clients.stats);
                    return None;
                }
                Err(e) => {
                    // A network error about one connection (accept(2)
                    // says to retry), or a listener gone bad: retry a few
                    // times, then wait for the next turn.
                    if self.opts.log && *other_errors == 0 && self.starved.is_none() {
                        eprintln!("ipcworks server: accept failed: {e}");
                    }
                    *other_errors += 1;
                    if *other_errors >= 16 {
                        self.starved.get_or_insert_with(Instant::now);
                        return None;
                    }
                }
            }
        }
    }

    /// Watches an accepted client (readable and writable, edge-triggered)
    /// and starts serving it: a new token and id, the handler told.
    fn admit(
        &self,
        mut stream: Stream,
        addr: String,
        cred: Option<PeerCred>,
        clients: &mut Clients,
        handler: &mut impl Handler,
    ) {
        let t = clients.next_token;
        clients.next_token += 1;
        let reg = match &mut stream {
            Stream::Tcp(s) => {
                let _ = s.set_nodelay(true);
                self.poll
                    .registry()
                    .register(s, Token(t), Interest::READABLE | Interest::WRITABLE)
            }
            Stream::Unix(s) => {
                self.poll
                    .registry()
                    .register(s, Token(t), Interest::READABLE | Interest::WRITABLE)
            }
        };
        if let Err(e) = reg {
            if self.opts.log {
                eprintln!("ipcworks server: could not watch client {addr}: {e}");
            }
            return;
        }
        clients.next_id += 1;
        let peer = Peer {
            id: clients.next_id,
            addr,
            cred,
        };
        clients.stats.accepted += 1;
        handler.on_connect(&peer);
        clients.conns.insert(
            t,
            Conn {
                stream,
                peer,
                inbuf: Vec::new(),
                in_pos: 0,
                in_end: 0,
                scanned: 0,
                out: Vec::new(),
                out_pos: 0,
                last_active: Instant::now(),
                readable: true,
                queued: false,
                paused: false,
                closing: false,
            },
        );
    }
}
