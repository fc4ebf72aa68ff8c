//! System V message queues: `msgget`, `msgsnd`, `msgrcv`, `msgctl`, `ftok`
//! (through libc: rustix has none of them); for `ipcworks ls`/`rm`, the
//! kernel's lists of every System V object in `/proc/sysvipc` and the
//! removal of shared memory segments and semaphore sets (`shmctl`,
//! `semctl`).
//!
//! A message on the wire is `struct msgbuf { long mtype; char mtext[]; }`.
//! [`MsgBuf`] builds it in a buffer of `c_long` words, so `mtype` is aligned
//! as the kernel and C expect and the text follows it directly.
//!
//! # References
//! `sysvipc(7)`, `msgget(2)`, `msgop(2)`, `msgctl(2)`, `shmctl(2)`,
//! `semctl(2)`, `ftok(3)`, `proc_sysvipc(5)`.

use std::ffi::CString;
use std::mem::size_of;

use rustix::io::Errno;

/// Where the kernel publishes the largest message size.
pub const MSGMAX_PATH: &str = "/proc/sys/kernel/msgmax";
/// Where the kernel publishes the most queues the system holds.
pub const MSGMNI_PATH: &str = "/proc/sys/kernel/msgmni";

const HEADER: usize = size_of::<libc::c_long>();

fn last_errno() -> Errno {
    Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::IO)
}

/// Reads a number from a `/proc/sys` file.
pub fn read_limit(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// `ftok(path, proj_id)`: a key from an existing file's inode and device and
/// the low 8 bits of `proj_id`.
pub fn ftok(path: &std::path::Path, proj_id: u8) -> Result<i32, Errno> {
    use std::os::unix::ffi::OsStrExt;
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::INVAL)?;
    // SAFETY: `c` is a NUL-terminated path alive for the call.
    let key = unsafe { libc::ftok(c.as_ptr(), proj_id as libc::c_int) };
    if key == -1 {
        Err(last_errno())
    } else {
        Ok(key)
    }
}

/// `msgget(key, flags)`: the queue's identifier. `flags` holds `IPC_CREAT`,
/// `IPC_EXCL` and the permission bits (on open, the access wanted).
pub fn msgget(key: i32, flags: i32) -> Result<i32, Errno> {
    // SAFETY: msgget takes plain integers and touches no memory of ours.
    let id = unsafe { libc::msgget(key, flags) };
    if id < 0 { Err(last_errno()) } else { Ok(id) }
}

/// A `struct msgbuf` with room for `capacity` bytes of text, in `c_long`
/// words so the type field is aligned.
#[derive(Debug)]
pub struct MsgBuf {
    words: Vec<libc::c_long>,
    capacity: usize,
}

impl MsgBuf {
    /// A buffer for messages of up to `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        let words = 1 + capacity.div_ceil(HEADER);
        MsgBuf {
            words: vec![0; words],
            capacity,
        }
    }

    /// Most text bytes it holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Sets type and text. Panics never: the text must fit (checked by the
    /// caller; an over-long text gives `Err(E2BIG)`).
    pub fn fill(&mut self, mtype: libc::c_long, text: &[u8]) -> Result<(), Errno> {
        if text.len() > self.capacity {
            return Err(Errno::TOOBIG);
        }
        self.words[0] = mtype;
        // SAFETY: the buffer holds 1 + ceil(capacity / HEADER) words, so
        // `capacity` bytes start at byte HEADER; `text.len() <= capacity`,
        // and a Vec<c_long> cannot overlap the borrowed `text`.
        unsafe {
            std::ptr::copy_nonoverlapping(
                text.as_ptr(),
                self.words.as_mut_ptr().cast::<u8>().add(HEADER),
                text.len(),
            );
        }
        Ok(())
    }

    /// The message type (a C `long`, widened to `i64`).
    #[allow(clippy::unnecessary_cast)] // c_long is i64 on 64-bit targets only
    pub fn mtype(&self) -> i64 {
        self.words[0] as i64
    }

    /// The first `len` text bytes (`len` clamped to the capacity).
    pub fn text(&self, len: usize) -> &[u8] {
        let len = len.min(self.capacity);
        // SAFETY: as in `fill`, `capacity` initialised bytes (the Vec was
        // zero-filled) start at byte HEADER; `len <= capacity`.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>().add(HEADER), len) }
    }
}

