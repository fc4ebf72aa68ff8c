//! Every IPC object on the machine of the kinds ipcworks speaks, who made
//! it, whether its creator still lives, and who uses it — the library side
//! of `ipcworks ls` and `ipcworks rm`.
//!
//! Sources: `/dev/shm` (segments and what ipcworks builds on them, POSIX
//! semaphores as `sem.NAME`), `/dev/mqueue` (POSIX queues, when mounted),
//! `/proc/sysvipc/msg` (System V queues), and the [`registry`] for FIFOs,
//! Unix sockets and creators. Users are found in `/proc/*/maps` and
//! `/proc/*/fd`.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::registry::{self, Kind};
use crate::sys::proc::Identity;
use crate::{Error, Result};

/// What an object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObjectKind {
    /// A plain shared memory segment.
    Segment,
    /// An ipcworks robust mutex (`/dev/shm/ipcworks.mutex.NAME`).
    Mutex,
    /// An ipcworks native semaphore (`/dev/shm/ipcworks.sem.NAME`).
    Semaphore,
    /// An ipcworks shared-memory channel (`/dev/shm/ipcworks.chan.NAME`).
    Channel,
    /// An ipcworks native priority queue (`/dev/shm/ipcworks.queue.NAME`).
    Queue,
    /// A POSIX named semaphore (`/dev/shm/sem.NAME`).
    PosixSemaphore,
    /// A POSIX message queue.
    PosixQueue,
    /// A System V message queue.
    SysvQueue,
    /// A named pipe made by ipcworks.
    Fifo,
    /// A Unix-domain socket file made by ipcworks.
    UnixSocket,
}

impl ObjectKind {
    /// The address prefix `ls` prints and `rm` takes (`shm`, `mutex`, …).
    pub fn prefix(self) -> &'static str {
        match self {
            ObjectKind::Segment => "segment",
            ObjectKind::Mutex => "mutex",
            ObjectKind::Semaphore => "sem",
            ObjectKind::Channel => "shm",
            ObjectKind::Queue => "queue",
            ObjectKind::PosixSemaphore => "posix-sem",
            ObjectKind::PosixQueue => "mq",
            ObjectKind::SysvQueue => "sysv",
            ObjectKind::Fifo => "fifo",
            ObjectKind::UnixSocket => "unix",
        }
    }
}

/// `/dev/shm` name prefixes of the objects ipcworks builds on segments.
const SHM_PREFIXES: &[(&str, ObjectKind)] = &[
    ("ipcworks.mutex.", ObjectKind::Mutex),
    ("ipcworks.sem.", ObjectKind::Semaphore),
    ("ipcworks.chan.", ObjectKind::Channel),
    ("ipcworks.queue.", ObjectKind::Queue),
    ("sem.", ObjectKind::PosixSemaphore),
];

/// The creator of an object, as recorded in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Creator {
    /// Its pid.
    pub pid: u32,
    /// Whether that process (same pid *and* start time) still runs.
    pub alive: bool,
    /// Whether the object was made to outlive its creator (a persistent
    /// queue or semaphore): such an object is never stale.
    pub persistent: bool,
}

/// One IPC object.
#[derive(Debug, Clone, Serialize)]
pub struct Object {
    /// What it is.
    pub kind: ObjectKind,
    /// Its address, as `rm` takes it (`shm:jobs`, `sysv:0x2a`, …).
    pub address: String,
    /// The file behind it, where there is one.
    pub path: Option<PathBuf>,
    /// Size in bytes (segments) or bytes queued (queues).
    pub bytes: Option<u64>,
    /// Messages queued (the three kinds of queue, when this process may
    /// open them).
    pub messages: Option<u64>,
    /// Owner's user id.
    pub uid: u32,
    /// Permission bits.
    pub mode: u32,
    /// Who created it, when ipcworks did.
    pub creator: Option<Creator>,
    /// Live processes (other than this one) that map or hold it open.
    pub users: Vec<u32>,
}

impl Object {
    /// Made by an ipcworks process that has died without removing it, and
    /// not made to persist.
    pub fn is_stale(&self) -> bool {
        self.creator.is_some_and(|c| !c.alive && !c.persistent)
    }

