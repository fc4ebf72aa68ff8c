//! `ipcworks ls`/`rm` beside the tools they imitate: System V shared memory,
//! semaphore sets and queues made by `ipcmk` and by Python's `sysv_ipc` are
//! listed with what `ipcs -m/-s/-q` shows for them, `rm` removes them (and
//! `ipcs` agrees), `ipcrm` removing one makes it vanish from `ls`;
//! `ls --kind` filters like `ipcs -m/-s/-q`; another user's object is
//! removed only with `--force`.

use crate::common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use common::{
    Kill, Registry, SysvCleanup, by_address, by_id, check_shape, ipcmk, ipcs_has_key, ipcs_info,
    ipcs_row, short_key,
};
use ipcworks_test_support::{need, require};

/// `nobody`: the other user of the tests that need two.
const NOBODY: u32 = 65534;

fn num(s: &str) -> u64 {
    s.parse().unwrap_or_else(|_| panic!("not a number: {s:?}"))
}

fn octal(s: &str) -> u64 {
    u64::from_str_radix(s, 8).unwrap_or_else(|_| panic!("not octal: {s:?}"))
}

#[test]
fn ipcmk_objects_are_listed_with_what_ipcs_shows_and_rm_removes_them() {
    require!(need::IPCS);
    let reg = Registry::new("sysv-ipcmk");
    let mut clean = SysvCleanup::default();
    let shm = ipcmk(&["-M", "8192", "-p", "0640"], None);
    clean.0.push(("-m", shm));
    let sem = ipcmk(&["-S", "3", "-p", "0600"], None);
    clean.0.push(("-s", sem));
    let msq = ipcmk(&["-Q", "-p", "0620"], None);
    clean.0.push(("-q", msq));

    let all = reg.json(&["ls", "--json"]);
    for o in &all {
        check_shape(o);
    }
    // ipcs -m: key shmid owner perms bytes nattch [status]
    let row = ipcs_row("-m", shm).expect("ipcs lists the segment");
    let info = ipcs_info("-m", shm);
    let o = by_id(&all, "sysv-segment", shm).unwrap_or_else(|| panic!("shmid {shm} not in ls"));
    let shm_addr = format!("sysv-shm:{}", short_key(&row[0]));
    assert_eq!(o["address"], shm_addr.as_str(), "{o}");
    assert_eq!(o["bytes"], num(&row[4]), "{o}");
    assert_eq!(o["bytes"], 8192);
    assert_eq!(o["mode"], octal(&row[3]), "{o}");
    assert_eq!(o["mode"], 0o640);
    assert_eq!(o["attached"], num(&row[5]), "{o}");
    assert_eq!(o["pending_removal"], false, "{o}");
    assert_eq!(o["uid"], num(&info["uid"]), "{o}");
    assert_eq!(o["creator_uid"], num(&info["cuid"]), "{o}");
    assert!(o["path"].is_null() && o["semaphores"].is_null(), "{o}");
    // ipcs -s: key semid owner perms nsems
    let row = ipcs_row("-s", sem).expect("ipcs lists the semaphore set");
    let info = ipcs_info("-s", sem);
    let o = by_id(&all, "sysv-semaphore", sem).unwrap_or_else(|| panic!("semid {sem} not in ls"));
    let sem_addr = format!("sysv-sem:{}", short_key(&row[0]));
    assert_eq!(o["address"], sem_addr.as_str(), "{o}");
    assert_eq!(o["semaphores"], num(&row[4]), "{o}");
    assert_eq!(o["semaphores"], 3);
    assert_eq!(o["mode"], octal(&row[3]), "{o}");
    assert_eq!(o["uid"], num(&info["uid"]), "{o}");
    assert_eq!(o["creator_uid"], num(&info["cuid"]), "{o}");
    assert!(o["bytes"].is_null() && o["attached"].is_null(), "{o}");
    // ipcs -q: key msqid owner perms used-bytes messages
    let row = ipcs_row("-q", msq).expect("ipcs lists the queue");
    let info = ipcs_info("-q", msq);
    let o = by_id(&all, "sysv-queue", msq).unwrap_or_else(|| panic!("msqid {msq} not in ls"));
    let msq_addr = format!("sysv:{}", short_key(&row[0]));
    assert_eq!(o["address"], msq_addr.as_str(), "{o}");
    assert_eq!(o["bytes"], num(&row[4]), "{o}");
    assert_eq!(o["messages"], num(&row[5]), "{o}");
    assert_eq!(o["mode"], octal(&row[3]), "{o}");
    assert_eq!(o["uid"], num(&info["uid"]), "{o}");
    assert_eq!(o["creator_uid"], num(&info["cuid"]), "{o}");

    // The table shows them too.
    let (code, table, err) = reg.run(&["ls"]);
    assert_eq!(code, 0, "{err}");
    for a in [&shm_addr, &sem_addr, &msq_addr] {
        assert!(table.contains(a.as_str()), "{a} not in\n{table}");
    }

    // --kind filters like ipcs -m, -s and -q.
    for (kind, json_kind, want) in [
        ("sysv-shm", "sysv-segment", &shm_addr),
        ("sysv-sem", "sysv-semaphore", &sem_addr),
        ("sysv", "sysv-queue", &msq_addr),
    ] {
        let only = reg.json(&["ls", "--kind", kind, "--json"]);
        assert!(
            only.iter().all(|o| o["kind"] == json_kind),
            "{kind}: {only:#?}"
        );
        by_address(&only, want);
    }
    let two = reg.json(&["ls", "--kind", "sysv-shm,sysv-sem", "--json"]);
    assert!(
        two.iter()
            .all(|o| o["kind"] == "sysv-segment" || o["kind"] == "sysv-semaphore"),
        "{two:#?}"
    );
    by_address(&two, &shm_addr);
    by_address(&two, &sem_addr);

    // rm removes all three; ipcs agrees, and so does ls.
    let (code, out, err) = reg.run(&["rm", &shm_addr, &sem_addr, &msq_addr]);
    assert_eq!(code, 0, "{out}{err}");
    for a in [&shm_addr, &sem_addr, &msq_addr] {
        assert!(out.contains(&format!("removed {a}")), "{out}");
    }
    assert_eq!(ipcs_row("-m", shm), None);
    assert_eq!(ipcs_row("-s", sem), None);
    assert_eq!(ipcs_row("-q", msq), None);
    let all = reg.json(&["ls", "--json"]);
    assert!(by_id(&all, "sysv-segment", shm).is_none());
    assert!(by_id(&all, "sysv-semaphore", sem).is_none());
    assert!(by_id(&all, "sysv-queue", msq).is_none());
}

