//! Who uses an object: the live processes (other than this one) that map
//! it (`/proc/PID/maps`) or hold it open (`/proc/PID/fd`). Everything is
//! read as bytes, so a process with a path that is not UTF-8 somewhere in
//! its map is not skipped.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::process::regions::parse_maps_line;
use crate::sys::mq;

/// What to look for (each costs reads of every process's files).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Look {
    /// Files under /dev/shm, FIFOs and sockets: maps and descriptors.
    pub files: bool,
    /// System V segments: maps.
    pub sysv_segments: bool,
    /// POSIX queues: descriptors.
    pub queues: bool,
}

/// The users found, by object.
#[derive(Debug, Default)]
pub(super) struct Users {
    paths: HashMap<PathBuf, Vec<u32>>,
    sysv_segments: HashMap<u64, Vec<u32>>,
    queues: HashMap<OsString, Vec<u32>>,
}

impl Users {
    /// Processes that map or hold open the file at `path`.
    pub fn of_path(&self, path: &Path) -> Vec<u32> {
        self.paths.get(path).cloned().unwrap_or_default()
    }

    /// Processes that map the System V segment `shmid`.
    pub fn of_sysv_segment(&self, shmid: u64) -> Vec<u32> {
        self.sysv_segments.get(&shmid).cloned().unwrap_or_default()
    }

    /// Processes that hold the POSIX queue `name` open.
    pub fn of_queue(&self, name: &OsStr) -> Vec<u32> {
        self.queues.get(name).cloned().unwrap_or_default()
    }

    /// Reads `/proc` for what `look` asks.
    pub fn scan(look: Look) -> Users {
        let mut users = Users::default();
        if !(look.files || look.sysv_segments || look.queues) {
            return users;
        }
        let me = std::process::id();
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
            let mut found = Found::default();
            if (look.files || look.sysv_segments)
                && let Ok(maps) = fs::read(format!("/proc/{pid}/maps"))
            {
                found.maps(&maps, look);
            }
            if look.files || look.queues {
                found.descriptors(pid, look);
            }
            found.add_to(&mut users, pid);
        }
        users
    }
}

/// What one process uses.
#[derive(Debug, Default)]
struct Found {
    paths: Vec<PathBuf>,
    sysv_segments: Vec<u64>,
    queues: Vec<OsString>,
}

impl Found {
    fn maps(&mut self, maps: &[u8], look: Look) {
        for line in maps.split(|&b| b == b'\n') {
            let Some(l) = parse_maps_line(line) else {
                continue;
            };
            let path = l.path.strip_suffix(b" (deleted)").unwrap_or(l.path);
            if look.files && path.starts_with(b"/dev/shm/") {
                self.paths.push(PathBuf::from(OsStr::from_bytes(path)));
            } else if look.sysv_segments && path.starts_with(b"/SYSV") {
                // A System V segment shows as /SYSV<key in hex>, its
                // inode being its shmid (the key may have changed since).
                self.sysv_segments.push(l.inode);
            }
        }
    }

    fn descriptors(&mut self, pid: u32, look: Look) {
        let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
            return;
        };
        for fd in fds.flatten() {
            let Ok(target) = fs::read_link(fd.path()) else {
                continue;
            };
            let bytes = target.as_os_str().as_bytes();
            if !bytes.starts_with(b"/") || bytes.ends_with(b" (deleted)") {
                continue;
            }
            // A queue descriptor reads "/NAME" (whether /dev/mqueue is
            // mounted or not); a file in / looks alike, so ask statfs.
            if look.queues && !bytes[1..].contains(&b'/') && mq::on_mqueue_fs(&fd.path()) {
                self.queues.push(OsStr::from_bytes(&bytes[1..]).to_owned());
            } else if look.files {
                self.paths.push(target);
            }
        }
    }

    fn add_to(mut self, users: &mut Users, pid: u32) {
        self.paths.sort();
        self.paths.dedup();
        self.sysv_segments.sort();
        self.sysv_segments.dedup();
        self.queues.sort();
        self.queues.dedup();
        for p in self.paths {
            users.paths.entry(p).or_default().push(pid);
        }
        for id in self.sysv_segments {
            users.sysv_segments.entry(id).or_default().push(pid);
        }
        for q in self.queues {
            users.queues.entry(q).or_default().push(pid);
        }
    }
}
