//! `ipcworks demo memory`: threads share code, data and heap and each has
//! its own stack; a forked child gets a copy of everything private and
//! shares only what is mapped shared.

use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use ipcworks::shm::Segment;
use ipcworks::sys::proc::{self, Forked};

use super::step;

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
                    proc::tid(),
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

    step(3, "fork(): the child sets GLOBAL and the heap value to 999");
    let shared = Segment::anonymous(4096).context("creating a shared segment")?;
    // SAFETY: the segment is 4096 bytes, page-aligned, mapped for its
    // lifetime; we only touch it through an atomic.
    let shared_word = unsafe { &*(shared.as_ptr() as *const AtomicU64) };
    shared_word.store(5, Ordering::SeqCst);
    // SAFETY: the threads above were joined by the scope: this process is
    // single-threaded here, and the child only stores to memory, prints,
    // and leaves with _exit.
    match unsafe { proc::fork() }.context("fork")? {
        Forked::Child => {
            let _ = proc::die_with_parent();
            GLOBAL.store(999, Ordering::SeqCst);
            heap.store(999, Ordering::SeqCst);
            shared_word.store(999, Ordering::SeqCst);
            println!(
                "    child (pid {}): GLOBAL = {} at {:#014x}, heap = {} at {:#014x}",
                proc::pid(),
                GLOBAL.load(Ordering::SeqCst),
                addr(&GLOBAL),
                heap.load(Ordering::SeqCst),
                addr(&*heap)
            );
            proc::exit_now(0);
        }
        Forked::Parent(child) => {
            proc::wait_child(child).context("waitpid")?;
            println!(
                "    parent (pid {}): GLOBAL = {}, heap = {} at the SAME addresses: unchanged.",
                proc::pid(),
                GLOBAL.load(Ordering::SeqCst),
                heap.load(Ordering::SeqCst)
            );
            println!(
                "    The child had a copy of the parent's memory (copy-on-write pages), not the memory itself."
            );
        }
    }

    step(4, "Memory mapped SHARED before the fork is the exception");
    println!(
        "    the child also wrote 999 into a MAP_SHARED segment: the parent reads {}.",
        shared_word.load(Ordering::SeqCst)
    );
    println!("    That is what shared memory is: the same physical pages in both processes.");
    Ok(())
}
