//! `process::regions` on a real child process with named threads.

use std::time::Duration;

use ipcworks::process::{RegionKind, regions};

use crate::support::{self, KillOnDrop};

#[test]
fn child() {
    let Some((role, _)) = support::role() else {
        return;
    };
    if role == "threads" {
        let mut hs = Vec::new();
        for name in ["worker-a", "worker-b"] {
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
    std::process::exit(0);
}

#[test]
fn every_thread_of_a_child_has_its_own_stack() {
    let mut cmd = support::child("regions::child", "threads", "");
    cmd.stdout(std::process::Stdio::piped());
    let mut c = KillOnDrop::spawn(cmd);
    let pid = c.pid();
    // Wait until the child runs 3 threads, all asleep in a system call.
    let ok = support::wait_until(Duration::from_secs(20), || {
        regions(pid).is_ok_and(|r| {
            r.threads.len() >= 3
                && r.regions
                    .iter()
                    .filter(|x| matches!(x.region, RegionKind::Stack { .. }))
                    .count()
                    >= 3
        })
    });
    assert!(ok, "child never showed three stacks");
    let r = regions(pid).unwrap();
    let stacks: Vec<(u32, String, u64)> = r
        .regions
        .iter()
        .filter_map(|x| match &x.region {
            RegionKind::Stack { tid, name } => Some((*tid, name.clone(), x.start)),
            _ => None,
        })
        .collect();
    for want in ["worker-a", "worker-b"] {
        assert!(
            stacks.iter().any(|(_, n, _)| n == want),
            "{want} missing in {stacks:?}"
        );
    }
    // One stack per thread: distinct tids at distinct addresses.
    let mut tids: Vec<u32> = stacks.iter().map(|s| s.0).collect();
    tids.sort();
    tids.dedup();
    assert_eq!(tids.len(), stacks.len());
    assert!(r.regions.iter().any(|x| x.region == RegionKind::Code));
    assert!(r.regions.iter().any(|x| x.region == RegionKind::Data));
    c.kill9();
}
