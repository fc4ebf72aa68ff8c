//! A process's memory by the textbook's regions, read from `/proc`: see
//! the [module docs](super#memory-regions).

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

#[cfg(feature = "serde")]
use serde::{Serialize, Serializer};

use crate::{Error, Result};

/// Which textbook region a mapping belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize))]
#[cfg_attr(feature = "serde", serde(tag = "kind", rename_all = "kebab-case"))]
pub enum RegionKind {
    /// Machine code of the program (text segment).
    Code,
    /// Read-only data of the program: constants, string literals, headers.
    ReadOnlyData,
    /// Initialized global and static variables.
    Data,
    /// Zero-initialized globals (bss), right after the data.
    Bss,
    /// The heap, grown by `brk` (`malloc`'s small allocations).
    Heap,
    /// A thread's stack.
    Stack {
        /// Thread id.
        tid: u32,
        /// Thread name (`/proc/PID/task/TID/comm`).
        name: String,
    },
    /// The guard page below a thread's stack (no access: catches overflow).
    StackGuard,
    /// Shared memory: a `MAP_SHARED` mapping of `/dev/shm`, a memfd, or
    /// another shared file.
    SharedMemory,
    /// Code or data of a shared library.
    SharedLibrary,
    /// Pages the kernel maps into every process (`[vdso]`, `[vvar]`).
    Kernel,
    /// Anonymous memory from `mmap` (large `malloc`s, thread arenas, …).
    Anonymous,
    /// A mapped file that is none of the above.
    File,
}

impl RegionKind {
    /// A short label for tables.
    pub fn label(&self) -> String {
        match self {
            RegionKind::Code => "code".into(),
            RegionKind::ReadOnlyData => "rodata".into(),
            RegionKind::Data => "data".into(),
            RegionKind::Bss => "bss".into(),
            RegionKind::Heap => "heap".into(),
            RegionKind::Stack { tid, name } => format!("stack (thread {tid} {name:?})"),
            RegionKind::StackGuard => "stack guard".into(),
            RegionKind::SharedMemory => "shared memory".into(),
            RegionKind::SharedLibrary => "shared library".into(),
            RegionKind::Kernel => "kernel (vdso)".into(),
            RegionKind::Anonymous => "anonymous".into(),
            RegionKind::File => "mapped file".into(),
        }
    }
}

/// One mapping of a process, labelled.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(Serialize))]
pub struct Region {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// Permissions as in `/proc/PID/maps` (`r-xp`, `rw-s`, …).
    pub perms: String,
    /// The mapped path or pseudo-name (`[heap]`), empty when anonymous;
    /// bytes as the kernel gives them (serialized lossily).
    #[cfg_attr(feature = "serde", serde(serialize_with = "lossy"))]
    pub path: PathBuf,
    /// The region.
    pub region: RegionKind,
}

impl Region {
    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.end - self.start
    }
}

#[cfg(feature = "serde")]
fn lossy<S: Serializer>(p: &Path, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&p.to_string_lossy())
}

/// A process's regions and threads.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(Serialize))]
pub struct Regions {
    /// Process id.
    pub pid: u32,
    /// The executable's path (empty for a kernel thread; serialized
    /// lossily).
    #[cfg_attr(feature = "serde", serde(serialize_with = "lossy"))]
    pub exe: PathBuf,
    /// Whether the process is a kernel thread: it runs only in the
    /// kernel's address space and has no user memory, so `regions` is
    /// empty.
    pub kernel_thread: bool,
    /// Thread ids and names (names that are not UTF-8 read lossily).
    pub threads: Vec<(u32, String)>,
    /// Every mapping, in address order.
    pub regions: Vec<Region>,
}

