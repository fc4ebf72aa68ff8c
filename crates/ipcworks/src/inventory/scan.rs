//! Reading the sources of the inventory: `/dev/shm`, `/dev/mqueue`,
//! `/proc/sysvipc` and the registry.

use std::ffi::OsStr;
use std::fs;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::users::{Look, Users};
use super::{Creator, Object, ObjectKind, posix_queue_depth, posix_queues_listable};
use crate::registry::{self, Kind};
use crate::shm::Header;
use crate::sys::sysv::{self, Facility, IpcObject};
use crate::sys::{Errno, mq};
use crate::{Error, Result};

/// `/dev/shm` name prefixes of the objects ipcworks builds on segments
/// (each kind's [`Header::PREFIX`]), and of glibc's POSIX semaphores.
const SHM_PREFIXES: &[(&str, ObjectKind)] = &[
    (
        <crate::sync::mutex::Header as Header>::PREFIX,
        ObjectKind::Mutex,
    ),
    (
        <crate::sync::semaphore::Header as Header>::PREFIX,
        ObjectKind::Semaphore,
    ),
    (
        <crate::channel::Header as Header>::PREFIX,
        ObjectKind::Channel,
    ),
    (<crate::queue::Header as Header>::PREFIX, ObjectKind::Queue),
    ("sem.", ObjectKind::PosixSemaphore),
];

/// The kinds found in `/dev/shm`.
const SHM_KINDS: [ObjectKind; 6] = [
    ObjectKind::Segment,
    ObjectKind::Mutex,
    ObjectKind::Semaphore,
    ObjectKind::Channel,
    ObjectKind::Queue,
    ObjectKind::PosixSemaphore,
];

fn creator_of(kind: Kind, name: &str) -> Option<Creator> {
    registry::creator(kind, name).map(|(id, persistent)| Creator {
        pid: id.id(),
        alive: id.is_alive(),
        persistent,
    })
}

