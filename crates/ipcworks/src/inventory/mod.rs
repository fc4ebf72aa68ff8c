//! Every IPC object on the machine, who made it, whether its creator still
//! lives, and who uses it — the library side of `ipcworks ls` and
//! `ipcworks rm`.
//!
//! Sources: `/dev/shm` (segments and what ipcworks builds on them, POSIX
//! semaphores as `sem.NAME`), `/dev/mqueue` (POSIX queues, when the mqueue
//! file system is mounted there: see [`posix_queues_listable`]),
//! `/proc/sysvipc/{msg,shm,sem}` (System V queues, shared memory segments
//! and semaphore sets, as `ipcs` shows them), and the [`registry`] for
//! FIFOs, Unix sockets and creators. Users are found in `/proc/*/maps`
//! (mapped segments, System V ones by their id) and `/proc/*/fd` (open
//! files and queue descriptors), read as bytes: a path that is not UTF-8
//! hides nobody.
//!
//! # Addresses
//!
//! Each object has an address, `PREFIX:NAME`, that `ls` prints and
//! [`find`] takes (see [`ObjectKind::prefix`]): `segment:NAME`,
//! `shm:NAME` (a channel), `mq:NAME`, `fifo:/abs/path`, … System V objects
//! go by key, `sysv:0x2a` (a queue), `sysv-shm:0x2a`, `sysv-sem:0x2a`, and
//! those without one (key 0, `IPC_PRIVATE`, and a segment already marked
//! for removal) by id: `sysv-shm:id=32768`. [`find`] also takes a key in
//! decimal (`sysv:42`), the `id=` form for any System V object, and a FIFO
//! or socket path relative to the current directory. A name that is not
//! UTF-8 shows its other bytes as `\xHH`.

mod scan;
mod users;

use std::fs;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

#[cfg(feature = "serde")]
use serde::{Serialize, Serializer};

use crate::registry::{self, Kind};
use crate::sys::{Errno, mq, sysv};
use crate::{Error, Result};

/// What an object is. Serialized as its [`json_name`](Self::json_name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
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
    /// A System V message queue (`ipcs -q`).
    SysvQueue,
    /// A System V shared memory segment (`ipcs -m`).
    SysvSegment,
    /// A System V semaphore set (`ipcs -s`).
    SysvSemaphore,
    /// A named pipe made by ipcworks.
    Fifo,
    /// A Unix-domain socket file made by ipcworks.
    UnixSocket,
}

impl ObjectKind {
    /// Every kind, in the order `ls` sorts them.
    pub const ALL: [ObjectKind; 12] = [
        ObjectKind::Segment,
        ObjectKind::Mutex,
        ObjectKind::Semaphore,
        ObjectKind::Channel,
        ObjectKind::Queue,
        ObjectKind::PosixSemaphore,
        ObjectKind::PosixQueue,
        ObjectKind::SysvQueue,
        ObjectKind::SysvSegment,
        ObjectKind::SysvSemaphore,
        ObjectKind::Fifo,
        ObjectKind::UnixSocket,
    ];

    /// The address prefix `ls` prints and `rm` takes (`shm`, `mutex`,
    /// `sysv-shm`, …).
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
            ObjectKind::SysvSegment => "sysv-shm",
            ObjectKind::SysvSemaphore => "sysv-sem",
            ObjectKind::Fifo => "fifo",
            ObjectKind::UnixSocket => "unix",
        }
    }

    /// The kind whose address prefix is `prefix`.
    pub fn from_prefix(prefix: &str) -> Option<ObjectKind> {
        ObjectKind::ALL.into_iter().find(|k| k.prefix() == prefix)
    }

    /// The kind's name in `ls --json` (`sysv-segment`, `posix-queue`, …).
    pub fn json_name(self) -> &'static str {
        match self {
            ObjectKind::Segment => "segment",
            ObjectKind::Mutex => "mutex",
            ObjectKind::Semaphore => "semaphore",
            ObjectKind::Channel => "channel",
            ObjectKind::Queue => "queue",
            ObjectKind::PosixSemaphore => "posix-semaphore",
            ObjectKind::PosixQueue => "posix-queue",
            ObjectKind::SysvQueue => "sysv-queue",
            ObjectKind::SysvSegment => "sysv-segment",
            ObjectKind::SysvSemaphore => "sysv-semaphore",
            ObjectKind::Fifo => "fifo",
            ObjectKind::UnixSocket => "unix-socket",
        }
    }

    /// The kind `name` stands for in `ls --kind`: its address prefix
    /// (`sysv-shm`, `mq`), its JSON name (`sysv-segment`, `posix-queue`), or
    /// `chan` for a channel.
    pub fn parse(name: &str) -> Option<ObjectKind> {
        ObjectKind::from_prefix(name)
            .or_else(|| ObjectKind::ALL.into_iter().find(|k| k.json_name() == name))
            .or((name == "chan").then_some(ObjectKind::Channel))
    }

    fn is_sysv(self) -> bool {
        matches!(
            self,
            ObjectKind::SysvQueue | ObjectKind::SysvSegment | ObjectKind::SysvSemaphore
        )
    }
}

