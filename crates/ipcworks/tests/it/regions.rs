//! `process::regions` on a real child process with named threads.

use std::time::Duration;

use ipcworks::process::{RegionKind, regions};

use crate::support::{self, KillOnDrop};

#[test]
fn child() {
    support::as_child!(|role, _| {
        if role == "threads" {
            let mut hs = Vec::new();
            for name in ["worker-a", "worker-b", "worker-c"] {
                hs.push(
                    std::thread::Builder::new()
                        .name(name.into())
                        .spawn(|| std::thread::sleep(Duration::from_secs(60)))
                        .unwrap(),
                );
            }
            println!("ready");
            std::thread::sleep(Duration::from_secs(60));
        }
    });
}

#[test]
fn every_thread_of_a_child_has_its_own_stack() {
    let mut cmd = support::child("regions::child", "threads", "");
    cmd.stdout(std::process::Stdio::piped());
    let mut c = KillOnDrop::spawn(cmd);
    let pid = c.pid();
    // Threads name themselves once running and show a stack pointer only
    // while blocked in a system call: wait until all four stacks show.
    let stacks_of = |r: &ipcworks::process::Regions| -> Vec<(u32, String, u64)> {
        r.regions
            .iter()
            .filter_map(|x| match &x.region {
                RegionKind::Stack { tid, name } => Some((*tid, name.clone(), x.start)),
                _ => None,
            })
            .collect()
    };
    let complete = |r: &ipcworks::process::Regions| {
        let stacks = stacks_of(r);
        ["worker-a", "worker-b", "worker-c"]
            .iter()
            .all(|w| stacks.iter().any(|(_, n, _)| n == w))
            && stacks.iter().any(|(tid, _, _)| *tid == pid)
    };
    let mut snapshot = None;
    support::wait_until(Duration::from_secs(20), || match regions(pid) {
        Ok(r) if complete(&r) => {
            snapshot = Some(r);
            true
        }
        _ => false,
    });
    let r = snapshot.unwrap_or_else(|| {
        panic!(
            "child never showed the main stack and three thread stacks: {:?}",
            regions(pid).map(|r| stacks_of(&r))
        )
    });
    let stacks = stacks_of(&r);
    // One stack per thread: distinct tids at distinct addresses.
    let mut tids: Vec<u32> = stacks.iter().map(|s| s.0).collect();
    tids.sort();
    tids.dedup();
    assert_eq!(tids.len(), stacks.len());
    assert!(r.regions.iter().any(|x| x.region == RegionKind::Code));
    assert!(r.regions.iter().any(|x| x.region == RegionKind::Data));
    // Code and heap are one region each, shared by all threads.
    assert_eq!(
        r.regions
            .iter()
            .filter(|x| x.region == RegionKind::Heap)
            .count(),
        1
    );
    // main, the test harness's thread running `child`, and three workers.
    assert_eq!(r.threads.len(), 5, "{:?}", r.threads);
    c.kill9();
}
