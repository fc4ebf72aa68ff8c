//! The `demo` and `regions` commands, run as a user would.

use std::process::Command;

fn ipcworks(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ipcworks"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn demo_memory_shows_threads_sharing_and_fork_copying() {
    let (code, out, err) = ipcworks(&["demo", "memory"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("main thread now reads GLOBAL = 21, heap = 120"),
        "{out}"
    );
    assert!(out.contains("GLOBAL = 999"), "{out}");
    assert!(
        out.contains("parent (pid") && out.contains("GLOBAL = 21, heap = 120 at the SAME"),
        "{out}"
    );
    assert!(out.contains("the parent reads 999"), "{out}");
}

#[test]
fn unknown_demo_is_one_clear_line() {
    let (code, _, err) = ipcworks(&["demo", "nope"]);
    assert_eq!(code, 1);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("ipcworks demo"), "{err}");
}

#[test]
fn regions_of_self_and_of_a_missing_process() {
    let (code, out, err) = ipcworks(&["regions"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("code") && out.contains("heap") && out.contains("stack (thread"),
        "{out}"
    );
    let (code, out, _) = ipcworks(&["regions", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["regions"].as_array().is_some_and(|r| !r.is_empty()));
    let (code, _, err) = ipcworks(&["regions", "4000000000"]);
    assert_eq!(code, 1);
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn demo_queue_reorders_by_priority_and_blocks_when_full() {
    let (code, out, err) = ipcworks(&["demo", "queue"]);
    assert_eq!(code, 0, "{err}");
    let recvs: Vec<&str> = out
        .lines()
        .filter(|l| l.trim_start().starts_with("recv"))
        .collect();
    assert!(
        recvs[0].contains("urgent ") && recvs[1].contains("urgent too"),
        "{out}"
    );
    assert!(
        recvs[2].contains("normal") && recvs[3].contains("low"),
        "{out}"
    );
    assert!(out.contains("job 5 sent after waiting"), "{out}");
    assert!(
        out.contains(r#"["job 2", "job 3", "job 4", "job 5"]"#),
        "{out}"
    );
    let name = out
        .split_whitespace()
        .find(|w| w.starts_with("/ipcworks-demo-queue-"))
        .unwrap();
    assert!(!std::path::Path::new(&format!("/dev/mqueue{name}")).exists());
}

#[test]
fn demo_queue_interrupted_by_ctrl_c_leaves_nothing() {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_ipcworks"))
        .args(["demo", "queue"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let name = first
        .split_whitespace()
        .find(|w| w.starts_with("/ipcworks-demo-queue-"))
        .unwrap()
        .to_string();
    // Wait until the sender is blocked on the full queue, then interrupt.
    for l in lines.by_ref() {
        if l.unwrap().contains("blocking in mq_send") {
            break;
        }
    }
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
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
    // The queue is gone: opening it by name fails.
    let e = ipcworks::mq::posix::Queue::open(&name).unwrap_err();
    assert!(matches!(e, ipcworks::Error::NotFound { .. }), "{e}");
}

#[test]
fn demo_race_mutex_counts_are_exact() {
    let (code, out, err) = ipcworks(&["demo", "race"]);
    assert_eq!(code, 0, "{err}");
    let counts: Vec<(String, u64, u64)> = out
        .lines()
        .filter_map(|l| {
            let (what, rest) = l.trim().split_once(": counter = ")?;
            let mut it = rest.split_whitespace();
            let got = it.next()?.parse().ok()?;
            let want = it.nth(1)?.parse().ok()?;
            Some((what.to_string(), got, want))
        })
        .collect();
    assert_eq!(counts.len(), 4, "{out}");
    let most: u64 = out
        .split("turns: at most ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("semaphore step printed");
    assert!(
        (1..=2).contains(&most),
        "a semaphore of 2 let {most} in: {out}"
    );
    for (what, got, want) in counts {
        if what.contains("mutex") {
            assert_eq!(got, want, "{what}: {out}");
        } else {
            assert!(got <= want, "{what}: {out}");
        }
    }
}

#[test]
fn demo_shm_mutex_prevents_torn_reads_and_cleans_up() {
    let (code, out, err) = ipcworks(&["demo", "shm"]);
    assert_eq!(code, 0, "{err}");
    let torn: Vec<(u64, u64)> = out
        .lines()
        .filter_map(|l| {
            let rest = l
                .split_once("): ")
                .map(|x| x.1)
                .or_else(|| l.split_once("reader: ").map(|x| x.1))?;
            let mut it = rest.split_whitespace();
            let t = it.next()?.parse().ok()?;
            let n = it.nth(1)?.parse().ok()?;
            Some((t, n))
        })
        .collect();
    assert_eq!(torn.len(), 2, "{out}");
    assert!(torn[0].0 <= torn[0].1, "{out}");
    assert_eq!(torn[1].0, 0, "with the mutex no read is torn: {out}");
    assert!(torn[1].1 > 0, "{out}");
    let pid_name = out
        .split_whitespace()
        .find(|w| w.starts_with("/dev/shm/ipcworks-demo-shm-"))
        .unwrap();
    assert!(
        !std::path::Path::new(pid_name.trim_end_matches(';')).exists(),
        "{out}"
    );
}

#[test]
fn demo_mutex_recovers_from_a_killed_holder() {
    let (code, out, err) = ipcworks(&["demo", "mutex"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("OwnerDead after") && out.contains("[70, 0], sum 70"),
        "{out}"
    );
    assert!(
        out.contains("repaired to [70, 30]") && out.contains("next lock(): Ok"),
        "{out}"
    );
    assert!(out.contains("is not recoverable"), "{out}");
    let name = out
        .split_whitespace()
        .find(|w| w.starts_with("ipcworks-demo-mutex-"))
        .unwrap();
    assert!(!std::path::Path::new(&format!("/dev/shm/ipcworks.mutex.{name}")).exists());
    assert!(!std::path::Path::new(&format!("/dev/shm/ipcworks.mutex.{name}-b")).exists());
}

#[test]
fn demo_semaphore_gets_a_killed_workers_permit_back() {
    let (code, out, err) = ipcworks(&["demo", "semaphore"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("the producer's post() let it through"),
        "{out}"
    );
    assert!(out.contains("value 1 while the worker holds one"), "{out}");
    assert!(
        out.contains("1 permit(s) of dead holders given back; value 2"),
        "{out}"
    );
    let name = out
        .split_whitespace()
        .find(|w| w.starts_with("ipcworks-demo-sem-"))
        .unwrap();
    assert!(!std::path::Path::new(&format!("/dev/shm/ipcworks.sem.{name}")).exists());
}

#[test]
fn a_closed_stdout_ends_quietly_like_cat() {
    // Our stdout is a pipe nobody reads: the first write gets EPIPE.
    let (r, w) = ipcworks::pipe::pipe().unwrap();
    drop(r);
    let out = Command::new(env!("CARGO_BIN_EXE_ipcworks"))
        .args(["regions"])
        .stdout(w)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
