//! Framing for byte streams (pipes, FIFOs, Unix and TCP streams, stdio):
//! length-prefixed frames and newline-delimited lines.
//!
//! A byte stream has no message boundaries; framing puts them back.
//!
//! - [`Framing::Frames`]: each message is a 4-byte little-endian length
//!   followed by that many bytes. A length above the reader's maximum is
//!   refused ([`Error::MessageTooLarge`]) *before* anything is allocated; a
//!   stream that ends inside a frame is an error naming how many bytes
//!   were missing.
//! - [`Framing::Lines`]: each message is a line ended by `\n` (the `\n` is
//!   not part of the message). A line longer than the maximum is refused;
//!   a last line without `\n` at end of stream is returned as a message, as
//!   `BufRead::lines` does. This is what `cat`, `echo`, `nc` and `socat`
//!   speak.
//!
//! Typed messages ([`FrameWriter::send_value`], [`FrameReader::recv_value`])
//! are serde values encoded with postcard inside frames.
//!
//! ```
//! use ipcworks::frame::{FrameReader, FrameWriter, Framing};
//!
//! let mut wire = Vec::new();
//! let mut w = FrameWriter::new(&mut wire, Framing::Frames);
//! w.write_frame(b"hello")?;
//! w.send_value(&(7u32, "seven".to_string()))?;
//! let mut r = FrameReader::new(&wire[..], Framing::Frames);
//! assert_eq!(r.read_frame()?.as_deref(), Some(&b"hello"[..]));
//! assert_eq!(r.recv_value::<(u32, String)>()?, Some((7, "seven".to_string())));
//! assert_eq!(r.read_frame()?, None); // clean end of stream
//! # Ok::<(), ipcworks::Error>(())
//! ```

use std::io::{self, Read, Write};

#[cfg(feature = "serde")]
use serde::Serialize;
#[cfg(feature = "serde")]
use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// The default largest message: 16 MiB.
pub const DEFAULT_MAX: usize = 16 << 20;

/// Bytes in a frame's length prefix.
pub const HEADER: usize = 4;

/// The largest `max` a [`FrameReader`] or [`FrameWriter`] takes: `u32::MAX`
/// bytes, the most a frame's length prefix can say (lines are held to the
/// same limit). A larger `max`, `usize::MAX` included, means this.
pub const MAX_LIMIT: usize = u32::MAX as usize;

/// How messages are delimited on a byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Framing {
    /// Newline-delimited text (the default: interoperates with shell tools).
    #[default]
    Lines,
    /// `u32` little-endian length, then the payload.
    Frames,
}

/// What [`parse`] found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A whole message: its payload is `buf[start..end]`, and `consumed`
    /// bytes (header or newline included) can be dropped from the buffer.
    Message {
        /// Offset of the payload.
        start: usize,
        /// End of the payload.
        end: usize,
        /// Bytes to drop from the front of the buffer.
        consumed: usize,
    },
    /// Not enough bytes yet: at least `needed` in total are required (for
    /// lines, one more than present).
    Incomplete {
        /// Total bytes the buffer must hold before trying again.
        needed: usize,
    },
}

/// Looks for one whole message at the start of `buf`. Pure: never reads,
/// never allocates, never panics. A frame header claiming more than `max`,
/// or a line longer than `max` without its newline, is
/// [`Error::MessageTooLarge`].
pub fn parse(buf: &[u8], framing: Framing, max: usize) -> Result<Parsed> {
    parse_after(buf, framing, max, 0)
}

