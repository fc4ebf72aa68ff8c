//! `ipcworks bench` as a user runs it: a short real run that writes the
//! report, and `--compare` with its exit code.

use std::path::PathBuf;
use std::process::Command;

fn ipcworks() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ipcworks"))
}

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../ipcworks-bench/tests/data")
        .join(name)
}

#[test]
fn short_run_writes_json_and_html() {
    let out = std::env::temp_dir().join(format!("ipcworks-bench-cli-{}", std::process::id()));
    let o = ipcworks()
        .args([
            "bench",
            "--only",
            "pipe,unix",
            "--sizes",
            "4K",
            "--time",
            "0.5",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout.contains("Round trip") && stdout.contains("pipe") && stdout.contains("x floor"),
        "{stdout}"
    );
    assert!(stdout.contains("results.json") && stdout.contains("index.html"));
    let json = std::fs::read_to_string(out.join("results.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["schema_version"], 1);
    assert!(
        v["figures"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["mechanism"] == "unix" && f["wait"] == "poll")
    );
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("class=\"mark\""));
    // Not a terminal: no progress bar drawn on stderr.
    assert!(!String::from_utf8_lossy(&o.stderr).contains('\u{1b}'));
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn compare_exits_non_zero_only_when_asked() {
    let run = |extra: &[&str]| {
        ipcworks()
            .args(["bench", "--compare"])
            .arg(data("old.json"))
            .arg(data("new.json"))
            .args(extra)
            .output()
            .unwrap()
    };
    let o = run(&[]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("REGRESSION"));
    let o = run(&["--fail-over", "20"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("worse by more than 20%"));
    let o = run(&["--fail-over", "60"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
}

#[test]
fn bad_arguments_are_refused_clearly() {
    let o = ipcworks()
        .args(["bench", "--only", "pigeon"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown mechanism \"pigeon\""));
    let o = ipcworks().args(["bench", "--sizes", "3"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let o = ipcworks()
        .args(["bench", "--placement", "moon"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("cross, same or none"));
    for rounds in ["0", "21"] {
        let o = ipcworks()
            .args(["bench", "--rounds", rounds])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&o.stderr)
                .contains(&format!("--rounds {rounds}: expected 1 to 20")),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let o = ipcworks()
        .args([
            "bench",
            "--compare",
            "/nonexistent/a.json",
            "/nonexistent/b.json",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/a.json"));
}

#[test]
fn compare_reads_what_main_wrote_and_help_explains_the_new_rows() {
    // A results.json written by main before fan-in, clients and the loan
    // curve: read and compared (with itself: no change).
    let main = data("main-post19.json");
    let o = ipcworks()
        .args(["bench", "--compare"])
        .arg(&main)
        .arg(&main)
        .args(["--fail-over", "0"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout.contains("shm-spin rtt poll 64 B") && stdout.contains("0 worse"),
        "{stdout}"
    );
    // A bad round-trip size is refused before anything runs.
    let o = ipcworks()
        .args(["bench", "--rtt-sizes", "3"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("size \"3\""));
    let o = ipcworks().args(["bench", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&o.stdout);
    for word in [
        "shm-loan",
        "x bare",
        "--rtt-sizes",
        "--fan-in",
        "--clients",
        "--full",
        "iceoryx2-loan",
    ] {
        assert!(help.contains(word), "--help lacks {word}:\n{help}");
    }
}
