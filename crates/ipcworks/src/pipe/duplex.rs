//! Two pipes as one full-duplex stream (`pipe(2)` twice, wired crosswise).

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::process::{Child, Command};

use super::{PipeReader, PipeWriter, pipe};
use crate::sys::fdio;
use crate::{Error, Result};

/// A bidirectional byte stream made of two pipes, one for each direction:
/// what one side writes, the other reads, and both may do so at once.
///
/// A pipe carries bytes one way only, so a conversation between parent and
/// child needs two of them, with the unused ends closed on each side (or no
/// one ever sees end of stream). [`Duplex::spawn`] does all of that in one
/// call, with the child's end on its stdin and stdout; [`Duplex::pair`]
/// gives two connected ends for threads (or for [`pass_fd`](super::pass_fd)).
///
/// ```
/// use std::io::{BufRead, BufReader, Write};
/// use std::process::Command;
/// use ipcworks::pipe::Duplex;
///
/// let (mut io, mut child) = Duplex::spawn(Command::new("cat"))?;
/// io.write_all(b"ping\n")?;
/// let (r, w) = io.into_parts();
/// drop(w); // cat sees end of input and exits after echoing
/// let mut line = String::new();
/// BufReader::new(r).read_line(&mut line)?;
/// assert_eq!(line, "ping\n");
/// child.wait()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Duplex {
    reader: PipeReader,
    writer: PipeWriter,
}

impl Duplex {
    /// Two connected ends: bytes written to one are read from the other,
    /// in both directions.
    pub fn pair() -> Result<(Duplex, Duplex)> {
        let (r1, w1) = pipe()?;
        let (r2, w2) = pipe()?;
        Ok((
            Duplex {
                reader: r1,
                writer: w2,
            },
            Duplex {
                reader: r2,
                writer: w1,
            },
        ))
    }

    /// Spawns `cmd` with its stdin and stdout connected to the returned
    /// stream: what the parent writes, the child reads on stdin; what the
    /// child prints on stdout, the parent reads. The child's stderr is left
    /// as `cmd` says. `cmd` is consumed and dropped after spawning so the
    /// parent keeps no copy of the child's ends (which would hide end of
    /// stream).
    pub fn spawn(mut cmd: Command) -> Result<(Duplex, Child)> {
        let (child_in, to_child) = pipe()?;
        let (from_child, child_out) = pipe()?;
        cmd.stdin(child_in).stdout(child_out);
        let child = cmd.spawn().map_err(|e| Error::io("spawn", e))?;
        drop(cmd);
        Ok((
            Duplex {
                reader: from_child,
                writer: to_child,
            },
            child,
        ))
    }

    /// In a child started by [`Duplex::spawn`]: the stream to the parent,
    /// made of duplicates of stdin (descriptor 0) and stdout (1). The parent
    /// sees end of stream when the child exits (or closes both the
    /// duplicate and descriptor 1).
    pub fn from_stdio() -> Result<Duplex> {
        let dup = |fd| fdio::dup(fd).map_err(|e| Error::io("fcntl(F_DUPFD_CLOEXEC)", e));
        Ok(Duplex {
            reader: PipeReader(dup(io::stdin().as_fd())?),
            writer: PipeWriter(dup(io::stdout().as_fd())?),
        })
    }

    /// Joins a reader and a writer into one stream.
    pub fn from_parts(reader: PipeReader, writer: PipeWriter) -> Self {
        Duplex { reader, writer }
    }

    /// Splits into the reading and writing halves (e.g. to close the writing
    /// half while still reading, or to use them from two threads).
    pub fn into_parts(self) -> (PipeReader, PipeWriter) {
        (self.reader, self.writer)
    }

    /// The reading half.
    pub fn reader(&mut self) -> &mut PipeReader {
        &mut self.reader
    }

    /// The writing half.
    pub fn writer(&mut self) -> &mut PipeWriter {
        &mut self.writer
    }
}

impl Read for Duplex {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buf)
    }
}

impl Write for Duplex {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