/// [`parse`], told that the first `scanned` bytes of `buf` hold no newline
/// (from an earlier call that returned `Incomplete`), so a long line is
/// searched once, not again on every read. Ignored for frames.
pub fn parse_after(buf: &[u8], framing: Framing, max: usize, scanned: usize) -> Result<Parsed> {
    match framing {
        Framing::Frames => {
            let Some(h) = buf.get(..HEADER) else {
                return Ok(Parsed::Incomplete { needed: HEADER });
            };
            let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
            if len > max {
                return Err(Error::MessageTooLarge { len, max });
            }
            let end = HEADER + len;
            if buf.len() < end {
                return Ok(Parsed::Incomplete { needed: end });
            }
            Ok(Parsed::Message {
                start: HEADER,
                end,
                consumed: end,
            })
        }
        Framing::Lines => match buf
            .get(scanned.min(buf.len())..)
            .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
            .map(|i| i + scanned.min(buf.len()))
        {
            Some(i) if i > max => Err(Error::MessageTooLarge { len: i, max }),
            Some(i) => Ok(Parsed::Message {
                start: 0,
                end: i,
                consumed: i + 1,
            }),
            None if buf.len() > max => Err(Error::MessageTooLarge {
                len: buf.len(),
                max,
            }),
            None => Ok(Parsed::Incomplete {
                needed: buf.len() + 1,
            }),
        },
    }
}

/// Appends `msg` framed (header or trailing newline) to `out`. In line
/// mode a message containing `\n` is refused, as by [`FrameWriter`].
pub fn encode(msg: &[u8], framing: Framing, out: &mut Vec<u8>) -> Result<()> {
    match framing {
        Framing::Frames => {
            let len = u32::try_from(msg.len()).map_err(|_| Error::MessageTooLarge {
                len: msg.len(),
                max: u32::MAX as usize,
            })?;
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(msg);
        }
        Framing::Lines => {
            if msg.contains(&b'\n') {
                return Err(Error::InvalidArgument(
                    "a message sent in line mode contains a newline; use frames (--binary)".into(),
                ));
            }
            out.extend_from_slice(msg);
            out.push(b'\n');
        }
    }
    Ok(())
}

/// The error for a stream that ended inside a frame.
fn truncated(have: usize, needed: usize) -> Error {
    Error::io(
        "read frame",
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "stream ended mid-frame: {} of {needed} bytes missing",
                needed - have
            ),
        ),
    )
}

/// Reads messages from a byte stream. Buffers at most `max` plus one
/// header's worth of bytes (plus one read's worth), whatever the peer sends.
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    framing: Framing,
    max: usize,
    buf: Vec<u8>,
    /// Start of unconsumed bytes in `buf`.
    pos: usize,
    /// End of valid bytes in `buf`.
    end: usize,
    /// Bytes after `pos` known to hold no newline (line mode).
    scanned: usize,
    eof: bool,
}

const CHUNK: usize = 64 * 1024;

impl<R: Read> FrameReader<R> {
    /// A reader with the default maximum ([`DEFAULT_MAX`]).
    pub fn new(inner: R, framing: Framing) -> Self {
        Self::with_max(inner, framing, DEFAULT_MAX)
    }

    /// A reader refusing messages longer than `max` bytes (and never more
    /// than [`MAX_LIMIT`], so the buffer arithmetic cannot overflow).
    pub fn with_max(inner: R, framing: Framing, max: usize) -> Self {
        FrameReader {
            inner,
            framing,
            max: max.min(MAX_LIMIT),
            buf: Vec::new(),
            pos: 0,
            end: 0,
            scanned: 0,
            eof: false,
        }
    }

    /// The largest message accepted.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Reads the next message; `Ok(None)` at a clean end of stream (between
    /// messages).
    pub fn read_frame(&mut self) -> Result<Option<Vec<u8>>> {
        loop {
            if let Some(m) = self.try_frame()? {
                return Ok(Some(m));
            }
            if self.fill()? == 0 {
                return self.at_eof();
            }
        }
    }

    /// Returns a whole message already in the buffer, without reading.
    pub fn try_frame(&mut self) -> Result<Option<Vec<u8>>> {
        let parsed = parse_after(
            &self.buf[self.pos..self.end],
            self.framing,
            self.max,
            self.scanned,
        )?;
        self.scanned = 0;
        match parsed {
            Parsed::Message {
                start,
                end,
                consumed,
            } => {
                let msg = self.buf[self.pos + start..self.pos + end].to_vec();
                self.pos += consumed;
                if self.pos == self.end {
                    self.pos = 0;
                    self.end = 0;
                }
                Ok(Some(msg))
            }
            Parsed::Incomplete { .. } => {
                self.scanned = self.end - self.pos;
                Ok(None)
            }
        }
    }

