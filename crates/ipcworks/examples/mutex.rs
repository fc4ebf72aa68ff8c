//! A robust mutex shared by processes: three children count under the lock,
//! then one dies holding it and the parent is told and repairs the data.
//!
//! Run: `cargo run --example mutex`

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;

use ipcworks::sync::{LockError, Mutex};

/// `[count, count again]`: a writer keeps both equal; a writer that dies in
/// the middle leaves them unequal.
type Pair = [u64; 2];

const ROLE: &str = "IPCWORKS_EXAMPLE_ROLE";

fn main() -> ipcworks::Result<()> {
    if let Ok(role) = std::env::var(ROLE) {
        return child(&role);
    }
    // An anonymous (memfd) mutex, inherited by the children as a descriptor.
    let m = Mutex::anonymous([0u64, 0])?;
    let fd = m.inheritable_fd()?;
    let spawn = |role: &str| {
        Command::new(std::env::current_exe().unwrap())
            .env(ROLE, role)
            .arg(fd.as_raw_fd().to_string())
            .status()
            .expect("run child")
    };

    for _ in 0..3 {
        assert!(spawn("count").success());
    }
    // The guard copies the value out (`get`) and in (`set`, `update`): it
    // never lends a reference into memory another process can write.
    println!("three children counted to {:?}", m.lock()?.get()?);

    // This child dies (exit without unlocking) half-way through an update.
    spawn("die");
    match m.lock() {
        Ok(g) => println!("consistent: {:?}", g.get()?),
        Err(LockError::OwnerDead(mut g)) => {
            println!("the last holder died holding the lock; data {:?}", g.get()?);
            g.update(|[a, b]| *b = *a)?; // repair
            g.make_consistent();
            println!("repaired: {:?}", g.get()?);
        }
        Err(LockError::Failed(e)) => return Err(e),
    }
    Ok(())
}

fn child(role: &str) -> ipcworks::Result<()> {
    let fd: i32 = std::env::args().nth(1).unwrap().parse().unwrap();
    // SAFETY: the parent left this descriptor open for us to own.
    let m = Mutex::<Pair>::from_fd(unsafe { OwnedFd::from_raw_fd(fd) })?;
    match role {
        "count" => {
            for _ in 0..10_000 {
                m.lock()?.update(|[a, b]| {
                    *a += 1;
                    *b += 1;
                })?;
            }
        }
        "die" => {
            let mut g = m.lock()?;
            g.update(|[a, _]| *a += 1)?;
            // Dies here: the lock is never released, g[1] never updated.
            std::process::exit(1);
        }
        _ => unreachable!(),
    }
    Ok(())
}