/// Reads the regions of process `pid`.
///
/// Errors: [`Error::NotFound`] when no such process exists,
/// [`Error::NotPermitted`] when this process may not read its memory map
/// (the error names the ptrace rule).
#[doc(alias = "/proc/pid/maps")]
pub fn regions(pid: u32) -> Result<Regions> {
    let base = format!("/proc/{pid}");
    let maps = fs::read(format!("{base}/maps")).map_err(|e| proc_error(e, pid))?;
    let exe = fs::read_link(format!("{base}/exe")).unwrap_or_default();
    let mut threads = Vec::new();
    let mut stack_pointers = Vec::new();
    if let Ok(dir) = fs::read_dir(format!("{base}/task")) {
        for entry in dir.flatten() {
            let Some(tid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let name = fs::read(format!("{base}/task/{tid}/comm"))
                .map(|s| String::from_utf8_lossy(&s).trim_end().to_string())
                .unwrap_or_default();
            if let Some(sp) = fs::read_to_string(format!("{base}/task/{tid}/syscall"))
                .ok()
                .and_then(|s| parse_syscall_sp(&s))
            {
                stack_pointers.push((tid, sp));
            }
            threads.push((tid, name));
        }
    }
    threads.sort();
    let mut regions = parse_maps(&maps, &exe);
    label_stacks(&mut regions, pid, &threads, &stack_pointers);
    Ok(Regions {
        pid,
        exe,
        kernel_thread: crate::sys::proc::is_kernel_thread(pid),
        threads,
        regions,
    })
}

/// Where Yama, when built in, says who may ptrace whom.
const PTRACE_SCOPE: &str = "/proc/sys/kernel/yama/ptrace_scope";

fn proc_error(e: io::Error, pid: u32) -> Error {
    match e.kind() {
        io::ErrorKind::NotFound => Error::NotFound {
            kind: "process",
            name: pid.to_string(),
        },
        io::ErrorKind::PermissionDenied => not_traceable(pid),
        _ => Error::io("read /proc", e),
    }
}

/// The error for a process whose memory map we may not read: the kernel
/// lets a process read another's `/proc/PID/maps` only with ptrace read
/// access (`PTRACE_MODE_READ_FSCREDS`, `ptrace(2)`): the same uid (real,
/// effective and saved) and a dumpable target, or `CAP_SYS_PTRACE`. Yama's
/// `ptrace_scope` restricts attaching only, so it is named as not the
/// cause.
fn not_traceable(pid: u32) -> Error {
    let name = fs::read(format!("/proc/{pid}/comm"))
        .map(|c| String::from_utf8_lossy(&c).trim_end().to_string())
        .unwrap_or_default();
    // /proc/PID belongs to the process's effective uid (to root when the
    // process is not dumpable).
    let owner = fs::metadata(format!("/proc/{pid}"))
        .map(|m| format!(", owned by uid {}", m.uid()))
        .unwrap_or_default();
    let scope = match fs::read_to_string(PTRACE_SCOPE) {
        Ok(v) => format!(
            "{PTRACE_SCOPE} = {} limits ptrace attach only, not this",
            v.trim()
        ),
        Err(_) => format!(
            "Yama's {PTRACE_SCOPE} is not present here (it would limit ptrace attach only, not \
             this)"
        ),
    };
    Error::NotPermitted {
        what: format!("reading the memory map of process {pid} ({name}{owner})"),
        rule: format!(
            "the kernel allows it with ptrace read access only: a process of your own uid \
             (you are uid {}) that is not made undumpable (as setuid programs are), or \
             CAP_SYS_PTRACE (run as root); {scope}",
            crate::sys::mem::euid()
        ),
    }
}

/// `/proc/PID/task/TID/syscall` holds "NR args… SP PC" while the thread is
/// in a system call, "running" otherwise; the stack pointer is the
/// second-to-last field.
fn parse_syscall_sp(s: &str) -> Option<u64> {
    let fields: Vec<&str> = s.split_whitespace().collect();
    if fields.len() < 3 {
        return None;
    }
    let sp = fields[fields.len() - 2];
    u64::from_str_radix(sp.strip_prefix("0x")?, 16).ok()
}

/// One line of `/proc/PID/maps`: "START-END PERMS OFFSET DEV INODE PATH".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MapsLine<'a> {
    pub start: u64,
    pub end: u64,
    pub perms: &'a str,
    /// The inode (for a System V segment, `/SYSVKEY`, its shmid).
    pub inode: u64,
    /// The path, as the kernel wrote it (spaces and all; not UTF-8
    /// perhaps), empty for an anonymous mapping.
    pub path: &'a [u8],
}