    /// Whether the end of stream has been seen.
    pub fn is_eof(&self) -> bool {
        self.eof
    }

    /// What to return once the stream has ended with `try_frame` empty.
    fn at_eof(&mut self) -> Result<Option<Vec<u8>>> {
        let have = self.end - self.pos;
        if have == 0 {
            return Ok(None);
        }
        match self.framing {
            Framing::Lines => {
                let msg = self.buf[self.pos..self.end].to_vec();
                self.pos = 0;
                self.end = 0;
                self.scanned = 0;
                Ok(Some(msg))
            }
            Framing::Frames => {
                let needed = match parse(&self.buf[self.pos..self.end], self.framing, self.max)? {
                    Parsed::Incomplete { needed } => needed,
                    // (Not expected: callers try `try_frame` first.)
                    Parsed::Message { .. } => return self.try_frame(),
                };
                self.pos = 0;
                self.end = 0;
                self.scanned = 0;
                Err(truncated(have, needed))
            }
        }
    }

    /// One `read` into the buffer; returns the number of bytes read (0 at
    /// end of stream). Grows the buffer only as far as the message being
    /// read needs, never past `max` plus a header plus one chunk.
    pub fn fill(&mut self) -> Result<usize> {
        if self.eof {
            return Ok(0);
        }
        if self.pos > 0 && (self.pos == self.end || self.buf.len() - self.end < CHUNK / 4) {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
        let want = match parse_after(
            &self.buf[self.pos..self.end],
            self.framing,
            self.max,
            self.scanned,
        )? {
            Parsed::Incomplete { needed } => needed,
            Parsed::Message { .. } => self.end - self.pos + 1,
        };
        // Room for the rest of the message (bounded by max + header, checked
        // by `parse`), at least one chunk so small messages batch.
        let target = (self.pos + want).max(self.end + CHUNK.min(self.max + HEADER + 1));
        if self.buf.len() < target {
            self.buf.resize(target, 0);
        }
        let n = loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_error(e)),
                Ok(n) => break n,
            }
        };
        if n == 0 {
            self.eof = true;
        }
        self.end += n;
        Ok(n)
    }

    /// Reads the next frame and decodes it as a postcard-encoded `T`.
    /// `Ok(None)` at a clean end of stream.
    #[cfg(feature = "serde")]
    #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
    pub fn recv_value<T: DeserializeOwned>(&mut self) -> Result<Option<T>> {
        match self.read_frame()? {
            None => Ok(None),
            Some(bytes) => postcard::from_bytes(&bytes).map(Some).map_err(|e| {
                Error::InvalidArgument(format!("message does not decode as the expected type: {e}"))
            }),
        }
    }

    /// The underlying reader.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The underlying reader (reading from it directly loses framing).
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Unwraps the underlying reader (bytes buffered but not yet returned
    /// as a message are lost).
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Bytes buffered but not yet returned as a message.
    pub fn buffered(&self) -> usize {
        self.end - self.pos
    }
}

/// Maps an `io::Error` from the inner reader to ours, keeping ours as they are.
fn read_error(e: io::Error) -> Error {
    if e.get_ref().is_some_and(|i| i.is::<Error>()) {
        let kind = e.kind();
        match e.into_inner().map(|i| i.downcast::<Error>()) {
            Some(Ok(ours)) => *ours,
            _ => Error::io("read", io::Error::from(kind)),
        }
    } else if matches!(e.kind(), io::ErrorKind::ConnectionReset) {
        Error::Disconnected
    } else if e.kind() == io::ErrorKind::WouldBlock {
        Error::WouldBlock
    } else {
        Error::io("read", e)
    }
}

/// Maps an `io::Error` from the inner writer: broken pipe and reset are
/// [`Error::Disconnected`].
fn write_error(e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => Error::Disconnected,
        _ => read_error(e),
    }
}

