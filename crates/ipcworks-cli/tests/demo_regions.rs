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
