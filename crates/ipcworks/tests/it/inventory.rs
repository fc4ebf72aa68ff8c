//! `inventory` (ipcworks ls/rm): objects, their creators' liveness, their users.

use std::time::Duration;

use ipcworks::inventory::{self, ObjectKind};
use ipcworks::shm::Segment;

use crate::support::{self, KillOnDrop, ShmCleanup};

#[test]
fn child() {
    support::as_child!(|role, arg| {
        if role == "create-and-sleep" {
            let _seg = Segment::create(&arg, 4096).unwrap();
            println!("ready");
            std::thread::sleep(Duration::from_secs(60));
        }
    });
}

#[test]
fn a_killed_creator_makes_its_segment_stale_and_users_block_removal() {
    let name = support::unique_name("inv");
    let _clean = ShmCleanup(vec![name.clone()]);
    let mut c = KillOnDrop::spawn_ready(support::child(
        "inventory::child",
        "create-and-sleep",
        &name,
    ));
    let addr = format!("segment:{name}");
    let obj = inventory::find(&addr).unwrap();
    assert_eq!(obj.kind, ObjectKind::Segment);
    assert_eq!(obj.bytes, Some(4096));
    let creator = obj.creator.expect("ipcworks recorded the creator");
    assert_eq!(creator.pid, c.pid());
    assert!(creator.alive);
    assert!(!obj.is_stale());
    assert_eq!(obj.users, vec![c.pid()], "the child maps it");
    let e = inventory::remove(&obj, false).unwrap_err();
    assert!(e.to_string().contains("in use by pid"), "{e}");

    c.kill9();
    let obj = inventory::find(&addr).unwrap();
    assert!(obj.is_stale(), "creator died: {obj:?}");
    assert!(obj.users.is_empty());
    inventory::remove(&obj, false).unwrap();
    assert!(inventory::find(&addr).is_err());
    assert!(!std::path::Path::new(&format!("/dev/shm/{name}")).exists());
}

#[test]
fn unknown_address_is_not_found_under_its_own_name() {
    let e = inventory::find("shm:ipcworks-test-nothing-here").unwrap_err();
    match e {
        ipcworks::Error::NotFound { name, .. } => {
            assert_eq!(name, "shm:ipcworks-test-nothing-here")
        }
        e => panic!("{e}"),
    }
}

/// A native queue's contents are counted; a segment under a queue's name
/// whose header was never published (a creator that died creating it) is
/// listed at once, without contents, rather than waited for (an open waits
/// up to a second for a creator still at work).
#[test]
fn queues_are_counted_and_unpublished_ones_are_not_waited_for() {
    let live = support::unique_name("inv-q");
    let unpublished: Vec<String> = (0..5)
        .map(|i| support::unique_name(&format!("inv-q0-{i}")))
        .collect();
    let _clean = ShmCleanup(
        std::iter::once(&live)
            .chain(&unpublished)
            .map(|n| format!("ipcworks.queue.{n}"))
            .collect(),
    );
    let q = ipcworks::queue::Queue::create(&live).unwrap();
    q.send(b"one", 1).unwrap();
    q.send(b"three", 2).unwrap();
    for n in &unpublished {
        std::fs::write(format!("/dev/shm/ipcworks.queue.{n}"), [0u8; 4096]).unwrap();
    }
    let t = std::time::Instant::now();
    let all = inventory::list();
    // Five unpublished queues waited for would take five seconds.
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "ls took {:?}",
        t.elapsed()
    );
    let find = |n: &str| {
        all.iter()
            .find(|o| o.address == format!("queue:{n}"))
            .unwrap_or_else(|| panic!("queue:{n} not listed"))
    };
    let o = find(&live);
    assert_eq!((o.bytes, o.messages), (Some(8), Some(2)));
    for n in &unpublished {
        let o = find(n);
        assert_eq!((o.bytes, o.messages), (None, None));
    }
}

/// Removes a System V queue by id when dropped, also when a test fails.
struct SysvQueueCleanup(i32);

impl Drop for SysvQueueCleanup {
    fn drop(&mut self) {
        let _ = msgctl_rmid(self.0);
    }
}

/// `msgctl(id, IPC_RMID)`, as `ipcrm -q` does.
fn msgctl_rmid(id: i32) -> std::io::Result<()> {
    // SAFETY: IPC_RMID takes no buffer.
    match unsafe { libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut()) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// The registry records which queue it saw made under a key (its msqid,
/// creation time and creator): a queue made later under the same key by a
/// program that records nothing is not taken for it.
#[test]
fn a_sysv_key_reused_after_removal_is_not_taken_for_the_recorded_queue() {
    let key = 0x6c00_0000 | (std::process::id() as i32 & 0x00ff_ffff);
    let addr = format!("sysv:{:#x}", key as u32);
    let mut ours = ipcworks::mq::sysv::Queue::options()
        .remove_on_drop(true)
        .create(key)
        .unwrap();
    let _ours = SysvQueueCleanup(ours.id());
    let obj = inventory::find(&addr).unwrap();
    assert_eq!(obj.creator.map(|c| c.pid), Some(std::process::id()));
    // Removed behind the registry's back (as `ipcrm` would), then made
    // again under the same key.
    msgctl_rmid(ours.id()).unwrap();
    ours.set_remove_on_drop(false);
    // SAFETY: msgget takes plain integers.
    let theirs = unsafe { libc::msgget(key, libc::IPC_CREAT | libc::IPC_EXCL | 0o600) };
    assert!(theirs >= 0, "msgget: {}", std::io::Error::last_os_error());
    let _theirs = SysvQueueCleanup(theirs);
    let obj = inventory::find(&addr).unwrap();
    assert_eq!(obj.id, Some(theirs as u32));
    assert_eq!(
        obj.creator, None,
        "the new queue is not the one recorded under its key"
    );
    assert!(!obj.is_stale());
}