/// Writes messages to a byte stream. Each message goes out in one `write`
/// call when it fits 64 KiB (so messages from several writers to one pipe
/// do not interleave as long as they fit `PIPE_BUF`), unbuffered.
#[derive(Debug)]
pub struct FrameWriter<W> {
    inner: W,
    framing: Framing,
    max: usize,
    scratch: Vec<u8>,
}

impl<W: Write> FrameWriter<W> {
    /// A writer with the default maximum ([`DEFAULT_MAX`]).
    pub fn new(inner: W, framing: Framing) -> Self {
        Self::with_max(inner, framing, DEFAULT_MAX)
    }

    /// A writer refusing messages longer than `max` bytes (and never more
    /// than [`MAX_LIMIT`]).
    pub fn with_max(inner: W, framing: Framing, max: usize) -> Self {
        FrameWriter {
            inner,
            framing,
            max: max.min(MAX_LIMIT),
            scratch: Vec::new(),
        }
    }

    /// The largest message written.
    pub fn max(&self) -> usize {
        self.max
    }

    /// How messages are delimited.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Whether [`write_frame`](Self::write_frame) would take `msg`:
    /// [`Error::MessageTooLarge`] above the maximum, and in line mode
    /// [`Error::InvalidArgument`] for a message containing `\n` (it would
    /// arrive as two). Writes nothing.
    pub fn check(&self, msg: &[u8]) -> Result<()> {
        if msg.len() > self.max {
            return Err(Error::MessageTooLarge {
                len: msg.len(),
                max: self.max,
            });
        }
        if self.framing == Framing::Lines && memchr_nl(msg) {
            return Err(Error::InvalidArgument(
                "a message sent in line mode contains a newline; use frames (--binary)".into(),
            ));
        }
        Ok(())
    }

    /// Writes one message, refused as [`check`](Self::check) says.
    pub fn write_frame(&mut self, msg: &[u8]) -> Result<()> {
        self.check(msg)?;
        let (head, tail): (&[u8], &[u8]) = match self.framing {
            Framing::Frames => (&(msg.len() as u32).to_le_bytes()[..], b""),
            Framing::Lines => (b"", b"\n"),
        };
        let total = head.len() + msg.len() + tail.len();
        let r = if total <= CHUNK {
            self.scratch.clear();
            self.scratch.extend_from_slice(head);
            self.scratch.extend_from_slice(msg);
            self.scratch.extend_from_slice(tail);
            self.inner.write_all(&self.scratch)
        } else {
            self.inner
                .write_all(head)
                .and_then(|_| self.inner.write_all(msg))
                .and_then(|_| self.inner.write_all(tail))
        };
        r.and_then(|_| self.inner.flush()).map_err(write_error)
    }

    /// Encodes `value` with postcard and writes it as one frame.
    #[cfg(feature = "serde")]
    #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
    pub fn send_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        let bytes = postcard::to_stdvec(value)
            .map_err(|e| Error::InvalidArgument(format!("value does not encode: {e}")))?;
        self.write_frame(&bytes)
    }

    /// The underlying writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// The underlying writer.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// Unwraps the underlying writer.
    pub fn into_inner(self) -> W {
        self.inner
    }
}