/// `msgsnd(id, buf, len, flags)`: one attempt; the first `len` text bytes of
/// `buf` go out with its type. `flags` may hold `IPC_NOWAIT`.
pub fn msgsnd(id: i32, buf: &MsgBuf, len: usize, flags: i32) -> Result<(), Errno> {
    if len > buf.capacity {
        return Err(Errno::TOOBIG);
    }
    // SAFETY: `buf.words` holds the type followed by at least `len` bytes
    // (checked above); the kernel only reads HEADER + len bytes.
    let r = unsafe { libc::msgsnd(id, buf.words.as_ptr().cast(), len, flags) };
    if r == 0 { Ok(()) } else { Err(last_errno()) }
}

/// `msgrcv(id, buf, capacity, msgtyp, flags)`: one attempt. Returns the
/// text length; the type is in `buf.mtype()`. Without `MSG_NOERROR`, a
/// message longer than the buffer stays queued and the call fails `E2BIG`.
pub fn msgrcv(id: i32, buf: &mut MsgBuf, msgtyp: i64, flags: i32) -> Result<usize, Errno> {
    // SAFETY: `buf.words` is writable for HEADER + capacity bytes and the
    // kernel writes at most that many (the type plus `capacity` text bytes).
    let r = unsafe {
        libc::msgrcv(
            id,
            buf.words.as_mut_ptr().cast(),
            buf.capacity,
            msgtyp as libc::c_long,
            flags,
        )
    };
    if r < 0 {
        Err(last_errno())
    } else {
        Ok(r as usize)
    }
}

/// What `msgctl(IPC_STAT)` reports of a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsqStat {
    /// Messages in the queue (`msg_qnum`).
    pub messages: u64,
    /// Bytes of text in the queue (`msg_cbytes`).
    pub bytes: u64,
    /// Most bytes of text the queue holds (`msg_qbytes`).
    pub max_bytes: u64,
    /// Process that sent last (`msg_lspid`), 0 if none.
    pub last_sender: i32,
    /// Process that received last (`msg_lrpid`), 0 if none.
    pub last_receiver: i32,
    /// Owner's user id (`msg_perm.uid`).
    pub uid: u32,
    /// Owner's group id (`msg_perm.gid`).
    pub gid: u32,
    /// Creator's user id (`msg_perm.cuid`).
    pub cuid: u32,
    /// Creator's group id (`msg_perm.cgid`).
    pub cgid: u32,
    /// Permission bits (`msg_perm.mode & 0o777`).
    pub mode: u32,
    /// The key (`msg_perm.__key`).
    pub key: i32,
}

/// `msgctl(id, IPC_STAT)`.
#[doc(alias = "msgctl")]
pub fn stat(id: i32) -> Result<MsqStat, Errno> {
    // SAFETY: msqid_ds is plain data; all-zero is a valid value.
    let mut ds: libc::msqid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: `ds` is a live, writable msqid_ds, which IPC_STAT fills.
    if unsafe { libc::msgctl(id, libc::IPC_STAT, &mut ds) } != 0 {
        return Err(last_errno());
    }
    Ok(MsqStat {
        messages: ds.msg_qnum,
        bytes: ds.__msg_cbytes,
        max_bytes: ds.msg_qbytes,
        last_sender: ds.msg_lspid,
        last_receiver: ds.msg_lrpid,
        uid: ds.msg_perm.uid,
        gid: ds.msg_perm.gid,
        cuid: ds.msg_perm.cuid,
        cgid: ds.msg_perm.cgid,
        mode: u32::from(ds.msg_perm.mode) & 0o777,
        key: ds.msg_perm.__key,
    })
}