/// A file name as an address shows it: itself when UTF-8, otherwise with
/// each byte that is not as `\xHH`.
fn display_name(name: &OsStr) -> String {
    let mut out = String::new();
    for chunk in name.as_bytes().utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// An object with only its kind, address and owner filled in.
fn object(kind: ObjectKind, address: String, uid: u32, mode: u32) -> Object {
    Object {
        kind,
        address,
        path: None,
        bytes: None,
        messages: None,
        semaphores: None,
        attached: None,
        pending_removal: None,
        id: None,
        uid,
        creator_uid: None,
        mode,
        creator: None,
        users: Vec::new(),
    }
}

/// See [`super::list_of`].
pub(super) fn list_of(kinds: &[ObjectKind]) -> Vec<Object> {
    let want = |k: ObjectKind| kinds.contains(&k);
    let queues = want(ObjectKind::PosixQueue) && posix_queues_listable();
    let users = Users::scan(Look {
        files: SHM_KINDS.into_iter().any(want)
            || want(ObjectKind::Fifo)
            || want(ObjectKind::UnixSocket),
        sysv_segments: want(ObjectKind::SysvSegment),
        queues,
    });
    let mut out = Vec::new();
    if SHM_KINDS.into_iter().any(want) {
        shm_objects(&users, &mut out);
    }
    if queues {
        posix_queues(&users, &mut out);
    }
    for (kind, facility) in [
        (ObjectKind::SysvQueue, Facility::Msg),
        (ObjectKind::SysvSegment, Facility::Shm),
        (ObjectKind::SysvSemaphore, Facility::Sem),
    ] {
        if want(kind)
            && let Ok(list) = sysv::proc_list(facility)
        {
            out.extend(list.iter().map(|o| sysv_object(kind, o, &users)));
        }
    }
    if want(ObjectKind::Fifo) || want(ObjectKind::UnixSocket) {
        registered_files(&users, &mut out);
    }
    out.retain(|o| want(o.kind));
    prune_registry(&out, kinds, queues);
    out.sort_by(|a, b| (a.kind, &a.address).cmp(&(b.kind, &b.address)));
    out
}

fn shm_objects(users: &Users, out: &mut Vec<Object>) {
    let Ok(rd) = fs::read_dir(crate::sys::mem::SHM_DIR) else {
        return;
    };
    for e in rd.flatten() {
        let fname = display_name(&e.file_name());
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
        let (reg_kind, reg_name) = if kind == ObjectKind::PosixSemaphore {
            (Kind::PosixSemaphore, &name)
        } else {
            (Kind::Shm, &fname)
        };
        let mut o = object(
            kind,
            format!("{}:{name}", kind.prefix()),
            md.uid(),
            md.mode() & 0o7777,
        );
        // A native queue's size is what it holds, as for the kernel's
        // queues; a segment's is its length.
        match kind {
            ObjectKind::Queue => {
                if let Some(st) = crate::queue::inspect(&name) {
                    o.bytes = Some(st.bytes);
                    o.messages = Some(st.depth as u64);
                }
            }
            _ => o.bytes = Some(md.len()),
        }
        o.users = users.of_path(&e.path());
        o.creator = creator_of(reg_kind, reg_name);
        o.path = Some(e.path());
        out.push(o);
    }
}

/// The bytes queued, from the "QSIZE:N NOTIFY:…" a queue's file reads.
fn qsize(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok().and_then(|s| {
        s.split_whitespace()
            .find_map(|f| f.strip_prefix("QSIZE:"))
            .and_then(|n| n.parse().ok())
    })
}

fn posix_queues(users: &Users, out: &mut Vec<Object>) {
    let Ok(rd) = fs::read_dir(mq::MOUNT_POINT) else {
        return;
    };
    for e in rd.flatten() {
        let name = display_name(&e.file_name());
        let Ok(md) = e.path().symlink_metadata() else {
            continue;
        };
        let mut o = object(
            ObjectKind::PosixQueue,
            format!("mq:{name}"),
            md.uid(),
            md.mode() & 0o7777,
        );
        o.bytes = qsize(&e.path());
        o.messages = posix_queue_depth(&name);
        o.users = users.of_queue(&e.file_name());
        o.creator = creator_of(Kind::PosixQueue, &name);
        o.path = Some(e.path());
        out.push(o);
    }
}

/// The POSIX queue `name` found by opening it (`mq_open`, read-only) and
/// asking its descriptor (`fstat`, `mq_getattr`): how [`super::find`]
/// finds one when `/dev/mqueue` is not mounted. `Ok(None)` if there is
/// none.
pub(super) fn posix_queue_by_name(name: &str) -> Result<Option<Object>> {
    let address = format!("mq:{name}");
    // mq_open answers EACCES for a name with a slash: no queue has one.
    if name.is_empty() || name.contains('/') {
        return Ok(None);
    }
    let fd = match mq::open(name, mq::OpenHow::Inspect, 0, None) {
        Ok(fd) => fd,
        Err(Errno::NOENT | Errno::INVAL | Errno::NAMETOOLONG) => return Ok(None),
        Err(Errno::ACCESS) => return Err(Error::PermissionDenied { name: address }),
        Err(e) => return Err(Error::io("mq_open", e)),
    };
    let st = crate::sys::mem::stat(fd.as_fd()).map_err(|e| Error::io("fstat", e))?;
    let mut o = object(ObjectKind::PosixQueue, address, st.uid, st.mode);
    o.messages = mq::getattr(fd.as_fd())
        .ok()
        .map(|a| a.curmsgs.max(0) as u64);
    drop(fd);
    o.users = Users::scan(Look {
        queues: true,
        ..Look::default()
    })
    .of_queue(OsStr::new(name));
    o.creator = creator_of(Kind::PosixQueue, name);
    Ok(Some(o))
}

fn sysv_object(kind: ObjectKind, ipc: &IpcObject, users: &Users) -> Object {
    let address = if ipc.key == libc::IPC_PRIVATE {
        format!("{}:id={}", kind.prefix(), ipc.id)
    } else {
        format!("{}:{:#x}", kind.prefix(), ipc.key as u32)
    };
    let mut o = object(kind, address, ipc.uid, ipc.mode);
    o.id = u32::try_from(ipc.id).ok();
    o.creator_uid = Some(ipc.cuid);
    o.bytes = ipc.bytes;
    o.messages = ipc.messages;
    o.semaphores = ipc.semaphores;
    if kind == ObjectKind::SysvSegment {
        o.attached = ipc.attached;
        o.pending_removal = Some(ipc.flags & sysv::SHM_DEST != 0);
        o.users = users.of_sysv_segment(ipc.id as u64);
    }
    if kind == ObjectKind::SysvQueue && ipc.key != libc::IPC_PRIVATE {
        o.creator = creator_of(Kind::SysvQueue, &ipc.key.to_string());
    }
    o
}

/// FIFOs and Unix sockets: only the registry knows them.
fn registered_files(users: &Users, out: &mut Vec<Object>) {
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
        let mut o = object(
            kind,
            format!("{}:{}", kind.prefix(), entry.name),
            md.uid(),
            md.mode() & 0o7777,
        );
        o.users = users.of_path(&path);
        o.path = Some(path);
        o.creator = Some(Creator {
            pid: entry.creator.id(),
            alive: entry.creator.is_alive(),
            persistent: entry.persistent,
        });
        out.push(o);
    }
}

/// Forgets registry entries whose object no longer exists, for the kinds
/// just listed (`queues`: whether POSIX queues could be listed). The
/// registry forgets System V entries whose queue is gone by itself.
fn prune_registry(found: &[Object], kinds: &[ObjectKind], queues: bool) {
    for entry in registry::entries() {
        let exists = match entry.kind {
            Kind::Shm => Path::new(crate::sys::mem::SHM_DIR)
                .join(&entry.name)
                .exists(),
            Kind::PosixSemaphore if kinds.contains(&ObjectKind::PosixSemaphore) => found
                .iter()
                .any(|o| o.kind == ObjectKind::PosixSemaphore && o.name() == entry.name),
            // Without /dev/mqueue mounted we cannot tell: keep the entry.
            Kind::PosixQueue if queues => Path::new(mq::MOUNT_POINT).join(&entry.name).exists(),
            _ => continue,
        };
        if !exists {
            registry::unregister(entry.kind, &entry.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_not_utf8_show_their_bytes() {
        assert_eq!(display_name(OsStr::new("jobs")), "jobs");
        assert_eq!(display_name(OsStr::new("ç a\\b")), "ç a\\b");
        assert_eq!(
            display_name(OsStr::from_bytes(b"a\xff\xfeb\xc3")),
            "a\\xff\\xfeb\\xc3"
        );
    }
}
