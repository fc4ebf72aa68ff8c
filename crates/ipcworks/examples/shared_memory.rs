//! Shared memory between a parent and a child process.
//!
//! The parent creates a named segment, starts a copy of this program as the
//! child, and both bump one counter in the segment. The kernel is involved
//! only in creating and mapping the segment; after that both processes read
//! and write the same physical page directly.
//!
//! Run: `cargo run -p ipcworks --example shared_memory`

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use ipcworks::shm::Segment;

fn counter(seg: &Segment) -> &AtomicU64 {
    // SAFETY: the segment is at least 8 bytes, page-aligned, and lives as
    // long as the borrow; another process may write it concurrently, which
    // an atomic allows.
    unsafe { &*(seg.as_ptr() as *const AtomicU64) }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Some(name) = std::env::args().nth(1) {
        // The child: open by name, add 1000.
        let seg = Segment::open(&name)?;
        for _ in 0..1000 {
            counter(&seg).fetch_add(1, Ordering::SeqCst);
        }
        println!("child  {}: added 1000", std::process::id());
        return Ok(());
    }
    let name = format!("ipcworks-example-{}", std::process::id());
    let seg = Segment::create(&name, 4096)?; // mode 0600, removed on drop
    println!(
        "parent {}: created /dev/shm/{name} ({} bytes)",
        std::process::id(),
        seg.len()
    );
    let mut child = Command::new(std::env::current_exe()?).arg(&name).spawn()?;
    for _ in 0..1000 {
        counter(&seg).fetch_add(1, Ordering::SeqCst);
    }
    child.wait()?;
    println!(
        "parent: counter = {} (1000 from each process)",
        counter(&seg).load(Ordering::SeqCst)
    );
    Ok(())
}