/// `msgctl(id, IPC_RMID)`: removes the queue now; blocked senders and
/// receivers wake with `EIDRM`.
#[doc(alias = "IPC_RMID")]
pub fn remove(id: i32) -> Result<(), Errno> {
    // SAFETY: IPC_RMID ignores the buffer argument; NULL is allowed.
    if unsafe { libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut()) } != 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// `shmctl(id, IPC_RMID)`: marks the shared memory segment for removal.
/// Its key is freed at once; the memory goes when the last process detaches
/// (until then `/proc/sysvipc/shm` lists it with key 0 and [`SHM_DEST`]).
#[doc(alias = "shmctl")]
#[doc(alias = "IPC_RMID")]
pub fn shmctl_rmid(id: i32) -> Result<(), Errno> {
    // SAFETY: IPC_RMID ignores the buffer argument; NULL is allowed.
    if unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) } != 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// `semctl(id, 0, IPC_RMID)`: removes the semaphore set now; processes
/// blocked in `semop` on it wake with `EIDRM`.
#[doc(alias = "semctl")]
#[doc(alias = "IPC_RMID")]
pub fn semctl_rmid(id: i32) -> Result<(), Errno> {
    // SAFETY: IPC_RMID takes no fourth argument (semun) and touches no
    // memory of ours.
    if unsafe { libc::semctl(id, 0, libc::IPC_RMID) } != 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// The mode bit the kernel adds to a segment marked for removal while
/// still attached (`SHM_DEST`, as `/proc/sysvipc/shm` shows it).
pub const SHM_DEST: u32 = 0o1000;

/// The three System V facilities, each listed in its own
/// `/proc/sysvipc` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Facility {
    /// Message queues (`/proc/sysvipc/msg`).
    Msg,
    /// Shared memory segments (`/proc/sysvipc/shm`).
    Shm,
    /// Semaphore sets (`/proc/sysvipc/sem`).
    Sem,
}

impl Facility {
    /// The file that lists this facility's objects.
    pub fn proc_path(self) -> &'static str {
        match self {
            Facility::Msg => "/proc/sysvipc/msg",
            Facility::Shm => "/proc/sysvipc/shm",
            Facility::Sem => "/proc/sysvipc/sem",
        }
    }

    /// The name of the id column (`msqid`, `shmid`, `semid`).
    fn id_column(self) -> &'static str {
        match self {
            Facility::Msg => "msqid",
            Facility::Shm => "shmid",
            Facility::Sem => "semid",
        }
    }
}

/// One System V object as `/proc/sysvipc` lists it: what `ipcs` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpcObject {
    /// Which facility.
    pub facility: Facility,
    /// Its key (0 = `IPC_PRIVATE`, and a segment marked for removal).
    pub key: i32,
    /// Its identifier (`msqid`, `shmid`, `semid`).
    pub id: i32,
    /// Permission bits (`perms & 0o777`).
    pub mode: u32,
    /// The mode bits above the permissions (`SHM_DEST`, `SHM_LOCKED`).
    pub flags: u32,
    /// Owner's user id.
    pub uid: u32,
    /// Owner's group id.
    pub gid: u32,
    /// Creator's user id.
    pub cuid: u32,
    /// Creator's group id.
    pub cgid: u32,
    /// Time of creation or of the last `IPC_SET` (seconds since the epoch).
    pub ctime: i64,
    /// Queues: bytes of text queued (`cbytes`); segments: size (`size`).
    pub bytes: Option<u64>,
    /// Queues: messages queued (`qnum`).
    pub messages: Option<u64>,
    /// Segments: attaches (`nattch`).
    pub attached: Option<u64>,
    /// Semaphore sets: semaphores in the set (`nsems`).
    pub semaphores: Option<u64>,
}

/// Every object of `facility` in this IPC namespace, read from
/// `/proc/sysvipc` (readable by everyone, whatever the objects' modes).
#[doc(alias = "ipcs")]
pub fn proc_list(facility: Facility) -> std::io::Result<Vec<IpcObject>> {
    Ok(parse_proc(
        facility,
        &std::fs::read_to_string(facility.proc_path())?,
    ))
}