/// Parses one line of `/proc/PID/maps`.
pub(crate) fn parse_maps_line(line: &[u8]) -> Option<MapsLine<'_>> {
    let mut rest = line;
    let mut field = || -> Option<&[u8]> {
        let start = rest.iter().position(|&b| b != b' ')?;
        let len = rest[start..]
            .iter()
            .position(|&b| b == b' ')
            .unwrap_or(rest.len() - start);
        let f = &rest[start..start + len];
        rest = &rest[start + len..];
        Some(f)
    };
    fn text(f: &[u8]) -> Option<&str> {
        std::str::from_utf8(f).ok()
    }
    let range = text(field()?)?;
    let perms = text(field()?)?;
    let _offset = field()?;
    let _dev = field()?;
    let inode = text(field()?)?.parse().ok()?;
    let (a, b) = range.split_once('-')?;
    let skip = rest.iter().position(|&b| b != b' ').unwrap_or(rest.len());
    Some(MapsLine {
        start: u64::from_str_radix(a, 16).ok()?,
        end: u64::from_str_radix(b, 16).ok()?,
        perms,
        inode,
        path: &rest[skip..],
    })
}

/// Parses `/proc/PID/maps` and labels each line, except thread stacks.
fn parse_maps(maps: &[u8], exe: &Path) -> Vec<Region> {
    let exe = exe.as_os_str().as_bytes();
    let mut out: Vec<Region> = Vec::new();
    let mut after_exe = false;
    for line in maps.split(|&b| b == b'\n') {
        let Some(MapsLine {
            start,
            end,
            perms,
            path,
            ..
        }) = parse_maps_line(line)
        else {
            continue;
        };
        let shared = perms.as_bytes().get(3) == Some(&b's');
        let region = if !exe.is_empty() && path == exe {
            after_exe = true;
            if perms.contains('x') {
                RegionKind::Code
            } else if perms.contains('w') {
                RegionKind::Data
            } else {
                RegionKind::ReadOnlyData
            }
        } else if path.is_empty() && after_exe && perms.starts_with("rw") {
            // The anonymous mapping right after the program's data is bss.
            after_exe = false;
            RegionKind::Bss
        } else {
            after_exe = false;
            match path {
                b"[heap]" => RegionKind::Heap,
                b"[stack]" => RegionKind::Stack {
                    tid: 0,
                    name: String::new(),
                },
                p if p.starts_with(b"[vdso")
                    || p.starts_with(b"[vvar")
                    || p.starts_with(b"[vsyscall") =>
                {
                    RegionKind::Kernel
                }
                p if p.starts_with(b"/dev/shm/") || p.starts_with(b"/memfd:") || shared => {
                    RegionKind::SharedMemory
                }
                p if p.windows(3).any(|w| w == b".so") => RegionKind::SharedLibrary,
                b"" => RegionKind::Anonymous,
                _ => RegionKind::File,
            }
        };
        out.push(Region {
            start,
            end,
            perms: perms.to_string(),
            path: PathBuf::from(OsStr::from_bytes(path)),
            region,
        });
    }
    out
}

