//! `ipcworks ls --stale` and `rm --stale` after real ipcworks processes were
//! killed with SIGKILL: exactly their non-persistent objects are stale and
//! removed; a persistent mutex, a live process's FIFO and a foreign
//! /dev/shm file are left alone. Also the documented `--json` shapes.

use std::collections::BTreeSet;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{by_address, check_shape};
use ipcworks_test_support::{have_part, need, require};
use serde_json::Value;

use crate::common;

/// Everything the test made, removed on drop (also when an assertion
/// fails): the process groups it started, killed with SIGKILL and reaped,
/// the files, and the private directories.
struct Scene {
    registry: PathBuf,
    files: PathBuf,
    children: Vec<Child>,
    shm: Vec<PathBuf>,
    mq: Vec<String>,
    sysv: Vec<i32>,
}

impl Scene {
    /// `tag` keeps the directories of tests running at once apart.
    fn new(tag: &str) -> Scene {
        let base = std::env::temp_dir();
        let pid = std::process::id();
        let registry = base.join(format!("ipcworks-test-stale-reg-{tag}-{pid}"));
        let files = base.join(format!("ipcworks-test-stale-files-{tag}-{pid}"));
        for d in [&registry, &files] {
            let _ = std::fs::remove_dir_all(d);
            std::fs::DirBuilder::new().mode(0o700).create(d).unwrap();
        }
        Scene {
            registry,
            files,
            children: Vec::new(),
            shm: Vec::new(),
            mq: Vec::new(),
            sysv: Vec::new(),
        }
    }