#[cfg(feature = "serde")]
impl Serialize for ObjectKind {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.json_name())
    }
}

/// The creator of an object, as recorded in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize))]
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
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(Serialize))]
pub struct Object {
    /// What it is.
    pub kind: ObjectKind,
    /// Its address, as `rm` takes it (`shm:jobs`, `sysv:0x2a`,
    /// `sysv-shm:id=32768`, …).
    pub address: String,
    /// The file behind it, where there is one (serialized lossily: bytes
    /// that are not UTF-8 become U+FFFD).
    #[cfg_attr(feature = "serde", serde(serialize_with = "lossy_path"))]
    pub path: Option<PathBuf>,
    /// Size in bytes (segments, System V ones too) or bytes queued
    /// (queues).
    pub bytes: Option<u64>,
    /// Messages queued (the three kinds of queue, when this process may
    /// open them).
    pub messages: Option<u64>,
    /// Semaphores in a System V semaphore set (`nsems`).
    pub semaphores: Option<u64>,
    /// Attaches of a System V segment (`nattch`): what keeps it alive.
    pub attached: Option<u64>,
    /// Whether a System V segment is marked for removal and waits for its
    /// last process to detach (`ipcs` status `dest`).
    pub pending_removal: Option<bool>,
    /// The System V identifier (`msqid`, `shmid`, `semid`).
    pub id: Option<u32>,
    /// Owner's user id.
    pub uid: u32,
    /// Creator's user id, where the kernel records it (System V objects).
    pub creator_uid: Option<u32>,
    /// Permission bits.
    pub mode: u32,
    /// Who created it, when ipcworks did.
    pub creator: Option<Creator>,
    /// Live processes (other than this one) that map or hold it open (for
    /// a System V segment: that map it).
    pub users: Vec<u32>,
}

#[cfg(feature = "serde")]
fn lossy_path<S: Serializer>(p: &Option<PathBuf>, s: S) -> std::result::Result<S::Ok, S::Error> {
    match p {
        Some(p) => s.serialize_some(&p.to_string_lossy()),
        None => s.serialize_none(),
    }
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

    /// A System V object's key, 0 for one addressed by id.
    fn sysv_key(&self) -> i32 {
        self.name()
            .strip_prefix("0x")
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .map_or(0, |k| k as i32)
    }
}

/// Whether `/dev/mqueue` has the mqueue file system mounted, so that POSIX
/// queues can be listed. When it has not, [`list`] leaves them out and
/// [`find`] still finds one by name.
pub fn posix_queues_listable() -> bool {
    mq::on_mqueue_fs(Path::new(mq::MOUNT_POINT))
}

/// Lists every object. Unreadable sources are skipped (and POSIX queues
/// when [`posix_queues_listable`] is false).
pub fn list() -> Vec<Object> {
    list_of(&ObjectKind::ALL)
}

/// Lists the objects of the given kinds only (`ls --kind`), without
/// reading the sources of the others.
pub fn list_of(kinds: &[ObjectKind]) -> Vec<Object> {
    scan::list_of(kinds)
}

