//! Shared memory segments between real processes, and the checks that keep
//! a squatted or mis-moded name from being used.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ipcworks::Error;
use ipcworks::shm::Segment;

use crate::support::{self, KillOnDrop, ShmCleanup};

fn word(seg: &Segment, i: usize) -> &AtomicU64 {
    seg.atomic_u64(i).expect("word inside the segment")
}

#[test]
fn child() {
    support::as_child!(|role, arg| {
        match role {
            // Opens a named segment and writes a marker.
            "write-named" => {
                let seg = Segment::open(&arg).unwrap();
                word(&seg, 1).store(0xC0FFEE, Ordering::SeqCst);
            }
            // Maps an inherited anonymous segment by descriptor number.
            "write-inherited" => {
                let fd: i32 = arg.parse().unwrap();
                // SAFETY: the parent passed us this descriptor number, open and
                // owned by nobody else in this process.
                let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                let seg = Segment::from_fd(fd).unwrap();
                word(&seg, 0).store(0xBEEF, Ordering::SeqCst);
            }
            other => support::unknown_role(other),
        }
    });
}

#[test]
fn named_segment_is_shared_with_another_process_and_removed_on_drop() {
    let name = support::unique_name("named");
    let _clean = ShmCleanup(vec![name.clone()]);
    let seg = Segment::create(&name, 4096).unwrap();
    assert_eq!(seg.len(), 4096);
    assert!(std::path::Path::new(&format!("/dev/shm/{name}")).exists());
    let mode = std::fs::metadata(format!("/dev/shm/{name}"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "created exactly 0600");

    let mut c = KillOnDrop::spawn(support::child("shm::child", "write-named", &name));
    assert!(c.wait_for(Duration::from_secs(30)).success());
    assert_eq!(word(&seg, 1).load(Ordering::SeqCst), 0xC0FFEE);
    drop(seg);
    assert!(!std::path::Path::new(&format!("/dev/shm/{name}")).exists());
}

#[test]
fn anonymous_segment_is_inherited_by_a_child() {
    let seg = Segment::anonymous(8192).unwrap();
    let fd = seg.inheritable_fd().unwrap();
    let mut c = KillOnDrop::spawn(support::child(
        "shm::child",
        "write-inherited",
        &fd.as_raw_fd().to_string(),
    ));
    drop(fd);
    assert!(c.wait_for(Duration::from_secs(30)).success());
    assert_eq!(word(&seg, 0).load(Ordering::SeqCst), 0xBEEF);
}

/// `atomic_u64` lends whole words only: a 12-byte segment has one, and
/// two mappings of one segment see each other's stores.
#[test]
fn atomic_words_stop_at_the_last_whole_word() {
    let name = support::unique_name("words");
    let _cleanup = ShmCleanup(vec![name.clone()]);
    let seg = Segment::create(&name, 12).unwrap();
    assert_eq!(seg.len(), 12);
    assert!(seg.atomic_u64(0).is_some());
    assert!(
        seg.atomic_u64(1).is_none(),
        "bytes 8..16 pass the end at 12"
    );
    assert!(seg.atomic_u64(usize::MAX).is_none());
    let other = Segment::open(&name).unwrap();
    assert_ne!(other.as_ptr(), seg.as_ptr(), "a second mapping");
    seg.atomic_u64(0).unwrap().store(0xFEED, Ordering::SeqCst);
    assert_eq!(other.atomic_u64(0).unwrap().load(Ordering::SeqCst), 0xFEED);
}

#[test]
fn exclusive_create_open_and_open_or_create() {
    let name = support::unique_name("excl");
    let _clean = ShmCleanup(vec![name.clone()]);
    let a = Segment::create(&name, 100).unwrap();
    assert!(matches!(
        Segment::create(&name, 100),
        Err(Error::AlreadyExists { .. })
    ));
    let b = Segment::open(&format!("/{name}")).unwrap();
    assert_eq!(b.len(), 100);
    word(&a, 0).store(7, Ordering::SeqCst);
    assert_eq!(word(&b, 0).load(Ordering::SeqCst), 7);
    let (c, created) = Segment::open_or_create(&name, 100).unwrap();
    assert!(!created);
    drop((a, b, c));
    let (d, created) = Segment::open_or_create(&name, 64).unwrap();
    assert!(created);
    assert!(d.removes_on_drop());
}

#[test]
fn persist_keeps_the_name() {
    let name = support::unique_name("persist");
    let _clean = ShmCleanup(vec![name.clone()]);
    let seg = Segment::options()
        .size(64)
        .persist(true)
        .create(&name)
        .unwrap();
    drop(seg);
    let mut again = Segment::open(&name).unwrap();
    again.unlink().unwrap();
    assert!(matches!(Segment::open(&name), Err(Error::NotFound { .. })));
}

#[test]
fn missing_and_bad_names_give_clear_errors() {
    let e = Segment::open("ipcworks-test-does-not-exist").unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
    assert!(e.to_string().contains("does not exist"));
    for bad in ["", "a/b", "..", "x\n"] {
        assert!(
            matches!(Segment::create(bad, 10), Err(Error::NameInvalid { .. })),
            "{bad:?}"
        );
    }
    assert!(matches!(
        Segment::create(&support::unique_name("zero"), 0),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn a_symlink_under_the_name_is_refused() {
    let name = support::unique_name("link");
    let target = support::unique_name("target");
    let _clean = ShmCleanup(vec![name.clone(), target.clone()]);
    let _t = Segment::create(&target, 64).unwrap();
    symlink(format!("/dev/shm/{target}"), format!("/dev/shm/{name}")).unwrap();
    let e = Segment::open(&name).unwrap_err();
    assert!(matches!(e, Error::Refused { .. }), "{e}");
    assert!(e.to_string().contains("symbolic link"), "{e}");
}

#[test]
fn a_looser_mode_is_refused_unless_asked_for() {
    let name = support::unique_name("loose");
    let _clean = ShmCleanup(vec![name.clone()]);
    let _s = Segment::options()
        .size(64)
        .mode(0o666)
        .create(&name)
        .unwrap();
    let e = Segment::open(&name).unwrap_err();
    assert!(matches!(e, Error::Refused { .. }), "{e}");
    assert!(e.to_string().contains("0666"), "{e}");
    assert!(Segment::options().mode(0o666).open(&name).is_ok());
}

#[test]
fn a_segment_owned_by_another_user_is_refused() {
    let name = support::unique_name("foreign");
    let _clean = ShmCleanup(vec![name.clone()]);
    let _s = Segment::options()
        .size(64)
        .persist(true)
        .create(&name)
        .unwrap();
    let path = format!("/dev/shm/{name}");
    // Give it away to "nobody" (we run as root in CI; skip quietly otherwise).
    if rustix::process::geteuid().as_raw() != 0 {
        eprintln!("not root: cannot chown, skipping the foreign-owner check");
        return;
    }
    std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
    let e = Segment::open(&name).unwrap_err();
    assert!(e.to_string().contains("owned by uid 65534"), "{e}");
}

#[test]
fn drop_does_not_remove_a_newer_object_under_the_same_name() {
    let name = support::unique_name("reuse");
    let _clean = ShmCleanup(vec![name.clone()]);
    let mut first = Segment::create(&name, 64).unwrap();
    // Someone removes the name and creates a new object under it.
    Segment::remove(&name).unwrap();
    let mut second = Segment::options()
        .size(64)
        .persist(true)
        .create(&name)
        .unwrap();
    first.remove_on_drop();
    drop(first);
    assert!(
        Segment::open(&name).is_ok(),
        "the newer object must survive"
    );
    second.unlink().unwrap();
}
