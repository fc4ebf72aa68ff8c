//! `ipcworks demo memory`: threads share code, data and heap and each has
//! its own stack; a child process has memory of its own and shares only
//! what is mapped shared.

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use ipcworks::shm::Segment;

use super::{child, step};

/// A global variable: lives in the data region.
static GLOBAL: AtomicU64 = AtomicU64::new(1);

fn addr<T>(x: &T) -> usize {
    x as *const T as usize
}

pub fn run() -> anyhow::Result<()> {
    let heap = Box::new(AtomicU64::new(100));
    let local = 7u64;
    step(1, "Where things live in this process");
    println!(
        "    code   : function run()         at {:#014x}",
        run as fn() -> anyhow::Result<()> as usize
    );
    println!(
        "    data   : static GLOBAL = {}      at {:#014x}",
        GLOBAL.load(Ordering::SeqCst),
        addr(&GLOBAL)
    );
    println!(
        "    heap   : Box<u64> = {}         at {:#014x}",
        heap.load(Ordering::SeqCst),
        addr(&*heap)
    );
    println!(
        "    stack  : local of main thread   at {:#014x}",
        addr(&local)
    );
    println!(
        "    (see them all: ipcworks regions {})",
        std::process::id()
    );

    step(2, "Two threads each add 10 to GLOBAL and to the heap value");
    std::thread::scope(|s| {
        for i in 1..=2 {
            let heap = &heap;
            s.spawn(move || {
                let mine = 0u64;
                GLOBAL.fetch_add(10, Ordering::SeqCst);
                heap.fetch_add(10, Ordering::SeqCst);
                println!(
                    "    thread {i} (tid {}): its own stack local at {:#014x}; wrote GLOBAL and heap",
                    rustix::thread::gettid().as_raw_nonzero(),
                    addr(&mine)
                );
            });
        }
    });
    println!(
        "    main thread now reads GLOBAL = {}, heap = {}: the threads' writes are visible,",
        GLOBAL.load(Ordering::SeqCst),
        heap.load(Ordering::SeqCst)
    );
    println!(
        "    because threads of one process share data and heap. Their stacks differ (addresses above)."
    );

    step(
        3,
        "A child process (this program started again) sets GLOBAL and the heap value to 999",
    );
    let shared = Segment::anonymous(4096).context("creating a shared segment")?;
    let shared_word = shared.atomic_u64(0).context("a word of the segment")?;
    shared_word.store(5, Ordering::SeqCst);
    let status = child::start("memory", "write-999", &[], &[shared.as_fd()])?.wait()?;
    anyhow::ensure!(status.success(), "the child failed: {status}");
    println!(
        "    parent (pid {}): GLOBAL = {}, heap = {} at the SAME addresses as before: unchanged.",
        std::process::id(),
        GLOBAL.load(Ordering::SeqCst),
        heap.load(Ordering::SeqCst)
    );
    println!(
        "    The child wrote to memory of its own, not to the parent's. (fork() alone gives a child a"
    );
    println!(
        "    copy-on-write copy of the parent's pages, at the same addresses; the exec() that started"
    );
    println!("    this child replaced that copy with a fresh run of the program.)");

    step(4, "Memory mapped SHARED is the exception");
    println!(
        "    the child also wrote 999 into a MAP_SHARED segment handed to it: the parent reads {}.",
        shared_word.load(Ordering::SeqCst)
    );
    println!("    That is what shared memory is: the same physical pages in both processes.");
    Ok(())
}

/// The child of step 3: a fresh run of this program, with the parent's
/// segment handed over.
pub(super) fn child(role: &str, _args: &[String]) -> anyhow::Result<()> {
    anyhow::ensure!(role == "write-999", "unknown role {role:?}");
    let heap = Box::new(AtomicU64::new(100));
    let fd = child::handed_fds(1)?.remove(0);
    let shared = Segment::from_fd(fd).context("mapping the handed segment")?;
    let me = std::process::id();
    println!(
        "    child (pid {me}): starts with GLOBAL = {}, heap = {}: the program's initial values, not the parent's",
        GLOBAL.load(Ordering::SeqCst),
        heap.load(Ordering::SeqCst)
    );
    GLOBAL.store(999, Ordering::SeqCst);
    heap.store(999, Ordering::SeqCst);
    shared
        .atomic_u64(0)
        .context("a word of the segment")?
        .store(999, Ordering::SeqCst);
    println!(
        "    child (pid {me}): GLOBAL = {} at {:#014x}, heap = {} at {:#014x}",
        GLOBAL.load(Ordering::SeqCst),
        addr(&GLOBAL),
        heap.load(Ordering::SeqCst),
        addr(&*heap)
    );
    Ok(())
}