#[test]
fn what_ipcrm_removes_vanishes_from_ls() {
    require!(need::IPCS);
    let reg = Registry::new("sysv-ipcrm");
    let mut clean = SysvCleanup::default();
    let shm = ipcmk(&["-M", "4096"], None);
    clean.0.push(("-m", shm));
    let sem = ipcmk(&["-S", "2"], None);
    clean.0.push(("-s", sem));
    let msq = ipcmk(&["-Q"], None);
    clean.0.push(("-q", msq));
    let objs = [
        ("-m", "sysv-segment", shm),
        ("-s", "sysv-semaphore", sem),
        ("-q", "sysv-queue", msq),
    ];
    let all = reg.json(&["ls", "--json"]);
    for (_, kind, id) in objs {
        assert!(by_id(&all, kind, id).is_some(), "{kind} {id} not listed");
    }
    for (flag, _, id) in objs {
        let st = Command::new("ipcrm")
            .args([flag, &id.to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }
    let all = reg.json(&["ls", "--json"]);
    for (_, kind, id) in objs {
        assert!(by_id(&all, kind, id).is_none(), "{kind} {id} still listed");
    }
}

/// A Python program holding System V objects made with `sysv_ipc`: a keyed
/// segment and a private one (both attached), a semaphore set, a queue with
/// one message. It prints their ids and waits until its stdin closes.
const PYTHON_HOLDER: &str = r#"
import sys, sysv_ipc
key = int(sys.argv[1])
shm = sysv_ipc.SharedMemory(key, sysv_ipc.IPC_CREX, mode=0o600, size=10000)
priv = sysv_ipc.SharedMemory(sysv_ipc.IPC_PRIVATE, sysv_ipc.IPC_CREX, mode=0o600, size=4096)
sem = sysv_ipc.Semaphore(key + 1, sysv_ipc.IPC_CREX, mode=0o600, initial_value=1)
mq = sysv_ipc.MessageQueue(key + 2, sysv_ipc.IPC_CREX, mode=0o600)
mq.send(b"hello", type=2)
print(shm.id, priv.id, sem.id, mq.id, flush=True)
sys.stdin.read()
"#;

#[test]
fn python_sysv_ipc_objects_are_listed_with_their_attached_process() {
    require!(need::IPCS, need::PYTHON_IPC);
    let reg = Registry::new("sysv-python");
    let key = 0x4800_0000 | ((std::process::id() & 0x000f_ffff) << 2) as i32;
    let mut py = Kill(
        Command::new("python3")
            .args(["-c", PYTHON_HOLDER, &key.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let py_pid = u64::from(py.0.id());
    let mut line = String::new();
    BufReader::new(py.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ids: Vec<u64> = line.split_whitespace().map(num).collect();
    let [shm, private, sem, msq] = ids[..] else {
        panic!("python said {line:?}");
    };
    let _clean = SysvCleanup(vec![("-m", shm), ("-m", private), ("-s", sem), ("-q", msq)]);
    let (shm_addr, private_addr, sem_addr, msq_addr) = (
        format!("sysv-shm:{key:#x}"),
        format!("sysv-shm:id={private}"),
        format!("sysv-sem:{:#x}", key + 1),
        format!("sysv:{:#x}", key + 2),
    );

    let all = reg.json(&["ls", "--json"]);
    for o in &all {
        check_shape(o);
    }
    let o = by_address(&all, &shm_addr);
    let row = ipcs_row("-m", shm).unwrap();
    assert_eq!(o["id"], shm, "{o}");
    assert_eq!(o["bytes"], 10000, "{o}");
    assert_eq!(o["bytes"], num(&row[4]));
    assert_eq!(o["attached"], 1, "{o}");
    assert_eq!(o["attached"], num(&row[5]));
    assert_eq!(
        o["users"],
        serde_json::json!([py_pid]),
        "python maps it: {o}"
    );
    // IPC_PRIVATE has no key to name it by: the id does.
    let o = by_address(&all, &private_addr);
    assert_eq!(o["id"], private, "{o}");
    assert_eq!(ipcs_row("-m", private).unwrap()[0], "0x00000000");
    assert_eq!(o["attached"], 1, "{o}");
    assert_eq!(o["users"], serde_json::json!([py_pid]), "{o}");
    let o = by_address(&all, &sem_addr);
    assert_eq!(o["semaphores"], 1, "{o}");
    assert_eq!(o["semaphores"], num(&ipcs_row("-s", sem).unwrap()[4]));
    let o = by_address(&all, &msq_addr);
    let row = ipcs_row("-q", msq).unwrap();
    assert_eq!(
        (o["bytes"].as_u64(), o["messages"].as_u64()),
        (Some(5), Some(1)),
        "{o}"
    );
    assert_eq!(o["messages"], num(&row[5]));

    // An attached segment is not removed without --force, and says by whom.
    let (code, _, err) = reg.run(&["rm", &shm_addr]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("attached") && err.contains(&py_pid.to_string()) && err.contains("--force"),
        "{err}"
    );
    assert!(ipcs_has_key("-m", &format!("{key:#010x}")));
    // With --force it is removed: its key is gone at once, the memory
    // stays until python detaches (ipcs: "dest"; ls: pending_removal).
    let (code, out, err) = reg.run(&["rm", "--force", &shm_addr, &private_addr]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("removed {shm_addr}")), "{out}");
    assert!(!ipcs_has_key("-m", &format!("{key:#010x}")));
    let row = ipcs_row("-m", shm).expect("still attached");
    assert_eq!(
        (row[0].as_str(), row.get(6).map(String::as_str)),
        ("0x00000000", Some("dest"))
    );
    let all = reg.json(&["ls", "--json"]);
    let o = by_id(&all, "sysv-segment", shm).expect("listed until detached");
    assert_eq!(o["pending_removal"], true, "{o}");
    assert_eq!(o["address"], format!("sysv-shm:id={shm}"), "{o}");
    // Nobody is known to use a semaphore set or a queue.
    let (code, out, err) = reg.run(&["rm", &sem_addr, &msq_addr]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(ipcs_row("-s", sem), None);
    assert_eq!(ipcs_row("-q", msq), None);
    // Python detaches by exiting: the segments are gone.
    drop(py.0.stdin.take());
    let st = py.0.wait().unwrap();
    assert!(st.success(), "{st:?}");
    assert_eq!(ipcs_row("-m", shm), None);
    assert_eq!(ipcs_row("-m", private), None);
    let all = reg.json(&["ls", "--json"]);
    assert!(by_id(&all, "sysv-segment", shm).is_none());
}

/// Runs `ipcworks rm ADDRESS` and checks it is refused for belonging to
/// `nobody`, then removed with `--force`.
fn refused_then_forced(reg: &Registry, address: &str, still_there: impl Fn() -> bool) {
    let (code, _, err) = reg.run(&["rm", address]);
    assert_eq!(code, 1, "{address}: {err}");
    assert!(
        err.contains(&format!("owned by uid {NOBODY}")) && err.contains("--force"),
        "{address}: {err}"
    );
    assert!(still_there(), "{address} was removed without --force");
    let (code, out, err) = reg.run(&["rm", "--force", address]);
    assert_eq!(code, 0, "{address}: {err}");
    assert!(out.contains(&format!("removed {address}")), "{out}");
    assert!(!still_there(), "{address} survived rm --force");
}

#[test]
fn another_users_objects_are_removed_only_with_force() {
    require!(need::ROOT, need::IPCS);
    let reg = Registry::new("sysv-owner");
    let mut clean = SysvCleanup::default();
    let shm = ipcmk(&["-M", "4096", "-p", "0600"], Some(NOBODY));
    clean.0.push(("-m", shm));
    let sem = ipcmk(&["-S", "1", "-p", "0600"], Some(NOBODY));
    clean.0.push(("-s", sem));
    let msq = ipcmk(&["-Q", "-p", "0600"], Some(NOBODY));
    clean.0.push(("-q", msq));
    // A /dev/shm segment of nobody's, made by nobody.
    let seg = format!("ipcworks-test-owner-{}", std::process::id());
    let seg_path = format!("/dev/shm/{seg}");
    let _seg_clean = common::RemoveFile(seg_path.clone());
    let st = Command::new("sh")
        .args(["-c", &format!("echo theirs > {seg_path}")])
        .uid(NOBODY)
        .gid(NOBODY)
        .status()
        .unwrap();
    assert!(st.success());

    let all = reg.json(&["ls", "--json"]);
    let addr_of = |kind: &str, id: u64| {
        let o = by_id(&all, kind, id).unwrap_or_else(|| panic!("{kind} {id} not listed"));
        assert_eq!(o["uid"], u64::from(NOBODY), "{o}");
        assert_eq!(o["creator_uid"], u64::from(NOBODY), "{o}");
        o["address"].as_str().unwrap().to_string()
    };
    let (shm_addr, sem_addr, msq_addr) = (
        addr_of("sysv-segment", shm),
        addr_of("sysv-semaphore", sem),
        addr_of("sysv-queue", msq),
    );
    assert_eq!(
        by_address(&all, &format!("segment:{seg}"))["uid"],
        u64::from(NOBODY)
    );

    refused_then_forced(&reg, &shm_addr, || ipcs_row("-m", shm).is_some());
    refused_then_forced(&reg, &sem_addr, || ipcs_row("-s", sem).is_some());
    refused_then_forced(&reg, &msq_addr, || ipcs_row("-q", msq).is_some());
    refused_then_forced(&reg, &format!("segment:{seg}"), || {
        std::path::Path::new(&seg_path).exists()
    });
}

#[test]
fn ls_kind_takes_the_address_prefixes_and_rejects_others_as_usage_errors() {
    let reg = Registry::new("kind");
    // A plain /dev/shm segment of ours, to see the filter keep it.
    let seg = format!("ipcworks-test-kind-{}", std::process::id());
    let seg_path = format!("/dev/shm/{seg}");
    let _clean = common::RemoveFile(seg_path.clone());
    std::fs::write(&seg_path, b"x").unwrap();
    let only = reg.json(&["ls", "--kind", "segment", "--json"]);
    assert!(only.iter().all(|o| o["kind"] == "segment"), "{only:#?}");
    by_address(&only, &format!("segment:{seg}"));
    let none = reg.json(&["ls", "--kind", "fifo", "--kind", "unix", "--json"]);
    assert!(
        none.iter()
            .all(|o| o["kind"] == "fifo" || o["kind"] == "unix-socket"),
        "{none:#?}"
    );
    assert!(
        !none
            .iter()
            .any(|o| o["address"] == format!("segment:{seg}"))
    );

    let (code, out, err) = reg.run(&["ls", "--kind", "bogus"]);
    assert_eq!(code, 2, "a usage error: {out}{err}");
    assert!(out.is_empty(), "{out}");
    for k in [
        "segment", "shm", "mq", "sysv", "sysv-shm", "sysv-sem", "fifo", "unix",
    ] {
        assert!(
            err.contains(k),
            "the valid kinds are listed ({k} missing): {err}"
        );
    }
}

#[test]
fn an_unknown_address_is_named_in_quotes_with_the_hint_after() {
    let reg = Registry::new("unknown");
    let addr = format!("mq:ipcworks-test-nothing-{}", std::process::id());
    let (code, _, err) = reg.run(&["rm", &addr]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&format!("\"{addr}\" does not exist")), "{err}");
    let hint = err.find("run `ipcworks ls`").expect("a hint");
    assert!(hint > err.find(&format!("\"{addr}\"")).unwrap(), "{err}");
}

#[test]
fn an_address_of_the_wrong_kind_names_the_right_one() {
    let reg = Registry::new("alike");
    let name = format!("ipcworks-test-alike-{}", std::process::id());
    let _clean = common::RemoveFile(format!("/dev/shm/{name}"));
    std::fs::write(format!("/dev/shm/{name}"), b"x").unwrap();
    // A plain segment, taken for a channel (shm:).
    let (code, _, err) = reg.run(&["rm", &format!("shm:{name}")]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "\"shm:{name}\" does not exist (did you mean segment:{name}?)"
        )),
        "{err}"
    );
    assert!(std::path::Path::new(&format!("/dev/shm/{name}")).exists());
}
