//! `fifo`: two named pipes (`mkfifo(3)`) in a private temporary folder,
//! opened by path in both processes.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::{Mode, OFlags, open};

use crate::harness::{Case, Handoff, Link, Mechanism, Setup};
use crate::mechs::fd::Stream;

/// The named pipe pair.
pub struct Fifo;

/// Removes the folder and its FIFOs.
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("ping"), dir.join("pong"))
}

impl Mechanism for Fifo {
    fn name(&self) -> &'static str {
        "fifo"
    }

    fn setup(&self, case: &Case) -> io::Result<Setup> {
        let dir = super::temp_dir("fifo")?;
        let guard = Cleanup(dir.clone());
        let (ping, pong) = paths(&dir);
        for p in [&ping, &pong] {
            rustix::fs::mkfifoat(rustix::fs::CWD, p, Mode::RUSR | Mode::WUSR)?;
        }
        // Reading end first, without blocking; the writing end once the
        // peer opened its reading end (ENXIO until then).
        let rx = open(
            &pong,
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let wait = case.wait;
        let connect = Box::new(move |deadline: Instant| -> io::Result<Box<dyn Link>> {
            let tx = loop {
                match open(
                    &ping,
                    OFlags::WRONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
                    Mode::empty(),
                ) {
                    Ok(fd) => break fd,
                    Err(rustix::io::Errno::NXIO) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_micros(200))
                    }
                    Err(e) => return Err(io::Error::other(format!("open FIFO for writing: {e}"))),
                }
            };
            Ok(Box::new(Stream::new(rx, Some(tx), wait)?))
        });
        Ok(Setup {
            fds: vec![],
            args: vec![dir.to_string_lossy().into_owned()],
            connect,
            keep: vec![Box::new(guard)],
        })
    }

    fn peer(&self, case: &Case, h: Handoff) -> io::Result<Box<dyn Link>> {
        let (ping, pong) = paths(Path::new(h.arg(0)?));
        let rx = open(&ping, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
        let tx = open(&pong, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())?;
        Ok(Box::new(Stream::new(rx, Some(tx), case.wait)?))
    }
}
