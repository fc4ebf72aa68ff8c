//! `ipcworks regions` and `ls` on processes that are not like ours: one
//! whose memory map holds a path that is not UTF-8, a kernel thread (no
//! user memory at all), and one we may not trace.

use crate::common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{Kill, Registry, RemoveFile, by_address, output};
use ipcworks_test_support::{need, require};
use serde_json::Value;

/// A directory of the test's own under cargo's temporary directory (beside
/// the binary, so a hard link to it works), removed on drop.
struct TmpDir(PathBuf);

impl TmpDir {
    fn new(tag: &str) -> TmpDir {
        let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("ipcworks-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TmpDir(d)
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Maps the shared memory file argv[1] and closes its descriptor (so only
/// /proc/PID/maps tells that it uses it), says "ready", waits for stdin to
/// close.
const MAPPER_C: &str = r#"
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int fd = open(argv[1], O_RDWR);
    if (fd < 0) { perror("open"); return 1; }
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) { perror("mmap"); return 1; }
    close(fd);
    printf("ready\n");
    fflush(stdout);
    char c;
    while (read(0, &c, 1) > 0) {}
    return 0;
}
"#;

#[test]
fn a_process_mapping_a_non_utf8_path_has_regions_and_is_listed_as_a_user() {
    require!(need::CC);
    let reg = Registry::new("non-utf8");
    let dir = TmpDir::new("non-utf8");
    // The program under a name that is not UTF-8: the process runs it, so
    // /proc/PID/maps and /proc/PID/exe hold that name.
    let src = dir.0.join("mapper.c");
    std::fs::write(&src, MAPPER_C).unwrap();
    let exe = dir.0.join(OsStr::from_bytes(b"mapper-\xff\xfe"));
    let (code, _, err) = output(Command::new("cc").arg("-o").arg(&exe).arg(&src));
    assert_eq!(code, 0, "cc: {err}");
    let seg = format!("ipcworks-test-non-utf8-{}", std::process::id());
    let seg_path = format!("/dev/shm/{seg}");
    let _clean = RemoveFile(seg_path.clone());
    std::fs::write(&seg_path, [0u8; 4096]).unwrap();
    let mut child = Kill(
        Command::new(&exe)
            .arg(&seg_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let pid = child.0.id();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.0.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line, "ready\n");
    let lossy = "mapper-\u{fffd}\u{fffd}";

    let (code, out, err) = reg.run(&["regions", &pid.to_string()]);
    assert_eq!(code, 0, "regions of a process with a non-UTF-8 path: {err}");
    assert!(out.contains(lossy) && out.contains("code"), "{out}");
    let (code, out, err) = reg.run(&["regions", &pid.to_string(), "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(v["exe"].as_str().unwrap().ends_with(lossy), "{}", v["exe"]);
    let regions = v["regions"].as_array().unwrap();
    let has = |kind: &str, path_end: &str| {
        regions
            .iter()
            .any(|r| r["region"]["kind"] == kind && r["path"].as_str().unwrap().ends_with(path_end))
    };
    assert!(
        has("code", lossy),
        "the program's code under its lossy name: {v}"
    );
    assert!(has("shared-memory", &seg), "{v}");

    let all = reg.json(&["ls", "--json"]);
    let o = by_address(&all, &format!("segment:{seg}"));
    assert_eq!(
        o["users"],
        serde_json::json!([pid]),
        "ls finds the process in /proc/PID/maps: {o}"
    );
    drop(child.0.stdin.take());
    assert!(child.0.wait().unwrap().success());
}

#[test]
fn regions_of_a_kernel_thread_says_it_has_no_user_memory() {
    require!(need::KERNEL_THREAD);
    let pid = ipcworks_test_support::kernel_thread().unwrap().to_string();
    let reg = Registry::new("kthread");
    let (code, out, err) = reg.run(&["regions", &pid]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("kernel thread") && out.contains("no user memory"),
        "{out}"
    );
    let (code, out, err) = reg.run(&["regions", &pid, "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["kernel_thread"], true, "{v}");
    assert_eq!(v["regions"], serde_json::json!([]), "{v}");
    // Our own process is not one.
    let v: Value = serde_json::from_str(&reg.run(&["regions", "--json"]).1).unwrap();
    assert_eq!(v["kernel_thread"], false);
}

#[test]
fn regions_of_a_process_we_may_not_trace_names_the_ptrace_rule() {
    require!(need::ROOT);
    // A process of root's, looked at by nobody.
    let sleeper = Kill(
        Command::new("sleep")
            .arg("60")
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (code, out, err) = output(
        Command::new(env!("CARGO_BIN_EXE_ipcworks"))
            .args(["regions", &sleeper.0.id().to_string()])
            .current_dir("/")
            .uid(65534)
            .gid(65534),
    );
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    for part in ["ptrace", "uid", "CAP_SYS_PTRACE", "ptrace_scope"] {
        assert!(err.contains(part), "{part} not in: {err}");
    }
    assert!(!err.contains("check its owner and mode"), "{err}");
}
