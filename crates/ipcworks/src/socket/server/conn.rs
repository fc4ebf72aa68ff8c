//! One client's connection: its buffers, and serving it (reading within
//! a budget, handling whole messages, flushing replies, end of stream).

use std::io;
use std::time::Instant;

use super::{
    Handler, Peer, READ_BUDGET, ServerOptions, ServerStats, Stream, cut_short, make_room,
    next_message,
};
use crate::frame::{self, Framing};
use crate::sys::Errno;
use crate::sys::fdio;

/// A connected client, its buffers and its state in the run loop.
pub(super) struct Conn {
    pub(super) stream: Stream,
    pub(super) peer: Peer,
    pub(super) inbuf: Vec<u8>,
    pub(super) in_pos: usize,
    pub(super) in_end: usize,
    /// Bytes after `in_pos` known to hold no newline (line mode).
    pub(super) scanned: usize,
    pub(super) out: Vec<u8>,
    pub(super) out_pos: usize,
    pub(super) last_active: Instant,
    pub(super) readable: bool,
    pub(super) queued: bool,
    pub(super) paused: bool,
    pub(super) closing: bool,
}

/// What becomes of a connection after a turn.
pub(super) enum Outcome {
    Keep,
    Close,
    Drop(String),
}

/// Sends what is queued for `c` until the socket is full.
pub(super) fn flush(c: &mut Conn) -> std::result::Result<(), String> {
    while c.out_pos < c.out.len() {
        match fdio::send(c.stream.fd(), &c.out[c.out_pos..]) {
            Ok(n) => {
                c.out_pos += n;
                c.last_active = Instant::now();
            }
            Err(Errno::AGAIN) => break,
            Err(e) => return Err(format!("send failed: {}", io::Error::from(e))),
        }
    }
    if c.out_pos == c.out.len() {
        c.out.clear();
        c.out_pos = 0;
    } else if c.out_pos > c.out.len() / 2 {
        c.out.drain(..c.out_pos);
        c.out_pos = 0;
    }
    Ok(())
}

/// Handles the whole messages buffered for `c`, then reads (at most one
/// budget) and handles more; stops early when `c` is paused.
pub(super) fn serve(
    c: &mut Conn,
    opts: &ServerOptions,
    msg_cap: usize,
    handler: &mut impl Handler,
    stats: &mut ServerStats,
) -> Outcome {
    let mut budget = READ_BUDGET;
    loop {
        // Handle every whole message in the buffer.
        while !c.paused {
            let input = &c.inbuf[c.in_pos..c.in_end];
            let (at, consumed) = match next_message(input, opts, &mut c.scanned) {
                Ok(Some(found)) => found,
                Ok(None) => break,
                Err(why) => return Outcome::Drop(why),
            };
            let msg = &input[at];
            stats.messages += 1;
            if let Some(reply) = handler.on_message(&c.peer, msg)
                && let Err(e) = frame::encode(&reply, opts.framing, &mut c.out)
            {
                return Outcome::Drop(format!("the reply could not be framed: {e}"));
            }
            c.in_pos += consumed;
            if c.out.len() - c.out_pos > opts.max_buffered {
                c.paused = true;
            }
        }
        if c.in_pos == c.in_end {
            c.in_pos = 0;
            c.in_end = 0;
        }
        if let Err(why) = flush(c) {
            return Outcome::Drop(why);
        }
        if c.paused && c.out.len() - c.out_pos <= opts.max_buffered / 2 {
            c.paused = false;
            continue;
        }
        if c.paused || c.closing || !c.readable || budget == 0 {
            return Outcome::Keep;
        }
        // Make room: move the partial message to the front, grow by a step
        // but never past the largest message plus its header.
        if !make_room(&mut c.inbuf, &mut c.in_pos, &mut c.in_end, msg_cap) {
            return Outcome::Drop("message over the size limit".into());
        }
        let room = (c.inbuf.len() - c.in_end).min(budget);
        match fdio::recv(c.stream.fd(), &mut c.inbuf[c.in_end..c.in_end + room]) {
            Err(Errno::AGAIN) => {
                c.readable = false;
                return Outcome::Keep;
            }
            Err(e) => return Outcome::Drop(format!("receive failed: {}", io::Error::from(e))),
            Ok(0) => return at_eof(c, opts, handler, stats),
            Ok(n) => {
                c.in_end += n;
                budget -= n;
                c.last_active = Instant::now();
            }
        }
    }
}

/// The client closed its sending side.
fn at_eof(
    c: &mut Conn,
    opts: &ServerOptions,
    handler: &mut impl Handler,
    stats: &mut ServerStats,
) -> Outcome {
    c.readable = false;
    c.closing = true;
    let rest = &c.inbuf[c.in_pos..c.in_end];
    if !rest.is_empty() {
        match opts.framing {
            Framing::Frames => return Outcome::Drop(cut_short(rest, opts.max_message)),
            Framing::Lines => {
                stats.messages += 1;
                if let Some(reply) = handler.on_message(&c.peer, rest) {
                    let _ = frame::encode(&reply, opts.framing, &mut c.out);
                }
                c.in_pos = 0;
                c.in_end = 0;
            }
        }
    }
    match flush(c) {
        // The client closed both ways before taking its replies: a normal end.
        Err(_) => Outcome::Close,
        Ok(()) if c.out_pos == c.out.len() => Outcome::Close,
        Ok(()) => Outcome::Keep,
    }
}
