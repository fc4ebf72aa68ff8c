//! A small registry of the named objects ipcworks created, and by whom.
//!
//! The kernel lists shared memory, POSIX queues and System V queues, but not
//! who made them, and it cannot list FIFOs and Unix sockets at all. So every
//! named object ipcworks creates is recorded as one small file in a private
//! directory — `$XDG_RUNTIME_DIR/ipcworks`, or `/tmp/ipcworks-UID` — holding
//! its creator's pid and start time. `ipcworks ls` reads it to say whether
//! the creator is still alive; `ipcworks rm --stale` uses it to clean up
//! after crashed processes.
//!
//! `IPCWORKS_REGISTRY=DIR` puts it elsewhere (tests use a private one).
//!
//! The registry is advisory: failing to write it never fails the creation
//! of an object, and an entry whose object is gone is ignored and pruned.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::PathBuf;

use crate::sys::proc::Identity;

/// The kinds of object the registry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A `/dev/shm` object (segments, and the mutexes, semaphores, channels
    /// and queues built on them, which `ls` tells apart by name).
    Shm,
    /// A POSIX named semaphore (`/dev/shm/sem.NAME`).
    PosixSemaphore,
    /// A POSIX message queue (`/dev/mqueue/NAME`).
    PosixQueue,
    /// A System V message queue, by key.
    SysvQueue,
    /// A named pipe, by path.
    Fifo,
    /// A Unix-domain socket file, by path.
    UnixSocket,
}

impl Kind {
    fn tag(self) -> &'static str {
        match self {
            Kind::Shm => "shm",
            Kind::PosixSemaphore => "psem",
            Kind::PosixQueue => "mq",
            Kind::SysvQueue => "sysv",
            Kind::Fifo => "fifo",
            Kind::UnixSocket => "unix",
        }
    }

    fn from_tag(t: &str) -> Option<Kind> {
        Some(match t {
            "shm" => Kind::Shm,
            "psem" => Kind::PosixSemaphore,
            "mq" => Kind::PosixQueue,
            "sysv" => Kind::SysvQueue,
            "fifo" => Kind::Fifo,
            "unix" => Kind::UnixSocket,
            _ => return None,
        })
    }
}

/// One recorded object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its kind.
    pub kind: Kind,
    /// Its name: the `/dev/shm` or `/dev/mqueue` file name, the System V
    /// key in decimal, or the path of a FIFO or socket.
    pub name: String,
    /// The process that created it.
    pub creator: Identity,
    /// Whether it is meant to outlive its creator (a queue or semaphore
    /// made to persist); only objects that are not can be stale.
    pub persistent: bool,
}

/// Parses an entry file: "IDENTITY PERSISTENT".
fn parse_entry(text: &str) -> (Identity, bool) {
    let mut f = text.split_whitespace();
    let id = f
        .next()
        .and_then(|s| s.parse::<u64>().ok())
        .map(Identity::from_raw)
        .unwrap_or(Identity::NONE);
    (id, f.next() == Some("1"))
}

/// The registry directory (created 0700 on first use; refused if it is not
/// a directory owned by us).
pub fn dir() -> Option<PathBuf> {
    let uid = crate::sys::mem::euid();
    let dir = match (
        std::env::var_os("IPCWORKS_REGISTRY"),
        std::env::var_os("XDG_RUNTIME_DIR"),
    ) {
        (Some(d), _) if !d.is_empty() => PathBuf::from(d),
        (_, Some(d)) if !d.is_empty() => PathBuf::from(d).join("ipcworks"),
        _ => PathBuf::from(format!("/tmp/ipcworks-{uid}")),
    };
    match fs::symlink_metadata(&dir) {
        Ok(m) if m.is_dir() && m.uid() == uid && m.mode() & 0o077 == 0 => Some(dir),
        Ok(_) => None,
        Err(_) => {
            fs::DirBuilder::new().mode(0o700).create(&dir).ok()?;
            Some(dir)
        }
    }
}

fn file_name(kind: Kind, name: &str) -> String {
    let hex: String = name.bytes().map(|b| format!("{b:02x}")).collect();
    format!("{}.{hex}", kind.tag())
}

fn parse_file_name(f: &str) -> Option<(Kind, String)> {
    let (tag, hex) = f.split_once('.')?;
    if hex.len() % 2 != 0 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    Some((Kind::from_tag(tag)?, String::from_utf8(bytes?).ok()?))
}

/// The file that records `name` of `kind` (for cleanup code that cannot
/// call [`unregister`], such as a signal handler).
pub fn file_path(kind: Kind, name: &str) -> Option<PathBuf> {
    Some(dir()?.join(file_name(kind, name)))
}

/// Records that this process created `name` of `kind` (best effort);
/// `persistent` says it is meant to outlive this process.
pub fn register(kind: Kind, name: &str, persistent: bool) {
    let Some(dir) = dir() else { return };
    let me = Identity::process();
    let path = dir.join(file_name(kind, name));
    let tmp = dir.join(format!(".{}.{}", file_name(kind, name), me.id()));
    let written = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| writeln!(f, "{} {}", me.raw(), u8::from(persistent)));
    if written.is_ok() {
        let _ = fs::rename(&tmp, &path);
    } else {
        let _ = fs::remove_file(&tmp);
    }
}

/// The registry name of a file-system object: its absolute path.
pub fn path_name(path: &std::path::Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .to_string_lossy()
        .into_owned()
}

/// Forgets `name` of `kind` (best effort).
pub fn unregister(kind: Kind, name: &str) {
    if let Some(dir) = dir() {
        let _ = fs::remove_file(dir.join(file_name(kind, name)));
    }
}

/// Every recorded entry.
pub fn entries() -> Vec<Entry> {
    let Some(dir) = dir() else { return Vec::new() };
    let Ok(rd) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let fname = e.file_name();
        let Some((kind, name)) = fname.to_str().and_then(parse_file_name) else {
            continue;
        };
        let (creator, persistent) = parse_entry(&fs::read_to_string(e.path()).unwrap_or_default());
        out.push(Entry {
            kind,
            name,
            creator,
            persistent,
        });
    }
    out.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    out
}

/// The creator of `name` of `kind` and whether the object is persistent,
/// if recorded.
pub fn creator(kind: Kind, name: &str) -> Option<(Identity, bool)> {
    let dir = dir()?;
    let text = fs::read_to_string(dir.join(file_name(kind, name))).ok()?;
    Some(parse_entry(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip_any_name() {
        for (k, n) in [
            (Kind::Shm, "jobs"),
            (Kind::Fifo, "/tmp/a b/ç"),
            (Kind::SysvQueue, "42"),
        ] {
            assert_eq!(parse_file_name(&file_name(k, n)), Some((k, n.to_string())));
        }
        assert_eq!(parse_file_name("shm.zz"), None);
        assert_eq!(parse_file_name("nope.00"), None);
    }

    #[test]
    fn register_then_find_then_unregister() {
        let name = format!("ipcworks-test-registry-{}", std::process::id());
        register(Kind::Fifo, &name, true);
        assert_eq!(
            creator(Kind::Fifo, &name),
            Some((Identity::process(), true))
        );
        assert!(
            entries()
                .iter()
                .any(|e| e.name == name && e.kind == Kind::Fifo)
        );
        unregister(Kind::Fifo, &name);
        assert_eq!(creator(Kind::Fifo, &name), None);
    }
}