/// Finds each thread's stack: the mapping holding its stack pointer, or
/// `[stack]` for the main thread; a no-access page just below a thread
/// stack is its guard.
fn label_stacks(regions: &mut [Region], pid: u32, threads: &[(u32, String)], sps: &[(u32, u64)]) {
    let name_of = |tid: u32| {
        threads
            .iter()
            .find(|(t, _)| *t == tid)
            .map(|(_, n)| n.clone())
            .unwrap_or_default()
    };
    for r in regions.iter_mut() {
        if let RegionKind::Stack { tid, name } = &mut r.region {
            *tid = pid;
            *name = name_of(pid);
        }
    }
    for &(tid, sp) in sps {
        if let Some(i) = regions.iter().position(|r| r.start <= sp && sp < r.end)
            && matches!(
                regions[i].region,
                RegionKind::Anonymous | RegionKind::Stack { .. }
            )
        {
            regions[i].region = RegionKind::Stack {
                tid,
                name: name_of(tid),
            };
            if i > 0
                && regions[i - 1].end == regions[i].start
                && regions[i - 1].perms.starts_with("---")
            {
                regions[i - 1].region = RegionKind::StackGuard;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
55f1e7bbb000-55f1e7bbd000 r--p 00000000 fe:00 247030 /usr/bin/cat
55f1e7bbd000-55f1e7bc2000 r-xp 00002000 fe:00 247030 /usr/bin/cat
55f1e7bc6000-55f1e7bc7000 rw-p 0000a000 fe:00 247030 /usr/bin/cat
55f1e7bc7000-55f1e7bc8000 rw-p 00000000 00:00 0
55f21749d000-55f2174be000 rw-p 00000000 00:00 0 [heap]
7f0000000000-7f0000001000 ---p 00000000 00:00 0
7f0000001000-7f0000800000 rw-p 00000000 00:00 0
7f47c9b4e000-7f47c9b74000 r-xp 00000000 fe:00 326279 /usr/lib/x86_64-linux-gnu/libc.so.6
7f47c9d31000-7f47c9d38000 rw-s 00000000 00:01 5 /dev/shm/jobs (deleted)
7ffd38c5c000-7ffd38c7d000 rw-p 00000000 00:00 0 [stack]
7ffd38d00000-7ffd38d02000 r-xp 00000000 00:00 0 [vdso]
";

    #[test]
    fn labels_every_textbook_region() {
        let mut r = parse_maps(MAPS.as_bytes(), Path::new("/usr/bin/cat"));
        let threads = vec![(10, "main".to_string()), (11, "worker".to_string())];
        label_stacks(
            &mut r,
            10,
            &threads,
            &[(11, 0x7f0000400000), (10, 0x7ffd38c7c1d0)],
        );
        let kinds: Vec<String> = r.iter().map(|x| x.region.label()).collect();
        assert_eq!(
            kinds,
            [
                "rodata",
                "code",
                "data",
                "bss",
                "heap",
                "stack guard",
                "stack (thread 11 \"worker\")",
                "shared library",
                "shared memory",
                "stack (thread 10 \"main\")",
                "kernel (vdso)",
            ]
        );
    }

    #[test]
    fn paths_that_are_not_utf8_or_hold_spaces_are_kept_as_bytes() {
        let maps = b"55f1e7bbd000-55f1e7bc2000 r-xp 00002000 fe:00 247030     /tmp/a b\xff\xfe\n\
7f47c9d31000-7f47c9d38000 rw-s 00000000 00:01 32768                      /SYSV0000002a (deleted)\n\
7f47c9d38000-7f47c9d39000 rw-p 00000000 00:00 0 \n";
        let exe = Path::new(OsStr::from_bytes(b"/tmp/a b\xff\xfe"));
        let r = parse_maps(maps, exe);
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].path, exe);
        assert_eq!(r[0].region, RegionKind::Code);
        assert_eq!(r[1].region, RegionKind::SharedMemory);
        assert_eq!(r[2].path, Path::new(""));
        let line = parse_maps_line(maps.split(|&b| b == b'\n').nth(1).unwrap()).unwrap();
        assert_eq!(line.inode, 32768, "a System V segment's inode is its shmid");
        assert_eq!(line.path, b"/SYSV0000002a (deleted)");
        assert_eq!(parse_maps_line(b"garbage"), None);
        assert_eq!(parse_maps_line(b""), None);
    }

    #[test]
    fn syscall_line_gives_the_stack_pointer() {
        assert_eq!(
            parse_syscall_sp("230 0x0 0x0 0x7ffd 0x7ffe 0x0 0x0 0x7ffd38c7c1b8 0x7fb25a5c1503"),
            Some(0x7ffd38c7c1b8)
        );
        assert_eq!(parse_syscall_sp("running"), None);
    }

    #[test]
    fn own_process_has_code_heap_and_a_stack() {
        let r = regions(std::process::id()).unwrap();
        let has = |f: &dyn Fn(&RegionKind) -> bool| r.regions.iter().any(|x| f(&x.region));
        assert!(!r.kernel_thread);
        assert!(has(&|k| *k == RegionKind::Code));
        assert!(has(&|k| matches!(k, RegionKind::Stack { .. })));
        assert!(!r.threads.is_empty());
    }

    #[test]
    fn missing_process_is_not_found() {
        // pid_max is at most 2^22, so this pid cannot exist.
        assert!(matches!(regions(u32::MAX - 1), Err(Error::NotFound { .. })));
    }
}