    /// The name without the address prefix.
    pub fn name(&self) -> &str {
        self.address
            .split_once(':')
            .map(|(_, n)| n)
            .unwrap_or(&self.address)
    }
}

fn creator_of(kind: Kind, name: &str) -> Option<Creator> {
    registry::creator(kind, name).map(|(id, persistent): (Identity, bool)| Creator {
        pid: id.id(),
        alive: id.is_alive(),
        persistent,
    })
}

/// Messages in the POSIX queue `name` (`mq_getattr` on a read-only
/// descriptor), if this process may open it.
fn posix_queue_depth(name: &str) -> Option<u64> {
    use crate::sys::mq;
    use std::os::fd::AsFd;
    let fd = mq::open(name, mq::OpenHow::Inspect, 0, None).ok()?;
    let attr = mq::getattr(fd.as_fd()).ok()?;
    Some(attr.curmsgs.max(0) as u64)
}

/// Lists every object. Unreadable sources are skipped.
pub fn list() -> Vec<Object> {
    let users = scan_users();
    let users_of = |p: &Path| users.get(p).cloned().unwrap_or_default();
    let mut out = Vec::new();

    if let Ok(rd) = fs::read_dir(crate::sys::mem::SHM_DIR) {
        for e in rd.flatten() {
            let Some(fname) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let Ok(md) = e.path().symlink_metadata() else {
                continue;
            };
            if !md.is_file() {
                continue;
            }
            let (kind, name) = SHM_PREFIXES
                .iter()
                .find_map(|(p, k)| fname.strip_prefix(p).map(|n| (*k, n.to_string())))
                .unwrap_or((ObjectKind::Segment, fname.clone()));
            let reg_kind = if kind == ObjectKind::PosixSemaphore {
                Kind::PosixSemaphore
            } else {
                Kind::Shm
            };
            let reg_name = if kind == ObjectKind::PosixSemaphore {
                &name
            } else {
                &fname
            };
            // A native queue's size is what it holds, as for the kernel's
            // queues; a segment's is its length.
            let (bytes, messages) = match kind {
                // (Under loom the queue is only its slot protocol.)
                #[cfg(not(loom))]
                ObjectKind::Queue => crate::queue::inspect(&name)
                    .map_or((None, None), |st| (Some(st.bytes), Some(st.depth as u64))),
                _ => (Some(md.len()), None),
            };
            out.push(Object {
                kind,
                address: format!("{}:{name}", kind.prefix()),
                users: users_of(&e.path()),
                path: Some(e.path()),
                bytes,
                messages,
                uid: md.uid(),
                mode: md.mode() & 0o7777,
                creator: creator_of(reg_kind, reg_name),
            });
        }
    }

    let mq_dir = Path::new("/dev/mqueue");
    if let Ok(rd) = fs::read_dir(mq_dir) {
        for e in rd.flatten() {
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let Ok(md) = e.path().symlink_metadata() else {
                continue;
            };
            // The file reads "QSIZE:N NOTIFY:… ": N is the bytes queued.
            let qsize = fs::read_to_string(e.path()).ok().and_then(|s| {
                s.split_whitespace()
                    .find_map(|f| f.strip_prefix("QSIZE:"))
                    .and_then(|n| n.parse().ok())
            });
            out.push(Object {
                kind: ObjectKind::PosixQueue,
                address: format!("mq:{name}"),
                users: users_of(&e.path()),
                path: Some(e.path()),
                bytes: qsize,
                messages: posix_queue_depth(&name),
                uid: md.uid(),
                mode: md.mode() & 0o7777,
                creator: creator_of(Kind::PosixQueue, &name),
            });
        }
    }

    if let Ok(text) = fs::read_to_string("/proc/sysvipc/msg") {
        for q in parse_sysv(&text) {
            out.push(Object {
                kind: ObjectKind::SysvQueue,
                address: format!("sysv:{:#x}", q.key as u32),
                path: None,
                bytes: Some(q.cbytes),
                messages: Some(q.qnum),
                uid: q.uid,
                mode: q.mode,
                creator: creator_of(Kind::SysvQueue, &q.key.to_string()),
                users: Vec::new(),
            });
        }
    }

    for entry in registry::entries() {
        let kind = match entry.kind {
            Kind::Fifo => ObjectKind::Fifo,
            Kind::UnixSocket => ObjectKind::UnixSocket,
            _ => continue,
        };
        let path = PathBuf::from(&entry.name);
        let Ok(md) = path.symlink_metadata() else {
            registry::unregister(entry.kind, &entry.name);
            continue;
        };
        let right_type = match kind {
            ObjectKind::Fifo => md.file_type().is_fifo(),
            _ => md.file_type().is_socket(),
        };
        if !right_type {
            continue;
        }
        out.push(Object {
            kind,
            address: format!("{}:{}", kind.prefix(), entry.name),
            users: users_of(&path),
            path: Some(path),
            bytes: None,
            messages: None,
            uid: md.uid(),
            mode: md.mode() & 0o7777,
            creator: Some(Creator {
                pid: entry.creator.id(),
                alive: entry.creator.is_alive(),
                persistent: entry.persistent,
            }),
        });
    }
    prune_registry(&out);
    out.sort_by(|a, b| (a.kind, &a.address).cmp(&(b.kind, &b.address)));
    out
}