/// Parses a `/proc/sysvipc` file: a header naming the columns, then one
/// line per object. Columns are found by name, so the kernel may add some;
/// a line missing one is skipped.
fn parse_proc(facility: Facility, text: &str) -> Vec<IpcObject> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (Some(key), Some(id), Some(perms), Some(uid), Some(gid), Some(cuid), Some(cgid)) = (
        col("key"),
        col(facility.id_column()),
        col("perms"),
        col("uid"),
        col("gid"),
        col("cuid"),
        col("cgid"),
    ) else {
        return Vec::new();
    };
    let (ctime, cbytes, qnum, size, nattch, nsems) = (
        col("ctime"),
        col("cbytes"),
        col("qnum"),
        col("size"),
        col("nattch"),
        col("nsems"),
    );
    lines
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let num = |i: Option<usize>| -> Option<u64> { f.get(i?)?.parse().ok() };
            let perms = u32::from_str_radix(f.get(perms)?, 8).ok()?;
            Some(IpcObject {
                facility,
                key: f.get(key)?.parse().ok()?,
                id: f.get(id)?.parse().ok()?,
                mode: perms & 0o777,
                flags: perms & !0o777,
                uid: f.get(uid)?.parse().ok()?,
                gid: f.get(gid)?.parse().ok()?,
                cuid: f.get(cuid)?.parse().ok()?,
                cgid: f.get(cgid)?.parse().ok()?,
                ctime: ctime.and_then(|i| f.get(i)?.parse().ok()).unwrap_or(0),
                bytes: match facility {
                    Facility::Msg => num(cbytes),
                    Facility::Shm => num(size),
                    Facility::Sem => None,
                },
                messages: num(qnum),
                attached: num(nattch),
                semaphores: num(nsems),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_proc_sysvipc_files() {
        let msg = "       key      msqid perms      cbytes       qnum lspid lrpid   uid   gid  cuid  cgid      stime      rtime      ctime\n      4660          0   600          12          3     0     0     0     0     0     0          0          0 1795686921\n";
        let shm = "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap\n         0          3  1600                 10000 17506 17506      1  1000  1000     0     0 1796623675          0 1796623675                 12288                     0\n";
        let sem = "       key      semid perms      nsems   uid   gid  cuid  cgid      otime      ctime\n-1762730909          1   600          3 65534 65534 65534 65534          0 1796623545\n";
        let m = parse_proc(Facility::Msg, msg);
        assert_eq!(
            m,
            vec![IpcObject {
                facility: Facility::Msg,
                key: 4660,
                id: 0,
                mode: 0o600,
                flags: 0,
                uid: 0,
                gid: 0,
                cuid: 0,
                cgid: 0,
                ctime: 1795686921,
                bytes: Some(12),
                messages: Some(3),
                attached: None,
                semaphores: None,
            }]
        );
        let s = parse_proc(Facility::Shm, shm);
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].key, s[0].id, s[0].mode), (0, 3, 0o600));
        assert_eq!(s[0].flags, SHM_DEST, "marked for removal");
        assert_eq!((s[0].uid, s[0].cuid), (1000, 0));
        assert_eq!((s[0].bytes, s[0].attached), (Some(10000), Some(1)));
        let s = parse_proc(Facility::Sem, sem);
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].key as u32, s[0].id), (0x96ee_dc63, 1));
        assert_eq!((s[0].semaphores, s[0].bytes), (Some(3), None));
        assert_eq!(
            (s[0].uid, s[0].cgid, s[0].ctime),
            (65534, 65534, 1796623545)
        );
        // A header without the columns we need gives nothing, never a panic.
        assert_eq!(parse_proc(Facility::Msg, "key perms\n1 600\n"), vec![]);
        assert_eq!(parse_proc(Facility::Shm, ""), vec![]);
    }
}
