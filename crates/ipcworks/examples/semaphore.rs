//! A counting semaphore as a pool of N permits, shared by processes, and
//! what happens when a holder is killed.
//!
//! `cargo run -p ipcworks --example semaphore`
//!
//! The parent creates a semaphore of 2 permits and starts 4 children (this
//! same program). Each child takes a permit with `acquire()`, works for a
//! moment, and gives it back; one child is killed with SIGKILL while it
//! holds its permit. A POSIX semaphore would have lost that permit for good;
//! ours finds the dead holder and gives it back.

use std::process::Command;
use std::time::Duration;

use ipcworks::sync::Semaphore;

fn main() -> ipcworks::Result<()> {
    if let Some(name) = std::env::args().nth(1) {
        return worker(&name);
    }
    let name = format!("ipcworks-example-pool-{}", std::process::id());
    let sem = Semaphore::create(&name, 2)?;
    println!("pool {name:?}: {} permits", sem.value()?);

    let exe = std::env::current_exe().expect("current_exe");
    let mut kids: Vec<_> = (0..4)
        .map(|_| Command::new(&exe).arg(&name).spawn().expect("spawn"))
        .collect();
    // Kill the first child while (most likely) it holds a permit.
    std::thread::sleep(Duration::from_millis(150));
    kids[0].kill().expect("kill");
    println!("killed child {} with SIGKILL", kids[0].id());
    for k in &mut kids {
        let _ = k.wait();
    }
    let back = sem.reclaim()?;
    println!(
        "all children done; value = {} (was 2): the killed child's permit came back \
         (a waiting child reclaimed it, or reclaim() just now: {back})",
        sem.value()?
    );
    Ok(())
}

fn worker(name: &str) -> ipcworks::Result<()> {
    let sem = Semaphore::open(name)?;
    let permit = sem.acquire()?; // P
    println!("  child {} holds a permit", std::process::id());
    std::thread::sleep(Duration::from_millis(300));
    drop(permit); // V
    println!("  child {} gave it back", std::process::id());
    Ok(())
}
