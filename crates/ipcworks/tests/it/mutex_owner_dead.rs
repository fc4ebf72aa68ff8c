//! The robust mutex's `OwnerDead` passed on as an error (`m.lock()?`):
//! the next locker, in this process or another, is told in turn and may
//! repair, the mutex is not retired.

use ipcworks::Error;
use ipcworks::sync::{LockError, Mutex};

use crate::mutex::{Pair, seg_name, spawn_and_wait};
use crate::support::{self, ShmCleanup};

/// `m.lock()?` on a dead holder's mutex, in a function that returns
/// `ipcworks::Result`: the error says OwnerDead, and the mutex is left
/// owner-dead for the next locker to repair (not retired as not
/// recoverable, which only dropping an unrepaired guard does).
#[test]
fn question_mark_on_owner_dead_leaves_it_for_the_next_locker() {
    fn locked_work(m: &Mutex<Pair>) -> ipcworks::Result<u64> {
        let g = m.lock()?;
        Ok(g.get()?[0])
    }
    let name = support::unique_name("mtx-qm");
    let _clean = ShmCleanup(vec![seg_name(&name)]);
    let m = Mutex::create(&name, [0u64, 0]).unwrap();
    let mut holder = spawn_and_wait("hold", &name, "READY");
    holder.kill9();
    let e = locked_work(&m).unwrap_err();
    assert!(matches!(e, Error::OwnerDead { .. }), "{e:?}");
    assert!(!m.is_locked(), "the lock was released");
    // The next locker, in this process or another, still sees OwnerDead
    // and can repair.
    let other = Mutex::<Pair>::open(&name).unwrap();
    match other.lock() {
        Err(LockError::OwnerDead(mut g)) => {
            assert_eq!(
                g.get().unwrap(),
                [1, 0],
                "the dead holder's half-done update"
            );
            g.update(|p| p[1] = p[0]).unwrap();
            g.make_consistent();
        }
        other => panic!("expected OwnerDead for the next locker, got {other:?}"),
    }
    assert_eq!(locked_work(&m).unwrap(), 1);
    let g = m.lock().unwrap();
    assert!(g.is_consistent());
    assert_eq!(g.get().unwrap(), [1, 1]);
}