    /// An ipcworks command with the private registry.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ipcworks"));
        c.args(args).env("IPCWORKS_REGISTRY", &self.registry);
        c
    }

    /// Starts a long-running ipcworks in its own process group; returns
    /// its index in `children`.
    fn start(&mut self, args: &[&str]) -> usize {
        let child = self
            .cmd(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        self.children.push(child);
        self.children.len() - 1
    }

    /// SIGKILL to the whole process group of child `i`, then reap it.
    fn kill9(&mut self, i: usize) {
        let c = &mut self.children[i];
        let _ = rustix::process::kill_process_group(
            rustix::process::Pid::from_raw(c.id() as i32).unwrap(),
            rustix::process::Signal::KILL,
        );
        let _ = c.wait();
    }

    /// Runs an ipcworks command to completion: (exit code, stdout, stderr).
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.cmd(args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn json(&self, args: &[&str]) -> Vec<Value> {
        let (code, out, err) = self.run(args);
        assert_eq!(code, 0, "{args:?}: {err}");
        let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        v.as_array().expect("ls --json prints an array").clone()
    }

    fn registry_len(&self) -> usize {
        std::fs::read_dir(&self.registry).unwrap().count()
    }
}

impl Drop for Scene {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill9(i);
        }
        for p in &self.shm {
            let _ = std::fs::remove_file(p);
        }
        for n in &self.mq {
            let _ = ipcworks::mq::posix::Queue::remove(n);
        }
        for k in &self.sysv {
            let _ = ipcworks::mq::sysv::Queue::remove_key(*k);
        }
        let _ = std::fs::remove_dir_all(&self.files);
        let _ = std::fs::remove_dir_all(&self.registry);
    }
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn addresses(objs: &[Value]) -> BTreeSet<String> {
    objs.iter()
        .map(|o| o["address"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn stale_objects_of_killed_processes_are_found_and_removed_exactly() {
    // Without /dev/mqueue mounted everything runs but the look at the POSIX
    // queue through `ls`.
    let mq_listed = have_part("ls lists the POSIX queue", &[need::MQUEUE]);
    let mut s = Scene::new("kinds");
    let pid = std::process::id();
    let f = |n: &str| s.files.join(n).to_string_lossy().into_owned();
    let (fifo, sock, served, live) = (
        f("dead.fifo"),
        f("dead.sock"),
        f("served.sock"),
        f("live.fifo"),
    );
    let lock = format!("ipcworks-test-stale-lock-{pid}");
    let lock_file = PathBuf::from(format!("/dev/shm/ipcworks.mutex.{lock}"));
    let foreign = PathBuf::from(format!("/dev/shm/ipcworks-test-stale-foreign-{pid}"));
    // A shared-memory channel: its receiver creates it and would remove it.
    let chan = format!("ipcworks-test-stale-chan-{pid}");
    let chan_file = PathBuf::from(format!("/dev/shm/ipcworks.chan.{chan}"));
    s.shm.push(chan_file.clone());
    s.shm.push(lock_file.clone());
    s.shm.push(foreign.clone());
    // Endpoint queues are mailboxes, persistent by design: not stale either.
    let mq = format!("ipcworks-test-stale-mq-{pid}");
    let key = 0x7e00_0000 | (pid as i32 & 0x00ff_ffff);
    s.mq.push(mq.clone());
    s.sysv.push(key);

    // A foreign object: made with plain std::fs, no registry entry.
    std::fs::write(&foreign, b"not ipcworks'").unwrap();

    let doomed = [
        s.start(&["recv", &format!("fifo:{fifo}")]),
        s.start(&["recv", &format!("unix:{sock}")]),
        s.start(&["serve", &format!("unix:{served}")]),
        s.start(&["lock", &lock, "--", "sleep", "60"]),
        s.start(&["recv", &format!("mq:{mq}"), "--create"]),
        s.start(&["recv", &format!("sysv:{key}"), "--create"]),
        s.start(&["recv", &format!("shm:{chan}")]),
    ];
    let live_recv = s.start(&["recv", &format!("fifo:{live}")]);
    wait_until("every object and its registry entry", || {
        [&fifo, &sock, &served, &live]
            .iter()
            .all(|p| Path::new(p).exists())
            && lock_file.exists()
            && chan_file.exists()
            && s.registry_len() == 8
    });
    // While everyone lives, nothing is stale.
    assert_eq!(s.json(&["ls", "--stale", "--json"]), Vec::<Value>::new());

    for i in doomed {
        s.kill9(i);
    }

    let stale = s.json(&["ls", "--stale", "--json"]);
    let want: BTreeSet<String> = [
        format!("fifo:{fifo}"),
        format!("unix:{sock}"),
        format!("unix:{served}"),
        format!("shm:{chan}"),
    ]
    .into_iter()
    .collect();
    assert_eq!(addresses(&stale), want, "{stale:#?}");
    for o in &stale {
        check_shape(o);
        assert_eq!(o["creator"]["alive"], false, "{o}");
        assert_eq!(o["creator"]["persistent"], false, "{o}");
        assert_eq!(o["users"].as_array().unwrap().len(), 0, "{o}");
    }
    assert_eq!(by_address(&stale, &format!("fifo:{fifo}"))["kind"], "fifo");
    assert_eq!(
        by_address(&stale, &format!("unix:{sock}"))["kind"],
        "unix-socket"
    );

    // The whole listing: the others are there, each for its reason.
    let all = s.json(&["ls", "--json"]);
    for o in &all {
        check_shape(o);
    }
    let mutex = by_address(&all, &format!("mutex:{lock}"));
    assert_eq!(mutex["kind"], "mutex");
    assert_eq!(mutex["creator"]["alive"], false, "{mutex}");
    assert_eq!(mutex["creator"]["persistent"], true, "{mutex}");
    let mut queues = vec![format!("sysv:{:#x}", key as u32)];
    if mq_listed {
        queues.push(format!("mq:{mq}"));
        assert_eq!(by_address(&all, &format!("mq:{mq}"))["kind"], "posix-queue");
    }
    for queue in queues {
        let q = by_address(&all, &queue);
        assert_eq!(q["creator"]["alive"], false, "{q}");
        assert_eq!(q["creator"]["persistent"], true, "{q}");
    }
    assert_eq!(
        by_address(&all, &format!("sysv:{:#x}", key as u32))["kind"],
        "sysv-queue"
    );
    let foreign_obj = by_address(&all, &format!("segment:ipcworks-test-stale-foreign-{pid}"));
    assert!(foreign_obj["creator"].is_null(), "{foreign_obj}");
    assert_eq!(foreign_obj["bytes"], 13);
    let live_obj = by_address(&all, &format!("fifo:{live}"));
    assert_eq!(live_obj["creator"]["alive"], true, "{live_obj}");
    assert_eq!(
        live_obj["creator"]["pid"].as_u64(),
        Some(u64::from(s.children[live_recv].id()))
    );
    assert_eq!(
        live_obj["users"].as_array().unwrap(),
        &vec![Value::from(s.children[live_recv].id())],
        "the live receiver holds its FIFO open"
    );

    // A dry run removes nothing.
    let (code, out, err) = s.run(&["rm", "--stale", "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("would remove"))
            .count(),
        4,
        "{out}"
    );
    assert!(Path::new(&fifo).exists());

    let (code, out, err) = s.run(&["rm", "--stale"]);
    assert_eq!(code, 0, "{out}{err}");
    let removed: BTreeSet<String> = out
        .lines()
        .filter_map(|l| l.strip_prefix("removed "))
        .map(str::to_string)
        .collect();
    assert_eq!(removed, want, "{out}");
    for p in [&fifo, &sock, &served] {
        assert!(!Path::new(p).exists(), "{p} still exists");
    }
    assert!(
        !chan_file.exists(),
        "the dead receiver's channel is removed"
    );
    // Left alone: the persistent mutex and queues, the live FIFO, the
    // foreign file.
    assert!(lock_file.exists());
    assert!(
        ipcworks::mq::posix::Queue::open(&mq).is_ok(),
        "the persistent POSIX queue is left"
    );
    assert!(
        std::fs::read_to_string("/proc/sysvipc/msg")
            .unwrap()
            .lines()
            .any(|l| l.split_whitespace().next() == Some(&key.to_string()))
    );
    assert!(Path::new(&live).exists());
    assert!(foreign.exists());
    // Their registry entries are gone; the mutex's, the queues' and the
    // live FIFO's stay.
    assert_eq!(s.registry_len(), 4);
    assert_eq!(s.json(&["ls", "--stale", "--json"]), Vec::<Value>::new());
    let (code, out, _) = s.run(&["rm", "--stale"]);
    assert_eq!(code, 0);
    assert!(out.contains("no stale objects"), "{out}");
}

#[test]
fn regions_json_follows_the_documented_shape() {
    let out = Command::new(env!("CARGO_BIN_EXE_ipcworks"))
        .args(["regions", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["pid"].is_u64() && v["exe"].is_string(), "{v}");
    let threads = v["threads"].as_array().unwrap();
    assert!(!threads.is_empty());
    for t in threads {
        assert!(t[0].is_u64() && t[1].is_string(), "{t}");
    }
    let kinds = [
        "code",
        "read-only-data",
        "data",
        "bss",
        "heap",
        "stack",
        "stack-guard",
        "shared-memory",
        "shared-library",
        "kernel",
        "anonymous",
        "file",
    ];
    let regions = v["regions"].as_array().unwrap();
    let mut seen = BTreeSet::new();
    for r in regions {
        let (start, end) = (r["start"].as_u64().unwrap(), r["end"].as_u64().unwrap());
        assert!(start < end, "{r}");
        assert_eq!(r["perms"].as_str().unwrap().len(), 4, "{r}");
        assert!(r["path"].is_string(), "{r}");
        let kind = r["region"]["kind"].as_str().unwrap();
        assert!(kinds.contains(&kind), "{r}");
        if kind == "stack" {
            assert!(
                r["region"]["tid"].is_u64() && r["region"]["name"].is_string(),
                "{r}"
            );
        }
        seen.insert(kind.to_string());
    }
    for k in ["code", "heap", "stack"] {
        assert!(seen.contains(k), "no {k} region in {v}");
    }
}

#[test]
fn a_dead_creators_name_taken_by_a_foreign_fifo_is_not_stale() {
    let mut s = Scene::new("reused");
    let path = s.files.join("reused.fifo");
    let p = path.to_string_lossy().into_owned();
    let i = s.start(&["recv", &format!("fifo:{p}")]);
    wait_until("the FIFO and its registry entry", || {
        path.exists() && s.registry_len() == 1
    });
    s.kill9(i);
    // Another program makes its own FIFO under that name: first beside it
    // (so it is a different inode), then renamed over the dead one's.
    let tmp = s.files.join("foreign.tmp");
    let st = Command::new("mkfifo").arg(&tmp).status().unwrap();
    assert!(st.success());
    std::fs::rename(&tmp, &path).unwrap();

    assert_eq!(s.json(&["ls", "--stale", "--json"]), Vec::<Value>::new());
    let (code, out, err) = s.run(&["rm", "--stale"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("no stale objects"), "{out}");
    assert!(path.exists(), "the foreign FIFO must be left alone");
    // The outdated entry was forgotten.
    assert_eq!(s.registry_len(), 0);
}

#[test]
fn rm_takes_a_fifo_by_the_relative_path_it_was_made_with() {
    let mut s = Scene::new("relative");
    let child = s
        .cmd(&["recv", "fifo:rel.fifo"])
        .current_dir(&s.files)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    s.children.push(child);
    let path = s.files.join("rel.fifo");
    wait_until("the FIFO and its registry entry", || {
        path.exists() && s.registry_len() == 1
    });
    s.kill9(0);
    let out = s
        .cmd(&["rm", "fifo:rel.fifo"])
        .current_dir(&s.files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        said.trim(),
        format!("removed fifo:{}", path.display()),
        "{said}"
    );
    assert!(!path.exists());
    assert_eq!(s.registry_len(), 0);
}

/// Set by [`child`]'s caller: what the re-executed test binary does.
const ROLE: &str = "IPCWORKS_STALE_TEST_ROLE";

/// Not a test: the body of child processes, which run this test binary
/// again with only this test and [`ROLE`] set.
#[test]
fn child() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    if let Some(key) = role.strip_prefix("sysv-temporary:") {
        // A queue made not to outlive its creator, as a library user makes
        // one; killed before it can remove it.
        let key: i32 = key.parse().unwrap();
        let _q = ipcworks::mq::sysv::Queue::options()
            .remove_on_drop(true)
            .create(key)
            .unwrap();
        std::thread::sleep(Duration::from_secs(60));
    }
    std::process::exit(0);
}

fn sysv_queue_owner(key: i32) -> Option<u32> {
    // key msqid perms cbytes qnum lspid lrpid uid …
    std::fs::read_to_string("/proc/sysvipc/msg")
        .unwrap()
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.first() == Some(&key.to_string().as_str()))
        .map(|f| f[7].parse().unwrap())
}

#[test]
fn a_dead_creators_sysv_key_reused_by_another_user_is_not_stale_nor_removed() {
    require!(need::ROOT, need::IPCS);
    let mut s = Scene::new("sysv-reused");
    let key = 0x7d00_0000 | (std::process::id() as i32 & 0x00ff_ffff);
    s.sysv.push(key);
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "stale::child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(ROLE, format!("sysv-temporary:{key}"))
        .env("IPCWORKS_REGISTRY", &s.registry)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    s.children.push(child);
    wait_until("the queue and its registry entry", || {
        sysv_queue_owner(key).is_some() && s.registry_len() == 1
    });
    s.kill9(0);
    let addr = format!("sysv:{:#x}", key as u32);
    // Its creator died and it was not to persist: stale, rightly.
    let stale = s.json(&["ls", "--stale", "--json"]);
    assert_eq!(
        addresses(&stale),
        BTreeSet::from([addr.clone()]),
        "{stale:#?}"
    );

    // Someone removes it behind ipcworks' back, and nobody (uid 65534)
    // makes a queue of their own under the same key.
    let st = Command::new("ipcrm")
        .args(["-Q", &key.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let theirs = s
        .cmd(&["send", &addr, "theirs"])
        .current_dir("/")
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert!(
        theirs.status.success(),
        "{}",
        String::from_utf8_lossy(&theirs.stderr)
    );
    assert_eq!(sysv_queue_owner(key), Some(65534));

    assert_eq!(
        s.json(&["ls", "--stale", "--json"]),
        Vec::<Value>::new(),
        "another user's queue under a dead creator's key is not stale"
    );
    let (code, out, err) = s.run(&["rm", "--stale"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("no stale objects"), "{out}");
    assert_eq!(sysv_queue_owner(key), Some(65534), "rm --stale left it");
    let (code, _, err) = s.run(&["rm", &addr]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("owned by uid 65534") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(
        sysv_queue_owner(key),
        Some(65534),
        "rm without --force left it"
    );
    assert_eq!(s.registry_len(), 0, "the outdated entry was forgotten");
}

#[test]
fn objects_with_long_names_are_recorded_and_found_stale() {
    let mut s = Scene::new("long");
    // A FIFO whose file name is 250 bytes (its path, the registry's name
    // for it, is longer), and a channel whose segment name
    // (ipcworks.chan.NAME) is the longest a name may be.
    let fifo = s.files.join("f".repeat(250)).to_string_lossy().into_owned();
    let mut chan = format!("ipcworks-test-long-{}-", std::process::id());
    chan += &"c".repeat(ipcworks::name::MAX_NAME_LEN - "ipcworks.chan.".len() - chan.len());
    let chan_file = PathBuf::from(format!("/dev/shm/ipcworks.chan.{chan}"));
    s.shm.push(chan_file.clone());
    let doomed = [
        s.start(&["recv", &format!("fifo:{fifo}")]),
        s.start(&["recv", &format!("shm:{chan}")]),
    ];
    wait_until("the FIFO and the channel", || {
        Path::new(&fifo).exists() && chan_file.exists()
    });
    let want = BTreeSet::from([format!("fifo:{fifo}"), format!("shm:{chan}")]);
    // Each is recorded right after it is made.
    wait_until("ls to show both creators", || {
        let all = s.json(&["ls", "--json"]);
        want.iter().all(|a| {
            all.iter()
                .any(|o| o["address"] == a.as_str() && !o["creator"].is_null())
        })
    });
    for i in doomed {
        s.kill9(i);
    }
    let stale = s.json(&["ls", "--stale", "--json"]);
    assert_eq!(addresses(&stale), want, "{stale:#?}");
    let (code, out, err) = s.run(&["rm", "--stale"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!Path::new(&fifo).exists() && !chan_file.exists());
    assert_eq!(s.registry_len(), 0, "their entries went with them");
}
