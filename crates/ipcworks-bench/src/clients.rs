//! The socket server's echo (`ipcworks bench --clients`): the library's
//! [`socket::Server`](ipcworks::socket::Server) — what `ipcworks serve
//! unix:PATH --echo --binary` runs — with 1, 10 and 100 clients at once.
//!
//! The server runs on a thread of the parent, bound to a Unix socket in a
//! private folder, echoing each length-prefixed 64-byte message back to its
//! client. The clients are threads of one peer process, each on its own
//! connection, each sending a message and waiting for its echo, over and
//! over (a closed loop: at most one message per client in flight). The
//! figure is the echoes of all clients together per second, counted by the
//! server between the warm-up and the end of the case's time; each client
//! checks that every echo is the message it sent. Nobody is pinned.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use ipcworks::frame::{self, Framing};
use ipcworks::socket::ServerOptions;

use crate::fanin::{Crowd, StopPipe, TempDir, stamp, watch, window};
use crate::harness::Handoff;
use crate::peer::{Launcher, Role};

/// Client counts measured.
pub const CLIENTS: &[u32] = &[1, 10, 100];
/// The name of the server's figures.
pub const NAME: &str = "unix-server";
/// Message size of the echo.
pub const SIZE: usize = 64;

/// The label of a server case: `unix-server echo 10 clients 64 B`.
pub fn label(clients: u32) -> String {
    format!(
        "{NAME} echo {clients} client{} {}",
        if clients == 1 { "" } else { "s" },
        crate::units::human_size(SIZE as u64)
    )
}

/// Parent side: one round of the echo with `clients` clients; (echoes,
/// seconds) counted by the server between the warm-up and the end of the
/// case's time.
pub fn measure(
    clients: u32,
    launcher: &Launcher,
    warm: Duration,
    budget: Duration,
) -> io::Result<(u64, f64)> {
    let dir = TempDir::new("server")?;
    let path = dir.0.join("s");
    let mut o = ServerOptions::new();
    o.framing(Framing::Frames)
        .max_message(SIZE)
        .idle_timeout(None)
        .max_connections(clients as usize + 16)
        .log(false);
    let server = o.bind_unix(&path)?;
    let handle = server.shutdown_handle();
    let count = AtomicU64::new(0);
    let mut stop = StopPipe::new()?;
    let args = [path.to_string_lossy().into_owned()];
    std::thread::scope(|s| {
        let counter = &count;
        let serving = s.spawn(move || {
            let mut n = 0u64;
            server.run(move |_peer: &ipcworks::socket::Peer, msg: &[u8]| {
                n += 1;
                counter.store(n, Ordering::Relaxed);
                Some(msg.to_vec())
            })
        });
        let mut run = || -> io::Result<(u64, f64)> {
            let crowd = Crowd {
                launcher,
                kind: NAME,
                size: SIZE,
                args: &args,
            };
            let mut peers =
                crowd.start(1, &stop, &|| Ok(vec![]), &|_| Role::Clients { clients })?;
            let figure = window(&count, warm, budget);
            stop.stop();
            for p in &mut peers {
                p.finish(Duration::from_secs(20))?;
            }
            Ok(figure)
        };
        let r = run();
        stop.stop();
        handle.shutdown();
        let served = serving
            .join()
            .map_err(|_| io::Error::other("the server panicked"))?;
        let figure = r?;
        let stats = served?;
        if stats.accepted != u64::from(clients) || stats.dropped != 0 {
            return Err(io::Error::other(format!(
                "the server accepted {} clients (of {clients}) and dropped {}",
                stats.accepted, stats.dropped
            )));
        }
        Ok(figure)
    })
}

/// Peer side: `clients` clients on threads, each on its own connection to
/// the server at `h`'s first argument, until the parent closes the stop
/// pipe (`h`'s first descriptor).
pub(crate) fn run_clients(
    clients: u32,
    h: Handoff,
    ready: &mut dyn FnMut() -> io::Result<()>,
) -> io::Result<()> {
    let mut h = h;
    let stop = watch(h.fd(0)?);
    let path = h.arg(0)?.to_string();
    let conns = (0..clients)
        .map(|_| std::os::unix::net::UnixStream::connect(&path))
        .collect::<io::Result<Vec<_>>>()?;
    ready()?;
    std::thread::scope(|s| {
        let stop: &AtomicBool = &stop;
        let threads: Vec<_> = conns
            .into_iter()
            .enumerate()
            .map(|(i, c)| s.spawn(move || echo(c, i as u32, stop)))
            .collect();
        for t in threads {
            t.join()
                .map_err(|_| io::Error::other("a client panicked"))??;
        }
        Ok(())
    })
}

/// One client: a message, its echo, again, until told to stop.
fn echo(mut c: std::os::unix::net::UnixStream, id: u32, stop: &AtomicBool) -> io::Result<()> {
    let mut msg = vec![0x5Au8; SIZE];
    let mut out = Vec::with_capacity(SIZE + frame::HEADER);
    let mut back = vec![0u8; SIZE + frame::HEADER];
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        stamp(&mut msg, id, seq, false);
        out.clear();
        frame::encode(&msg, Framing::Frames, &mut out).map_err(io::Error::from)?;
        c.write_all(&out)?;
        c.read_exact(&mut back)?;
        if back != out {
            return Err(io::Error::other(format!(
                "client {id}: echo {seq} differs from what was sent"
            )));
        }
        seq += 1;
    }
    Ok(())
}
