//! `inventory` (ipcworks ls/rm): objects, their creators' liveness, their users.

use std::time::Duration;

use ipcworks::inventory::{self, ObjectKind};
use ipcworks::shm::Segment;

use crate::support::{self, KillOnDrop, ShmCleanup};

#[test]
fn child() {
    let Some((role, arg)) = support::role() else {
        return;
    };
    if role == "create-and-sleep" {
        let _seg = Segment::create(&arg, 4096).unwrap();
        println!("ready");
        std::thread::sleep(Duration::from_secs(60));
    }
    std::process::exit(0);
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
fn unknown_address_is_a_clear_error() {
    let e = inventory::find("shm:ipcworks-test-nothing-here").unwrap_err();
    assert!(e.to_string().contains("ipcworks ls"), "{e}");
}