/// Forgets registry entries whose object no longer exists.
fn prune_registry(found: &[Object]) {
    for entry in registry::entries() {
        let exists = match entry.kind {
            Kind::Shm => Path::new(crate::sys::mem::SHM_DIR)
                .join(&entry.name)
                .exists(),
            Kind::PosixSemaphore => found
                .iter()
                .any(|o| o.kind == ObjectKind::PosixSemaphore && o.name() == entry.name),
            // Without /dev/mqueue mounted we cannot tell: keep the entry.
            Kind::PosixQueue => {
                !Path::new("/dev/mqueue").is_dir()
                    || Path::new("/dev/mqueue").join(&entry.name).exists()
            }
            Kind::SysvQueue => found.iter().any(|o| {
                o.kind == ObjectKind::SysvQueue
                    && entry
                        .name
                        .parse::<i32>()
                        .is_ok_and(|k| o.address == format!("sysv:{:#x}", k as u32))
            }),
            Kind::Fifo | Kind::UnixSocket => continue,
        };
        if !exists {
            registry::unregister(entry.kind, &entry.name);
        }
    }
}

/// One line of `/proc/sysvipc/msg`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SysvLine {
    key: i32,
    mode: u32,
    cbytes: u64,
    qnum: u64,
    uid: u32,
}

/// Parses `/proc/sysvipc/msg`: key msqid perms cbytes qnum lspid lrpid uid
/// … (perms in octal).
fn parse_sysv(text: &str) -> Vec<SysvLine> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some(SysvLine {
                key: f.first()?.parse().ok()?,
                mode: u32::from_str_radix(f.get(2)?, 8).ok()? & 0o777,
                cbytes: f.get(3)?.parse().ok()?,
                qnum: f.get(4)?.parse().ok()?,
                uid: f.get(7)?.parse().ok()?,
            })
        })
        .collect()
}

/// Maps each file under /dev/shm, /dev/mqueue or in the registry that a
/// live process (other than this one) maps or holds open to those pids.
fn scan_users() -> HashMap<PathBuf, Vec<u32>> {
    let me = std::process::id();
    let mut users: HashMap<PathBuf, Vec<u32>> = HashMap::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return users;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let mut paths: Vec<PathBuf> = Vec::new();
        if let Ok(maps) = fs::read_to_string(format!("/proc/{pid}/maps")) {
            for line in maps.lines() {
                if let Some(i) = line.find("/dev/shm/") {
                    let p = line[i..].trim_end_matches(" (deleted)");
                    paths.push(PathBuf::from(p));
                }
            }
        }
        if let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) {
            for fd in fds.flatten() {
                if let Ok(target) = fs::read_link(fd.path()) {
                    let s = target.to_string_lossy();
                    if s.starts_with('/') && !s.ends_with(" (deleted)") {
                        paths.push(target);
                    }
                }
            }
        }
        paths.sort();
        paths.dedup();
        for p in paths {
            users.entry(p).or_default().push(pid);
        }
    }
    users
}