fn memchr_nl(b: &[u8]) -> bool {
    b.contains(&b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frames(bytes: &[u8], framing: Framing, max: usize) -> (Vec<Vec<u8>>, Option<Error>) {
        let mut r = FrameReader::with_max(bytes, framing, max);
        let mut out = Vec::new();
        loop {
            match r.read_frame() {
                Ok(Some(m)) => out.push(m),
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(e)),
            }
        }
    }

    #[test]
    fn over_long_header_is_refused_before_allocating() {
        let mut wire = (u32::MAX).to_le_bytes().to_vec();
        wire.extend_from_slice(b"xx");
        let mut r = FrameReader::with_max(&wire[..], Framing::Frames, 1024);
        match r.read_frame() {
            Err(Error::MessageTooLarge { len, max }) => {
                assert_eq!((len, max), (u32::MAX as usize, 1024));
            }
            other => panic!("{other:?}"),
        }
        assert!(r.buf.len() <= CHUNK + 1024 + HEADER + 1);
    }

    #[test]
    fn truncated_frame_names_missing_bytes() {
        let mut wire = 10u32.to_le_bytes().to_vec();
        wire.extend_from_slice(b"abc");
        let (got, err) = frames(&wire, Framing::Frames, 100);
        assert!(got.is_empty());
        let e = err.unwrap().to_string();
        assert!(e.contains("7 of 14 bytes missing"), "{e}");
        let (_, err) = frames(&[1, 0], Framing::Frames, 100);
        assert!(err.unwrap().to_string().contains("2 of 4 bytes missing"));
    }

    #[test]
    fn lines_round_trip_and_last_line_without_newline() {
        let (got, err) = frames(b"a\n\nbc\nlast", Framing::Lines, 10);
        assert!(err.is_none());
        assert_eq!(
            got,
            vec![
                b"a".to_vec(),
                b"".to_vec(),
                b"bc".to_vec(),
                b"last".to_vec()
            ]
        );
        let (_, err) = frames(b"0123456789ab\n", Framing::Lines, 10);
        assert!(matches!(err, Some(Error::MessageTooLarge { .. })));
    }

    #[test]
    fn writer_refuses_newline_in_line_mode_and_too_large() {
        let mut w = FrameWriter::with_max(Vec::new(), Framing::Lines, 4);
        assert!(matches!(
            w.write_frame(b"a\nb"),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            w.write_frame(b"abcde"),
            Err(Error::MessageTooLarge { .. })
        ));
        w.write_frame(b"abcd").unwrap();
        assert_eq!(w.get_ref(), b"abcd\n");
    }

    /// A reader that hands out at most `n` bytes per read.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.1.min(buf.len()).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    proptest! {
        #[test]
        fn parser_never_panics_and_respects_max(bytes in proptest::collection::vec(any::<u8>(), 0..2048), max in 0usize..300, lines: bool, step in 1usize..64) {
            let framing = if lines { Framing::Lines } else { Framing::Frames };
            let mut r = FrameReader::with_max(Trickle(&bytes, step), framing, max);
            let mut total = 0;
            while let Ok(Some(m)) = r.read_frame() {
                prop_assert!(m.len() <= max);
                total += m.len();
                prop_assert!(total <= bytes.len());
            }
            prop_assert!(r.buf.len() <= CHUNK.max(max + HEADER + 1) + HEADER + max + 1);
        }

        #[test]
        fn lines_round_trip_in_any_chunking(msgs in proptest::collection::vec(proptest::collection::vec(0u8..=255u8, 0..300), 0..20), step in 1usize..100) {
            let msgs: Vec<Vec<u8>> = msgs.into_iter().map(|m| m.into_iter().filter(|&b| b != b'\n').collect()).collect();
            let mut w = FrameWriter::new(Vec::new(), Framing::Lines);
            for m in &msgs { w.write_frame(m).unwrap(); }
            let wire = w.into_inner();
            let mut r = FrameReader::with_max(Trickle(&wire, step), Framing::Lines, 300);
            for m in &msgs { let got = r.read_frame().unwrap(); prop_assert_eq!(got.as_ref(), Some(m)); }
            prop_assert_eq!(r.read_frame().unwrap(), None);
        }

        #[test]
        fn frames_round_trip(msgs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20), step in 1usize..100) {
            let mut w = FrameWriter::new(Vec::new(), Framing::Frames);
            for m in &msgs { w.write_frame(m).unwrap(); }
            let wire = w.into_inner();
            let mut r = FrameReader::with_max(Trickle(&wire, step), Framing::Frames, 300);
            for m in &msgs { let got = r.read_frame().unwrap(); prop_assert_eq!(got.as_ref(), Some(m)); }
            prop_assert_eq!(r.read_frame().unwrap(), None);
        }
    }
}
