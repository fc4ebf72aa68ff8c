//! Helpers shared by the CLI tests: commands run to completion, a private
//! registry, children and files removed on drop.

#![allow(dead_code)]

use std::process::{Command, Stdio};

use serde_json::Value;

/// Runs a command to completion: (exit code, stdout, stderr).
pub fn output(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A private registry directory for the ipcworks commands a test runs
/// (`IPCWORKS_REGISTRY`), removed on drop.
pub struct Registry(pub std::path::PathBuf);

impl Registry {
    /// A fresh one; `tag` keeps the directories of tests running at once
    /// apart.
    pub fn new(tag: &str) -> Registry {
        use std::os::unix::fs::DirBuilderExt;
        let dir =
            std::env::temp_dir().join(format!("ipcworks-test-reg-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
        Registry(dir)
    }

    /// `ipcworks ARGS` with this registry.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ipcworks"));
        c.args(args).env("IPCWORKS_REGISTRY", &self.0);
        c
    }

    /// Runs `ipcworks ARGS` to completion: (exit code, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        output(&mut self.cmd(args))
    }

    /// `ipcworks ARGS` (an `ls … --json`), which must succeed: its array.
    pub fn json(&self, args: &[&str]) -> Vec<Value> {
        let (code, out, err) = self.run(args);
        assert_eq!(code, 0, "{args:?}: {err}");
        let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        v.as_array().expect("ls --json prints an array").clone()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed and reaped on drop, also when a test fails.
pub struct Kill(pub std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `cond` every 20 ms until it holds; panics after 20 s (generous:
/// catches hangs, not slowness).
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A file removed on drop, also when a test fails.
pub struct RemoveFile(pub String);

impl Drop for RemoveFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
