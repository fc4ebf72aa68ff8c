//! `ipcworks demo message|pipe|socket`, run as a user would: each runs to
//! completion, shows its key facts, and leaves nothing behind (also when
//! interrupted with SIGINT).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A fresh private registry directory (0700), removed on drop.
struct Registry(PathBuf);

impl Registry {
    fn new(what: &str) -> Registry {
        use std::os::unix::fs::DirBuilderExt;
        let p =
            std::env::temp_dir().join(format!("ipcworks-test-demos-{what}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::DirBuilder::new().mode(0o700).create(&p).unwrap();
        Registry(p)
    }

    fn entries(&self) -> Vec<String> {
        std::fs::read_dir(&self.0)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn demo(topic: &str, reg: &Registry) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ipcworks"));
    c.args(["demo", topic]).env("IPCWORKS_REGISTRY", &reg.0);
    c
}

/// Runs a demo to completion; returns (its pid, stdout).
fn run_demo(topic: &str, reg: &Registry) -> (u32, String) {
    let child = demo(topic, reg)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{topic}: {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    (pid, stdout)
}

/// Files a demo with this pid may have made: in /tmp, /dev/shm, and the
/// private directories socket binding uses (`.iw<hex pid>.N`).
fn leftovers(pid: u32, reg: &Registry) -> Vec<String> {
    let mut found = Vec::new();
    let tag = format!("-{pid}");
    let hidden = format!(".iw{pid:x}.");
    for dir in ["/tmp", "/dev/shm"] {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if (n.contains("ipcworks-demo") && n.contains(&tag)) || n.starts_with(&hidden) {
                found.push(format!("{dir}/{n}"));
            }
        }
    }
    found.extend(reg.entries().into_iter().map(|e| format!("registry: {e}")));
    found
}

/// The number after `key` in `line`.
fn num_after(line: &str, key: &str) -> Option<u32> {
    let rest = line.split_once(key)?.1;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn find_num(out: &str, key: &str) -> u32 {
    out.lines()
        .find_map(|l| num_after(l, key))
        .unwrap_or_else(|| panic!("no {key:?} in:\n{out}"))
}

#[test]
fn demo_message_keeps_boundaries_knows_the_peer_and_passes_an_fd() {
    let reg = Registry::new("message");
    let (pid, out) = run_demo("message", &reg);
    // Datagrams: three recv() calls, the three messages as sent.
    for (i, w) in ["one", "two", "three"].iter().enumerate() {
        let want = format!("datagram recv() #{} -> {} bytes \"{w}\"", i + 1, w.len());
        assert!(out.contains(&want), "{want}\n{out}");
    }
    // The stream glued them.
    assert!(
        out.contains("stream recv() #1 -> 11 bytes \"onetwothree\""),
        "{out}"
    );
    // SO_PEERCRED names the very child that was forked.
    let child = find_num(&out, "forked child pid ");
    let cred = find_num(&out, "SO_PEERCRED says the peer is pid ");
    assert_eq!(cred, child, "{out}");
    assert!(
        out.contains(&format!("child {child}: socket() + connect(")),
        "{out}"
    );
    // The passed descriptor worked in the child.
    let passed = format!("passed fd worked: read \\\"written by {pid} into the pipe\\\"");
    assert!(out.contains(&passed), "{passed}\n{out}");
    assert_eq!(leftovers(pid, &reg), Vec::<String>::new(), "{out}");
}

#[test]
fn demo_pipe_is_half_duplex_then_full_duplex_then_a_fifo() {
    let reg = Registry::new("pipe");
    let (pid, out) = run_demo("pipe", &reg);
    let r_fd = find_num(&out, "pipe() -> fd ");
    let line = out
        .lines()
        .find(|l| l.contains("write() back on fd"))
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(num_after(line, "write() back on fd "), Some(r_fd), "{out}");
    assert!(
        line.contains("EBADF") && line.contains("the reader cannot write back"),
        "{out}"
    );
    assert!(out.contains("read \"hello child\" from fd"), "{out}");
    // Both directions.
    let child = find_num(&out, "received \"pong from ");
    assert!(
        out.contains(&format!(
            "child {child}: sent \"pong from {child}\", received \"ping from {pid}\""
        )),
        "{out}"
    );
    // The FIFO: what arrived came from the exec'd sh, by pid.
    let sh = find_num(&out, "sh (pid ");
    assert!(
        out.contains(&format!("read \"hello from sh, pid {sh},")),
        "{out}"
    );
    assert!(out.contains("(exists now: false)"), "{out}");
    assert_eq!(leftovers(pid, &reg), Vec::<String>::new(), "{out}");
}

#[test]
fn demo_socket_gives_each_client_a_new_socket() {
    let reg = Registry::new("socket");
    let (pid, out) = run_demo("socket", &reg);
    let lfd = find_num(&out, "socket(AF_INET, SOCK_STREAM) -> fd ");
    let accepted: Vec<u32> = out
        .lines()
        .filter_map(|l| num_after(l, "-> new socket fd "))
        .collect();
    assert_eq!(accepted.len(), 2, "{out}");
    assert_ne!(accepted[0], accepted[1], "{out}");
    assert!(!accepted.contains(&lfd), "{out}");
    for l in out.lines().filter(|l| l.contains("-> new socket fd ")) {
        assert!(l.contains(&format!("accept(fd {lfd})")), "{out}");
    }
    // Each client connected, and was served on its own accepted socket.
    for i in 1..=2 {
        assert!(out.contains(&format!("client {i} (pid ")), "{out}");
    }
    let mut served: Vec<u32> = out
        .lines()
        .filter(|l| l.contains("client ") && l.contains("recv(fd"))
        .filter_map(|l| num_after(l, "served on my fd "))
        .collect();
    served.sort();
    let mut want = accepted.clone();
    want.sort();
    assert_eq!(served, want, "{out}");
    assert!(out.contains(&format!("server: close(fd {lfd})")), "{out}");
    assert_eq!(leftovers(pid, &reg), Vec::<String>::new(), "{out}");
}

#[test]
fn demo_pipe_interrupted_by_ctrl_c_leaves_nothing() {
    let reg = Registry::new("pipe-int");
    let mut child = demo("pipe", &reg).stdout(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let fifo = format!("/tmp/ipcworks-demo-pipe-{pid}.fifo");
    // Interrupt while the FIFO exists and the reader waits for sh.
    let mut sh = None;
    for l in lines.by_ref() {
        let l = l.unwrap();
        if let Some(p) = num_after(&l, "by exec: sh (pid ") {
            sh = Some(p);
            break;
        }
    }
    let sh = sh.expect("the demo reached the FIFO step");
    assert!(Path::new(&fifo).exists(), "the FIFO exists before Ctrl-C");
    assert_eq!(reg.entries().len(), 1, "the FIFO is in the registry");
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid as i32).unwrap(),
        rustix::process::Signal::INT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    // It cleaned up, then died of the signal itself, as Ctrl-C should end
    // a program (the shell shows status 130).
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(2),
        "{status:?}"
    );
    assert!(!Path::new(&fifo).exists(), "the FIFO was removed");
    assert_eq!(leftovers(pid, &reg), Vec::<String>::new());
    // The writer died with the demo (PR_SET_PDEATHSIG); it was not ours
    // to reap, so wait until it is gone from /proc (or a zombie of init).
    let gone = (0..200).any(|_| {
        let stat = std::fs::read_to_string(format!("/proc/{sh}/stat")).unwrap_or_default();
        if stat.is_empty() || stat.contains(") Z ") {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        false
    });
    assert!(gone, "sh {sh} outlived the interrupted demo");
}

#[test]
fn the_new_topics_are_listed() {
    let out = Command::new(env!("CARGO_BIN_EXE_ipcworks"))
        .arg("demo")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for t in ["message", "pipe", "socket"] {
        assert!(
            text.lines().any(|l| l.trim_start().starts_with(t)),
            "{t} missing:\n{text}"
        );
    }
}

/// The demos' children are this program started again as `ipcworks
/// demo-child …`: an internal subcommand, absent from `--help` and from
/// the completion scripts, which fails cleanly when run by hand.
#[test]
fn the_demo_child_subcommand_is_hidden() {
    let bin = env!("CARGO_BIN_EXE_ipcworks");
    let help = Command::new(bin).arg("--help").output().unwrap();
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(!help.contains("demo-child"), "{help}");
    let bash = Command::new(bin)
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(bash.status.success());
    assert!(!String::from_utf8_lossy(&bash.stdout).contains("demo-child"));
    // By hand, with no parent handing it anything: one error line, exit 1.
    let out = Command::new(bin)
        .args(["demo-child", "memory", "write-999"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
}
