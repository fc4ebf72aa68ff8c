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
//! Each entry also records which object it was written for, beyond its
//! name: the device and inode of a file, and for a System V queue (a key
//! names whatever queue holds it now) its msqid, creation time (`ctime`)
//! and creator's uid, from `/proc/sysvipc/msg`. If the creator's object is
//! removed and another program makes a new one under the same name, the
//! entry no longer matches, is forgotten, and the newcomer is never taken
//! for a stale ipcworks object (nor removed by `rm --stale`). A System V
//! entry without that identity is never trusted, and one whose queue had
//! its `ctime` changed by `IPC_SET` (a `chmod` or `chown` of the queue) is
//! forgotten too: erring towards "not ours".
//!
//! An entry is a file named `KIND.HEX` (the name in hexadecimal) holding
//! `CREATOR PERSISTENT [OBJECT]`. A name too long for that (its hex form
//! would pass the file name limit, `NAME_MAX` = 255: a FIFO's path, say) is
//! recorded as `KIND.long.HASH` (FNV-1a, 64 bits) with a second line "name
//! HEX" holding the name itself, which lookups compare. Two long names with
//! the same hash share one file: the later registration replaces the
//! earlier's entry, and the earlier object is then simply not known as
//! ipcworks' (never stale, never removed by `rm --stale`).
//!
//! The registry is advisory: failing to write it never fails the creation
//! of an object, and an entry whose object is gone is ignored and pruned.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::PathBuf;

use crate::sys::proc::Identity;
use crate::sys::sysv;

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

/// What identifies the object an entry was written for, beyond its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ObjectId {
    /// A file: its device and inode.
    File { dev: u64, ino: u64 },
    /// A System V queue: its msqid, creation time and creator's uid.
    Sysv { id: i32, ctime: i64, cuid: u32 },
}

impl ObjectId {
    /// As written in an entry: "DEV INO" or "sysv ID CTIME CUID".
    fn text(self) -> String {
        match self {
            ObjectId::File { dev, ino } => format!("{dev} {ino}"),
            ObjectId::Sysv { id, ctime, cuid } => format!("sysv {id} {ctime} {cuid}"),
        }
    }

    fn parse<'a>(mut f: impl Iterator<Item = &'a str>) -> Option<ObjectId> {
        match f.next()? {
            "sysv" => Some(ObjectId::Sysv {
                id: f.next()?.parse().ok()?,
                ctime: f.next()?.parse().ok()?,
                cuid: f.next()?.parse().ok()?,
            }),
            dev => Some(ObjectId::File {
                dev: dev.parse().ok()?,
                ino: f.next()?.parse().ok()?,
            }),
        }
    }
}

/// The contents of an entry file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    creator: Identity,
    persistent: bool,
    /// `None` in entries written before identities were recorded.
    object: Option<ObjectId>,
    /// The name, in entries whose file name is a hash of it.
    name: Option<String>,
}

/// Parses an entry file: "IDENTITY PERSISTENT \[OBJECT\]", then for a long
/// name "name HEX".
fn parse_record(text: &str) -> Record {
    let mut lines = text.lines();
    let mut f = lines.next().unwrap_or("").split_whitespace();
    let creator = f
        .next()
        .and_then(|s| s.parse::<u64>().ok())
        .map(Identity::from_raw)
        .unwrap_or(Identity::NONE);
    let persistent = f.next() == Some("1");
    let object = ObjectId::parse(f);
    let name = lines
        .find_map(|l| l.strip_prefix("name "))
        .and_then(|hex| String::from_utf8(hex_decode(hex.trim())?).ok());
    Record {
        creator,
        persistent,
        object,
        name,
    }
}

fn format_record(r: &Record) -> String {
    let mut text = format!("{} {}", r.creator.raw(), u8::from(r.persistent));
    if let Some(o) = r.object {
        text = format!("{text} {}", o.text());
    }
    text.push('\n');
    if let Some(n) = &r.name {
        text += &format!("name {}\n", hex_encode(n));
    }
    text
}

