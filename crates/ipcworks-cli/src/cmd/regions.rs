//! `ipcworks regions [PID]`: a process's memory by the textbook's regions.

use std::process::ExitCode;

use ipcworks::process::{self, RegionKind};

/// Arguments of `ipcworks regions`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Each thread has its own stack; code, data, bss and heap are shared by \
all threads of the process. A forked child gets a copy of all of them.

A kernel thread has no user memory (it runs in the kernel's address space only): regions
says so. Another user's process can be read only with ptrace read access: the same uid, or
CAP_SYS_PTRACE (as root).

JSON (--json): one object:
  {\"pid\": 1234, \"exe\": \"/usr/bin/prog\",
   \"kernel_thread\": false,                           true: no regions, it has no user memory
   \"threads\": [[1234, \"prog\"], [1235, \"worker\"]],     [thread id, name] pairs
   \"regions\": [{\"start\": 94025..., \"end\": 94026...,   addresses as numbers, end exclusive
                \"perms\": \"r-xp\", \"path\": \"/usr/bin/prog\",  as in /proc/PID/maps (\"\" if anonymous)
                \"region\": {\"kind\": \"code\"}}, ...]}
  Paths (exe, path) that are not UTF-8 show U+FFFD for the bytes that are not.
  region.kind is one of code, read-only-data, data, bss, heap, stack, stack-guard,
  shared-memory, shared-library, kernel, anonymous, file; a stack also has
  \"tid\" and \"name\": {\"kind\": \"stack\", \"tid\": 1235, \"name\": \"worker\"}.

Examples:
  ipcworks regions                 # this command's own memory
  ipcworks regions $(pgrep -n sshd)
  ipcworks regions 1234 --json | jq '.regions[] | select(.region.kind == \"stack\")'"
)]
pub struct Args {
    /// Process id (default: ipcworks itself).
    pid: Option<u32>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Also list shared libraries and other file mappings one by one
    /// (by default they are summed up in one line each).
    #[arg(long)]
    all: bool,
}

/// Runs `ipcworks regions`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let pid = args.pid.unwrap_or_else(std::process::id);
    let r = match process::regions(pid) {
        Ok(r) => r,
        // It names the process and the rule already.
        Err(e @ ipcworks::Error::NotPermitted { .. }) => return Err(e.into()),
        Err(e) => {
            return Err(anyhow::Error::new(e)
                .context(format!("cannot read the memory map of process {pid}")));
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(ExitCode::SUCCESS);
    }
    if r.kernel_thread {
        let name = r.threads.first().map_or("", |(_, n)| n.as_str());
        println!(
            "process {pid} ({name}) is a kernel thread: it has no user memory (no code, data, \
             heap or stack of its own: it runs in the kernel's address space only)"
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "process {pid} ({}), {} thread(s)",
        r.exe.display(),
        r.threads.len()
    );
    println!(
        "{:<34} {:>10}  {:<4}  {:<28} path",
        "address range", "size", "perm", "region"
    );
    let mut libs = (0u64, 0usize);
    let mut files = (0u64, 0usize);
    for reg in &r.regions {
        let summed = match reg.region {
            RegionKind::SharedLibrary => Some(&mut libs),
            RegionKind::File | RegionKind::Kernel => Some(&mut files),
            _ => None,
        };
        if let (Some(acc), false) = (summed, args.all) {
            acc.0 += reg.size();
            acc.1 += 1;
            continue;
        }
        println!(
            "{:016x}-{:016x} {:>10}  {:<4}  {:<28} {}",
            reg.start,
            reg.end,
            human(reg.size()),
            reg.perms,
            reg.region.label(),
            reg.path.display()
        );
    }
    if !args.all {
        println!(
            "{:<34} {:>10}        shared libraries: {} mappings (--all lists them)",
            "",
            human(libs.0),
            libs.1
        );
        println!(
            "{:<34} {:>10}        other files and kernel pages: {} mappings",
            "",
            human(files.0),
            files.1
        );
    }
    let stacks = r
        .regions
        .iter()
        .filter(|x| matches!(x.region, RegionKind::Stack { .. }))
        .count();
    if stacks < r.threads.len() {
        println!(
            "note: {} of {} thread stacks found; a thread's stack is located by the stack pointer in /proc/{pid}/task/TID/syscall, which is readable only while the thread is blocked in a system call",
            stacks,
            r.threads.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn human(n: u64) -> String {
    const U: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}
