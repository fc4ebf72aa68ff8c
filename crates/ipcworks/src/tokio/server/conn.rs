//! One client's task: read, hand each whole message to the handler,
//! write the replies, until the client leaves, breaks a rule, or the
//! server stops.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Poll, ready};
use std::time::Duration;

use ::tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use ::tokio::sync::watch;

use super::{AsyncHandler, Client, Shared};
use crate::frame::{self, Framing};
use crate::socket::Peer;
use crate::socket::server::{cut_short, make_room, next_message};
use crate::tokio::AsyncStream;

/// After shutdown, how long a client may take none of its last replies
/// before it is closed anyway.
const GRACE: Duration = Duration::from_secs(1);

/// Serves `peer` on `io` until it is done; a client dropped for breaking
/// a rule is counted and logged. The connection is shut down for writing
/// (the client reads end of stream) and closed.
pub(super) async fn serve<S: Client, H: AsyncHandler>(
    mut io: AsyncStream<S>,
    peer: &Peer,
    handler: &H,
    shared: &Shared,
    mut stop: watch::Receiver<bool>,
) {
    if let Err(why) = serve_loop(&mut io, peer, handler, shared, &mut stop).await {
        shared.count(|s| s.dropped += 1);
        if shared.opts.log {
            eprintln!("ipcworks server: dropped client {}: {why}", peer.addr);
        }
    }
    let _ = std::future::poll_fn(|cx| Pin::new(&mut io).poll_shutdown(cx)).await;
}

/// `fut`, bounded by `limit` when there is one; `None` when it ran out.
async fn within<T>(limit: Option<Duration>, fut: impl Future<Output = T>) -> Option<T> {
    match limit {
        Some(d) => ::tokio::time::timeout(d, fut).await.ok(),
        None => Some(fut.await),
    }
}

/// One `read` (`recv`): the bytes read, 0 at end of stream. Cancel-safe.
async fn read_some<S: Client>(io: &mut AsyncStream<S>, buf: &mut [u8]) -> io::Result<usize> {
    std::future::poll_fn(|cx| {
        let mut rb = ReadBuf::new(buf);
        ready!(Pin::new(&mut *io).poll_read(cx, &mut rb))?;
        Poll::Ready(Ok(rb.filled().len()))
    })
    .await
}

/// Writes all of `out` (then empties it), each write bounded by the idle
/// timeout, or by [`GRACE`] once the server stops.
async fn write_out<S: Client>(
    io: &mut AsyncStream<S>,
    out: &mut Vec<u8>,
    shared: &Shared,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    let mut at = 0;
    while at < out.len() {
        let stopping = *stop.borrow();
        let limit = match stopping {
            true => Some(GRACE),
            false => shared.opts.idle_timeout,
        };
        let write = std::future::poll_fn(|cx| Pin::new(&mut *io).poll_write(cx, &out[at..]));
        let r = ::tokio::select! {
            r = within(limit, write) => r,
            // The server stops while this client takes nothing: go on
            // with the grace period instead.
            _ = stop.wait_for(|s| *s), if !stopping => continue,
        };
        match r {
            None if stopping => return Err("took no replies at shutdown".into()),
            None => return Err(idle(shared)),
            Some(Ok(0)) => return Err("send failed: the connection took nothing".into()),
            Some(Ok(n)) => at += n,
            Some(Err(e)) => return Err(format!("send failed: {e}")),
        }
    }
    out.clear();
    Ok(())
}

fn idle(shared: &Shared) -> String {
    let ms = shared.opts.idle_timeout.map_or(0, |d| d.as_millis());
    format!("idle for more than {ms} ms")
}

/// The client's loop; `Err(why)` drops it.
async fn serve_loop<S: Client, H: AsyncHandler>(
    io: &mut AsyncStream<S>,
    peer: &Peer,
    handler: &H,
    shared: &Shared,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    let opts = &shared.opts;
    let msg_cap = opts.max_message + frame::HEADER + 1;
    let mut inbuf: Vec<u8> = Vec::new();
    let (mut pos, mut end) = (0usize, 0usize);
    // Bytes after `pos` known to hold no newline (lines).
    let mut scanned = 0usize;
    let mut out: Vec<u8> = Vec::new();
    loop {
        // Every whole message in the buffer, one after the other.
        loop {
            let input = &inbuf[pos..end];
            let Some((at, consumed)) = next_message(input, opts, &mut scanned)? else {
                break;
            };
            let msg = input[at].to_vec();
            pos += consumed;
            reply(handler, peer, msg, shared, &mut out).await?;
            if out.len() > opts.max_buffered {
                write_out(io, &mut out, shared, stop).await?;
            }
        }
        write_out(io, &mut out, shared, stop).await?;
        if *stop.borrow() {
            return Ok(());
        }
        // Make room: the partial message to the front, grow by a step but
        // never past the largest message plus its header.
        if !make_room(&mut inbuf, &mut pos, &mut end, msg_cap) {
            return Err("message over the size limit".into());
        }
        let n = ::tokio::select! {
            r = within(opts.idle_timeout, read_some(io, &mut inbuf[end..])) => match r {
                None => return Err(idle(shared)),
                Some(Ok(n)) => n,
                Some(Err(e)) => return Err(format!("receive failed: {e}")),
            },
            _ = stop.wait_for(|s| *s) => return Ok(()),
        };
        if n == 0 {
            return at_eof(io, &inbuf[pos..end], peer, handler, shared, stop).await;
        }
        end += n;
    }
}

/// Hands `msg` to the handler and frames its reply into `out`.
async fn reply<H: AsyncHandler>(
    handler: &H,
    peer: &Peer,
    msg: Vec<u8>,
    shared: &Shared,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    shared.count(|s| s.messages += 1);
    if let Some(r) = handler.on_message(peer, msg).await {
        frame::encode(&r, shared.opts.framing, out)
            .map_err(|e| format!("the reply could not be framed: {e}"))?;
    }
    Ok(())
}

/// The client closed its sending side with `rest` unparsed: a last line
/// without its newline is a message; a partial frame drops the client.
async fn at_eof<S: Client, H: AsyncHandler>(
    io: &mut AsyncStream<S>,
    rest: &[u8],
    peer: &Peer,
    handler: &H,
    shared: &Shared,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    let mut out = Vec::new();
    if !rest.is_empty() {
        match shared.opts.framing {
            Framing::Frames => return Err(cut_short(rest, shared.opts.max_message)),
            Framing::Lines => reply(handler, peer, rest.to_vec(), shared, &mut out).await?,
        }
    }
    // A client that closed both ways before taking its replies: a normal end.
    let _ = write_out(io, &mut out, shared, stop).await;
    Ok(())
}