fn hex_encode(name: &str) -> String {
    name.bytes().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The file behind a named object, where it has one the registry can
/// check (`/dev/mqueue` only when mounted; System V queues have none).
fn object_path(kind: Kind, name: &str) -> Option<PathBuf> {
    let shm = std::path::Path::new(crate::sys::mem::SHM_DIR);
    match kind {
        Kind::Shm => Some(shm.join(name)),
        Kind::PosixSemaphore => Some(shm.join(format!("sem.{name}"))),
        Kind::PosixQueue => Some(PathBuf::from("/dev/mqueue").join(name)),
        Kind::SysvQueue => None,
        Kind::Fifo | Kind::UnixSocket => Some(PathBuf::from(name)),
    }
}

/// What identifies the object `name` of `kind` now: a file's device and
/// inode, a System V queue's msqid, `ctime` and creator (read from
/// `/proc/sysvipc/msg`, which anyone may read); `None` if there is none.
fn object_id(kind: Kind, name: &str) -> Option<ObjectId> {
    if kind == Kind::SysvQueue {
        let key: i32 = name.parse().ok()?;
        let q = sysv::proc_list(sysv::Facility::Msg)
            .ok()?
            .into_iter()
            .find(|q| q.key == key)?;
        return Some(ObjectId::Sysv {
            id: q.id,
            ctime: q.ctime,
            cuid: q.cuid,
        });
    }
    let md = fs::symlink_metadata(object_path(kind, name)?).ok()?;
    Some(ObjectId::File {
        dev: md.dev(),
        ino: md.ino(),
    })
}

/// Whether an entry still describes the object at its name: false when
/// the entry recorded the object's identity and a *different* object now
/// has that name (the creator's object was removed and someone else made a
/// new one: it is not ipcworks' and must never look stale). A System V
/// queue's entry must have recorded one and find its queue: a key names
/// whatever queue holds it now.
fn still_same_object(kind: Kind, name: &str, recorded: Option<ObjectId>) -> bool {
    match (recorded, object_id(kind, name)) {
        (Some(then), Some(now)) => then == now,
        _ if kind == Kind::SysvQueue => false,
        // An entry written before identities were recorded, or an object
        // that is gone (its entry is pruned by `inventory`).
        _ => true,
    }
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

/// The longest entry file name written as `KIND.HEX`: the temporary file
/// written first (".NAME.PID") must fit in `NAME_MAX` (255) too.
const MAX_PLAIN_FILE_NAME: usize = 200;

/// Whether `name` is recorded under a hash of it (see the module docs).
fn is_long(kind: Kind, name: &str) -> bool {
    kind.tag().len() + 1 + 2 * name.len() > MAX_PLAIN_FILE_NAME
}

fn file_name(kind: Kind, name: &str) -> String {
    if is_long(kind, name) {
        format!("{}.long.{:016x}", kind.tag(), fnv1a(name.as_bytes()))
    } else {
        format!("{}.{}", kind.tag(), hex_encode(name))
    }
}

/// FNV-1a, 64 bits: a hash that stays the same from build to build (the
/// registry outlives the program that wrote it), unlike std's hashers.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What an entry's file name says: its kind, and its object's name unless
/// the name is hashed (then it is inside the file).
fn parse_file_name(f: &str) -> Option<(Kind, Option<String>)> {
    let (tag, rest) = f.split_once('.')?;
    let kind = Kind::from_tag(tag)?;
    if let Some(hash) = rest.strip_prefix("long.") {
        return (hash.len() == 16 && u64::from_str_radix(hash, 16).is_ok()).then_some((kind, None));
    }
    Some((kind, Some(String::from_utf8(hex_decode(rest)?).ok()?)))
}

/// The record of `name` of `kind` and its file, if there is one for that
/// very name (a hashed file holding another name is not it).
fn read_record(kind: Kind, name: &str) -> Option<(PathBuf, Record)> {
    let path = dir()?.join(file_name(kind, name));
    let record = parse_record(&fs::read_to_string(&path).ok()?);
    if is_long(kind, name) && record.name.as_deref() != Some(name) {
        return None;
    }
    Some((path, record))
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
    let record = Record {
        creator: me,
        persistent,
        object: object_id(kind, name),
        name: is_long(kind, name).then(|| name.to_string()),
    };
    let written = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(format_record(&record).as_bytes()));
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
    if let Some((path, _)) = read_record(kind, name) {
        let _ = fs::remove_file(path);
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
        let Some((kind, in_name)) = fname.to_str().and_then(parse_file_name) else {
            continue;
        };
        let record = parse_record(&fs::read_to_string(e.path()).unwrap_or_default());
        let Some(name) = in_name.or(record.name) else {
            continue;
        };
        if !still_same_object(kind, &name, record.object) {
            // The recorded object is gone; the name now belongs to another.
            let _ = fs::remove_file(e.path());
            continue;
        }
        out.push(Entry {
            kind,
            name,
            creator: record.creator,
            persistent: record.persistent,
        });
    }
    out.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    out
}

/// The creator of `name` of `kind` and whether the object is persistent,
/// if recorded — and if the object now at that name is the one recorded
/// (an entry whose object was replaced by another is forgotten).
pub fn creator(kind: Kind, name: &str) -> Option<(Identity, bool)> {
    let (path, record) = read_record(kind, name)?;
    if !still_same_object(kind, name, record.object) {
        let _ = fs::remove_file(&path);
        return None;
    }
    Some((record.creator, record.persistent))
}

/// What to remove if the process is interrupted (see
/// [`crate::process::remove_on_terminate`]) for `name` of `kind`: the
/// object itself and its registry entry. `name` as the registry knows it:
/// the `/dev/shm` or `/dev/mqueue` file name, the System V key in decimal,
/// or the absolute path of a FIFO or socket.
pub(crate) fn removals(kind: Kind, name: &str) -> Vec<crate::sys::signal::Removal> {
    use crate::sys::signal::Removal;
    let object = match kind {
        Kind::Shm => Removal::Path(format!("{}/{name}", crate::sys::mem::SHM_DIR)),
        Kind::PosixSemaphore => Removal::Path(format!("{}/sem.{name}", crate::sys::mem::SHM_DIR)),
        Kind::PosixQueue => Removal::Mq(format!("/{name}")),
        Kind::SysvQueue => match name.parse() {
            Ok(key) => Removal::Sysv(key),
            Err(_) => return Vec::new(),
        },
        Kind::Fifo | Kind::UnixSocket => Removal::Path(name.to_string()),
    };
    let mut v = vec![object];
    if let Some(p) = file_path(kind, name) {
        v.push(Removal::Path(p.to_string_lossy().into_owned()));
    }
    v
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
            assert_eq!(
                parse_file_name(&file_name(k, n)),
                Some((k, Some(n.to_string())))
            );
        }
        let long = "x".repeat(250);
        let f = file_name(Kind::Fifo, &long);
        assert!(
            f.starts_with("fifo.long.") && f.len() < MAX_PLAIN_FILE_NAME,
            "{f}"
        );
        assert_eq!(parse_file_name(&f), Some((Kind::Fifo, None)));
        assert_eq!(parse_file_name("shm.zz"), None);
        assert_eq!(parse_file_name("nope.00"), None);
        assert_eq!(parse_file_name("shm.long.xyz"), None);
    }

    #[test]
    fn parses_entries_with_and_without_the_object_id() {
        let me = Identity::process();
        let rec = |object, name: Option<&str>| Record {
            creator: me,
            persistent: true,
            object,
            name: name.map(str::to_string),
        };
        assert_eq!(parse_record(&format!("{} 1\n", me.raw())), rec(None, None));
        let file = Some(ObjectId::File {
            dev: 64768,
            ino: 1234,
        });
        assert_eq!(
            parse_record(&format!("{} 1 64768 1234\n", me.raw())),
            rec(file, None)
        );
        let queue = Some(ObjectId::Sysv {
            id: 32769,
            ctime: 1796623545,
            cuid: 1000,
        });
        for r in [
            rec(None, None),
            rec(file, None),
            rec(queue, None),
            rec(queue, Some("a b\nç")),
        ] {
            assert_eq!(parse_record(&format_record(&r)), r);
        }
        assert_eq!(
            parse_record(""),
            Record {
                creator: Identity::NONE,
                persistent: false,
                object: None,
                name: None
            }
        );
    }

    #[test]
    fn an_entry_whose_object_was_replaced_is_forgotten() {
        let name = format!("ipcworks-test-registry-replaced-{}", std::process::id());
        let path = std::path::Path::new(crate::sys::mem::SHM_DIR).join(&name);
        let other = path.with_extension("other");
        let _ = fs::remove_file(&path);
        fs::write(&path, b"ours").unwrap();
        register(Kind::Shm, &name, false);
        assert_eq!(
            creator(Kind::Shm, &name),
            Some((Identity::process(), false))
        );
        // Someone else's object takes the name (made first, so its inode
        // differs, then renamed over ours).
        fs::write(&other, b"theirs").unwrap();
        fs::rename(&other, &path).unwrap();
        let found = creator(Kind::Shm, &name);
        let listed = entries().iter().any(|e| e.name == name);
        let _ = fs::remove_file(&path);
        unregister(Kind::Shm, &name);
        assert_eq!(found, None, "a replaced object has no recorded creator");
        assert!(!listed);
    }

    #[test]
    fn names_too_long_for_a_file_name_are_recorded_too() {
        // A FIFO path with a 250-byte file name: its hex encoding alone is
        // twice NAME_MAX.
        let long = format!(
            "/tmp/ipcworks-test-registry-long-{}/{}",
            std::process::id(),
            "x".repeat(250)
        );
        // Two names alike in all but the last byte stay apart.
        let other = format!("{}y", &long[..long.len() - 1]);
        for n in [&long, &other] {
            register(Kind::Fifo, n, false);
            assert_eq!(
                creator(Kind::Fifo, n),
                Some((Identity::process(), false)),
                "{n}"
            );
        }
        let listed: Vec<String> = entries()
            .into_iter()
            .filter(|e| e.kind == Kind::Fifo)
            .map(|e| e.name)
            .collect();
        assert!(listed.contains(&long) && listed.contains(&other));
        let file = file_path(Kind::Fifo, &long).expect("a file records it");
        assert!(file.exists());
        assert!(file.file_name().unwrap().len() <= 255);
        unregister(Kind::Fifo, &long);
        assert_eq!(creator(Kind::Fifo, &long), None);
        assert!(creator(Kind::Fifo, &other).is_some(), "only that one went");
        unregister(Kind::Fifo, &other);
        assert_eq!(creator(Kind::Fifo, &other), None);
        assert!(!file.exists());
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
