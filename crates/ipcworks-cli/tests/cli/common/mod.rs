//! Helpers shared by the CLI tests that read `ipcworks ls --json` and the
//! util-linux tools beside it (`ipcs`, `ipcmk`, `ipcrm`).

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use serde_json::Value;

/// The `kind` values `ls --help` documents.
pub const KINDS: &[&str] = &[
    "segment",
    "mutex",
    "semaphore",
    "channel",
    "queue",
    "posix-semaphore",
    "posix-queue",
    "sysv-queue",
    "sysv-segment",
    "sysv-semaphore",
    "fifo",
    "unix-socket",
];

/// The keys every element of `ls --json` has, whatever its kind.
pub const KEYS: &[&str] = &[
    "kind",
    "address",
    "path",
    "bytes",
    "messages",
    "semaphores",
    "attached",
    "pending_removal",
    "id",
    "uid",
    "creator_uid",
    "mode",
    "creator",
    "users",
];

/// Checks one `ls --json` element against the shape `ls --help` documents:
/// every key present, each of its documented type or null.
pub fn check_shape(o: &Value) {
    let keys: BTreeSet<&str> = o
        .as_object()
        .expect("an object")
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(keys, KEYS.iter().copied().collect(), "{o}");
    assert!(KINDS.contains(&o["kind"].as_str().unwrap()), "{o}");
    assert!(o["address"].as_str().unwrap().contains(':'), "{o}");
    assert!(o["path"].is_null() || o["path"].is_string(), "{o}");
    for k in [
        "bytes",
        "messages",
        "semaphores",
        "attached",
        "id",
        "creator_uid",
    ] {
        assert!(o[k].is_null() || o[k].is_u64(), "{k}: {o}");
    }
    assert!(
        o["pending_removal"].is_null() || o["pending_removal"].is_boolean(),
        "{o}"
    );
    assert!(o["uid"].is_u64() && o["mode"].is_u64(), "{o}");
    let c = &o["creator"];
    assert!(
        c.is_null()
            || (c["pid"].is_u64() && c["alive"].is_boolean() && c["persistent"].is_boolean()),
        "{o}"
    );
    assert!(
        o["users"].as_array().unwrap().iter().all(Value::is_u64),
        "{o}"
    );
}

/// Runs a command to completion: (exit code, stdout, stderr).
pub fn output(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `ipcmk ARGS` (as `uid`, when given): the id it printed ("Shared memory
/// id: 5").
pub fn ipcmk(args: &[&str], uid: Option<u32>) -> u64 {
    use std::os::unix::process::CommandExt;
    let mut c = Command::new("ipcmk");
    c.args(args);
    if let Some(u) = uid {
        c.uid(u).gid(u);
    }
    let (code, out, err) = output(&mut c);
    assert_eq!(code, 0, "ipcmk {args:?}: {err}");
    out.split_whitespace()
        .last()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("ipcmk said {out:?}"))
}

/// The row of `ipcs FLAG` (`-m`, `-s` or `-q`) whose id (second column) is
/// `id`, split in columns; `None` when ipcs does not list it.
pub fn ipcs_row(flag: &str, id: u64) -> Option<Vec<String>> {
    let (code, out, err) = output(Command::new("ipcs").arg(flag));
    assert_eq!(code, 0, "ipcs {flag}: {err}");
    out.lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .find(|f| f.len() >= 2 && f[0].starts_with("0x") && f[1] == id.to_string())
}

/// Whether `ipcs FLAG` lists an object under `key` (as ipcs prints it,
/// `0x0000abcd`).
pub fn ipcs_has_key(flag: &str, key: &str) -> bool {
    let (_, out, _) = output(Command::new("ipcs").arg(flag));
    out.lines()
        .any(|l| l.split_whitespace().next() == Some(key))
}

/// The `name=value` pairs of `ipcs FLAG -i ID` (uid, cuid, mode, nsems …).
pub fn ipcs_info(flag: &str, id: u64) -> std::collections::HashMap<String, String> {
    let (code, out, err) = output(Command::new("ipcs").args([flag, "-i", &id.to_string()]));
    assert_eq!(code, 0, "ipcs {flag} -i {id}: {err}");
    // "nsems = 3" and "mode=0600, access_perms=0600" alike.
    out.replace(" = ", "=")
        .replace(',', " ")
        .split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The key as `ls` prints it in an address (`0x2a`) from ipcs' `0x0000002a`.
pub fn short_key(ipcs_key: &str) -> String {
    let k = u32::from_str_radix(ipcs_key.trim_start_matches("0x"), 16).unwrap();
    format!("{k:#x}")
}

/// System V objects removed with `ipcrm` on drop, also when a test fails:
/// (`ipcrm` flag `-m`/`-s`/`-q`, id).
#[derive(Default)]
pub struct SysvCleanup(pub Vec<(&'static str, u64)>);

impl Drop for SysvCleanup {
    fn drop(&mut self) {
        for (flag, id) in &self.0 {
            let _ = Command::new("ipcrm")
                .args([*flag, &id.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The element of an `ls --json` array whose `address` is `address`.
pub fn by_address<'a>(objs: &'a [Value], address: &str) -> &'a Value {
    objs.iter()
        .find(|o| o["address"] == address)
        .unwrap_or_else(|| panic!("{address} not in {objs:#?}"))
}

/// The element of kind `kind` with System V id `id`, if listed.
pub fn by_id<'a>(objs: &'a [Value], kind: &str, id: u64) -> Option<&'a Value> {
    objs.iter()
        .find(|o| o["kind"] == kind && o["id"].as_u64() == Some(id))
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