/// Finds the object at `address` (as `ls` prints it; see the module docs
/// for the other forms taken). A POSIX queue is found by name even when
/// `/dev/mqueue` is not mounted.
///
/// Errors: [`Error::NotFound`] naming `address` as given.
pub fn find(address: &str) -> Result<Object> {
    let not_found = || Error::NotFound {
        kind: "IPC object",
        name: address.to_string(),
    };
    let (prefix, rest) = address.split_once(':').ok_or_else(not_found)?;
    let kind = ObjectKind::from_prefix(prefix).ok_or_else(not_found)?;
    let objects = list_of(&[kind]);
    let wanted = Wanted::parse(kind, rest);
    let found: Vec<&Object> = objects
        .iter()
        .filter(|o| o.address == address || wanted.matches(o))
        .collect();
    match found[..] {
        [o] => Ok(o.clone()),
        [] if kind == ObjectKind::PosixQueue && !posix_queues_listable() => {
            scan::posix_queue_by_name(rest)?.ok_or_else(not_found)
        }
        [] => Err(not_found()),
        _ => Err(Error::InvalidArgument(format!(
            "{address} names {} objects (names that are not UTF-8 can look alike); remove \
             them by path: {}",
            found.len(),
            found
                .iter()
                .filter_map(|o| o.path.as_ref().map(|p| p.to_string_lossy().into_owned()))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The other spellings of an address that [`find`] takes.
enum Wanted {
    /// A FIFO or socket path, made absolute.
    Path(String),
    /// A System V key given in decimal (or hex with other digits).
    Key(u32),
    /// A System V id (`id=N`).
    Id(u32),
    Nothing,
}

impl Wanted {
    fn parse(kind: ObjectKind, rest: &str) -> Wanted {
        match kind {
            ObjectKind::Fifo | ObjectKind::UnixSocket if !rest.is_empty() => {
                Wanted::Path(registry::path_name(Path::new(rest)))
            }
            k if k.is_sysv() => {
                if let Some(id) = rest.strip_prefix("id=") {
                    return id.parse().map_or(Wanted::Nothing, Wanted::Id);
                }
                let key = match rest.strip_prefix("0x") {
                    Some(h) => u32::from_str_radix(h, 16).ok(),
                    None => rest.parse::<i32>().ok().map(|k| k as u32),
                };
                key.filter(|&k| k != 0).map_or(Wanted::Nothing, Wanted::Key)
            }
            _ => Wanted::Nothing,
        }
    }

    fn matches(&self, o: &Object) -> bool {
        match self {
            Wanted::Path(p) => o.name() == p,
            Wanted::Key(k) => o.sysv_key() as u32 == *k,
            Wanted::Id(id) => o.id == Some(*id),
            Wanted::Nothing => false,
        }
    }
}

/// Why `rm` without `--force` leaves `obj`, if it does: it belongs to
/// another user, a live process uses it (maps it, holds it open, or for a
/// System V segment is attached to it), or a server listens on a socket.
///
/// Errors: [`Error::Refused`] saying which, and that `--force` overrides.
pub fn check_removable(obj: &Object) -> Result<()> {
    let refuse = |reason: String| {
        Err(Error::Refused {
            name: obj.address.clone(),
            reason,
        })
    };
    let me = crate::sys::mem::euid();
    if obj.uid != me {
        return refuse(format!(
            "it is owned by uid {}, not by you (uid {me}); pass --force to remove another \
             user's object",
            obj.uid
        ));
    }
    let pids = || {
        obj.users
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(n) = obj.attached.filter(|&n| n > 0) {
        let by = if obj.users.is_empty() {
            "processes /proc does not show".to_string()
        } else {
            format!("pid {}", pids())
        };
        return refuse(format!(
            "it is attached {n} time(s), by {by} (detach them first, or pass --force: the \
             memory then goes when the last one detaches)"
        ));
    }
    if !obj.users.is_empty() {
        return refuse(format!(
            "it is in use by pid {} (stop them first, or pass --force)",
            pids()
        ));
    }
    if obj.kind == ObjectKind::UnixSocket
        && let Some(p) = &obj.path
        && std::os::unix::net::UnixStream::connect(p).is_ok()
    {
        return refuse("a server is listening on it (stop it first, or pass --force)".into());
    }
    Ok(())
}

/// Removes an object: unlinks its file (`mq_unlink` for a POSIX queue
/// without a visible file), or `IPC_RMID` for a System V object (by its
/// id, so exactly the one listed). Unless `force`, refuses what
/// [`check_removable`] refuses.
pub fn remove(obj: &Object, force: bool) -> Result<()> {
    if !force {
        check_removable(obj)?;
    }
    let errno = |e: Errno, op: &'static str| match e {
        Errno::NOENT | Errno::INVAL | Errno::IDRM => Error::NotFound {
            kind: "IPC object",
            name: obj.address.clone(),
        },
        Errno::PERM | Errno::ACCESS => Error::PermissionDenied {
            name: obj.address.clone(),
        },
        e => Error::io(op, e),
    };
    if obj.kind.is_sysv() {
        let id = obj
            .id
            .and_then(|id| i32::try_from(id).ok())
            .ok_or_else(|| Error::corrupted("a System V object without its id"))?;
        match obj.kind {
            ObjectKind::SysvSegment => sysv::shmctl_rmid(id).map_err(|e| errno(e, "shmctl"))?,
            ObjectKind::SysvSemaphore => sysv::semctl_rmid(id).map_err(|e| errno(e, "semctl"))?,
            _ => {
                sysv::remove(id).map_err(|e| errno(e, "msgctl"))?;
                if obj.sysv_key() != 0 {
                    registry::unregister(Kind::SysvQueue, &obj.sysv_key().to_string());
                }
            }
        }
        return Ok(());
    }
    match &obj.path {
        Some(path) => fs::remove_file(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound {
                kind: "IPC object",
                name: obj.address.clone(),
            },
            std::io::ErrorKind::PermissionDenied => Error::PermissionDenied {
                name: obj.address.clone(),
            },
            _ => Error::io("unlink", e),
        })?,
        None if obj.kind == ObjectKind::PosixQueue => {
            mq::unlink(obj.name()).map_err(|e| errno(e, "mq_unlink"))?
        }
        None => return Err(Error::corrupted("an object without a path")),
    }
    let (k, n) = match obj.kind {
        ObjectKind::PosixSemaphore => (Kind::PosixSemaphore, obj.name().to_string()),
        ObjectKind::PosixQueue => (Kind::PosixQueue, obj.name().to_string()),
        ObjectKind::Fifo => (Kind::Fifo, obj.name().to_string()),
        ObjectKind::UnixSocket => (Kind::UnixSocket, obj.name().to_string()),
        _ => (
            Kind::Shm,
            obj.path
                .as_ref()
                .and_then(|p| p.file_name())
                .and_then(|f| f.to_str())
                .unwrap_or_default()
                .to_string(),
        ),
    };
    registry::unregister(k, &n);
    Ok(())
}

/// Messages in the POSIX queue `name` (`mq_getattr` on a read-only
/// descriptor), if this process may open it.
fn posix_queue_depth(name: &str) -> Option<u64> {
    let fd = mq::open(name, mq::OpenHow::Inspect, 0, None).ok()?;
    let attr = mq::getattr(fd.as_fd()).ok()?;
    Some(attr.curmsgs.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_go_by_prefix_json_name_and_chan() {
        for k in ObjectKind::ALL {
            assert_eq!(ObjectKind::parse(k.prefix()), Some(k));
            assert_eq!(ObjectKind::parse(k.json_name()), Some(k));
        }
        assert_eq!(ObjectKind::parse("chan"), Some(ObjectKind::Channel));
        assert_eq!(ObjectKind::parse("sysv-shm"), Some(ObjectKind::SysvSegment));
        assert_eq!(
            ObjectKind::parse("sysv-segment"),
            Some(ObjectKind::SysvSegment)
        );
        assert_eq!(ObjectKind::parse("sysv"), Some(ObjectKind::SysvQueue));
        assert_eq!(ObjectKind::parse("bogus"), None);
    }

    #[test]
    fn addresses_take_keys_in_hex_or_decimal_and_ids() {
        let o = Object {
            kind: ObjectKind::SysvSegment,
            address: "sysv-shm:0x2a".into(),
            path: None,
            bytes: None,
            messages: None,
            semaphores: None,
            attached: None,
            pending_removal: None,
            id: Some(7),
            uid: 0,
            creator_uid: None,
            mode: 0,
            creator: None,
            users: vec![],
        };
        let k = ObjectKind::SysvSegment;
        assert!(Wanted::parse(k, "42").matches(&o));
        assert!(Wanted::parse(k, "id=7").matches(&o));
        assert!(!Wanted::parse(k, "id=8").matches(&o));
        assert!(!Wanted::parse(k, "0").matches(&o));
        assert!(!Wanted::parse(k, "43").matches(&o));
        let private = Object {
            address: "sysv-shm:id=7".into(),
            ..o
        };
        assert_eq!(private.sysv_key(), 0);
        assert!(Wanted::parse(k, "id=7").matches(&private));
        // A key above i32::MAX, as ls prints it and as a negative decimal.
        let big = Object {
            address: "sysv-shm:0x96eedc63".into(),
            ..private
        };
        assert!(Wanted::parse(k, "-1762730909").matches(&big));
    }
}