/// Finds the object at `address` (as `ls` prints it).
pub fn find(address: &str) -> Result<Object> {
    let objects = list();
    if let Some(o) = objects.iter().find(|o| o.address == address) {
        return Ok(o.clone());
    }
    // FIFOs and sockets are listed by absolute path; take a relative one
    // (as given to `recv fifo:NAME`) relative to the current directory.
    for prefix in ["fifo:", "unix:"] {
        if let Some(p) = address.strip_prefix(prefix)
            && !p.starts_with('/')
            && !p.is_empty()
        {
            let abs = format!("{prefix}{}", registry::path_name(Path::new(p)));
            if let Some(o) = objects.iter().find(|o| o.address == abs) {
                return Ok(o.clone());
            }
        }
    }
    // `sysv:42` and `sysv:0x2a` name the same key.
    if let Some(k) = address.strip_prefix("sysv:") {
        let key = if let Some(h) = k.strip_prefix("0x") {
            u32::from_str_radix(h, 16).ok()
        } else {
            k.parse::<i32>().ok().map(|k| k as u32)
        };
        if let Some(key) = key
            && let Some(o) = objects
                .iter()
                .find(|o| o.address == format!("sysv:{key:#x}"))
        {
            return Ok(o.clone());
        }
    }
    Err(Error::NotFound {
        kind: "IPC object",
        name: format!("{address} (run `ipcworks ls` to see the addresses)"),
    })
}

/// Removes an object. Refuses one that a live process uses unless `force`.
pub fn remove(obj: &Object, force: bool) -> Result<()> {
    if !obj.users.is_empty() && !force {
        return Err(Error::Refused {
            name: obj.address.clone(),
            reason: format!(
                "it is in use by pid {} (stop them first, or pass --force)",
                obj.users
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    if obj.kind == ObjectKind::UnixSocket
        && let Some(p) = &obj.path
        && std::os::unix::net::UnixStream::connect(p).is_ok()
        && !force
    {
        return Err(Error::Refused {
            name: obj.address.clone(),
            reason: "a server is listening on it (stop it first, or pass --force)".into(),
        });
    }
    match obj.kind {
        ObjectKind::SysvQueue => {
            let key = u32::from_str_radix(obj.name().trim_start_matches("0x"), 16)
                .map_err(|_| Error::corrupted("bad System V key"))? as i32;
            crate::mq::sysv::Queue::remove_key(key)?;
        }
        _ => {
            let path = obj
                .path
                .as_ref()
                .ok_or_else(|| Error::corrupted("object without a path"))?;
            fs::remove_file(path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Error::NotFound {
                    kind: "IPC object",
                    name: obj.address.clone(),
                },
                std::io::ErrorKind::PermissionDenied => Error::PermissionDenied {
                    name: obj.address.clone(),
                },
                _ => Error::io("unlink", e),
            })?;
            let (k, n) = match obj.kind {
                ObjectKind::PosixSemaphore => (Kind::PosixSemaphore, obj.name().to_string()),
                ObjectKind::PosixQueue => (Kind::PosixQueue, obj.name().to_string()),
                ObjectKind::Fifo => (Kind::Fifo, obj.name().to_string()),
                ObjectKind::UnixSocket => (Kind::UnixSocket, obj.name().to_string()),
                _ => (
                    Kind::Shm,
                    path.file_name()
                        .and_then(|f| f.to_str())
                        .unwrap_or_default()
                        .to_string(),
                ),
            };
            registry::unregister(k, &n);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_sysvipc_msg() {
        let text = "       key      msqid perms      cbytes       qnum lspid lrpid   uid   gid  cuid  cgid      stime      rtime      ctime\n      4660          0   600          12          3     0     0     0     0     0     0          0          0 1795686921\n";
        assert_eq!(
            parse_sysv(text),
            vec![SysvLine {
                key: 4660,
                mode: 0o600,
                cbytes: 12,
                qnum: 3,
                uid: 0
            }]
        );
    }
}
