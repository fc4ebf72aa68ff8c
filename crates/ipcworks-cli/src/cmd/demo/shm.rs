//! `ipcworks demo shm`: two processes share a named segment; without
//! synchronization the reader sees torn updates, with the robust mutex it
//! never does.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Context;
use ipcworks::process::remove_on_terminate;
use ipcworks::registry::Kind;
use ipcworks::shm::Segment;
use ipcworks::sync::Mutex;

use super::{child, step};

const WRITES: u64 = 300_000;

/// Word `i` of the segment: 0 and 1 are the pair the writer keeps equal,
/// 2 is the writer's state (1 started, 2 done).
fn word(seg: &Segment, i: usize) -> anyhow::Result<&AtomicU64> {
    assert!(i < 3);
    seg.atomic_u64(i)
        .with_context(|| format!("the segment holds no word {i}"))
}

pub fn run() -> anyhow::Result<()> {
    let pid = std::process::id();
    let seg_name = format!("ipcworks-demo-shm-{pid}");
    let mutex_name = format!("ipcworks-demo-shm-{pid}");
    let mutex_seg = format!("ipcworks.mutex.{mutex_name}");
    let _ = remove_on_terminate(&[(Kind::Shm, &seg_name), (Kind::Shm, &mutex_seg)]);

    step(
        1,
        "Without synchronization: a writer updates two numbers, a reader checks they match",
    );
    let seg = Segment::create(&seg_name, 4096).context("creating the segment")?;
    println!("    created /dev/shm/{seg_name}; the writer stores (i, i) as two separate writes");
    let t = Instant::now();
    let writer = child::start("shm", "writer", std::slice::from_ref(&seg_name), &[])?;
    let (a, b, state) = (word(&seg, 0)?, word(&seg, 1)?, word(&seg, 2)?);
    let started = Instant::now();
    while state.load(Ordering::SeqCst) == 0 {
        anyhow::ensure!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the writer never started"
        );
        std::hint::spin_loop();
    }
    let (mut reads, mut torn, mut example) = (0u64, 0u64, None);
    while state.load(Ordering::Relaxed) != 2 {
        let y = b.load(Ordering::Relaxed);
        let x = a.load(Ordering::Relaxed);
        reads += 1;
        if x != y {
            torn += 1;
            example.get_or_insert((x, y));
        }
    }
    let status = writer.wait()?;
    anyhow::ensure!(status.success(), "the writer failed: {status}");
    println!(
        "    reader (pid {pid}): {torn} of {reads} reads saw a torn pair{} [{:.0} ms]",
        example
            .map(|(x, y)| format!(", e.g. a = {x}, b = {y}"))
            .unwrap_or_default(),
        t.elapsed().as_secs_f64() * 1e3
    );
    if torn > 0 {
        println!("    The reader ran between the writer's two stores: it saw half of an update.");
    } else {
        println!("    (No torn read this time: the two processes did not overlap. Run it again.)");
    }
    drop(seg);

    step(2, "With the robust mutex around each update and each read");
    let m = Mutex::create(&mutex_name, [0u64; 3]).context("creating the mutex")?;
    println!("    created mutex {mutex_name} (/dev/shm/{mutex_seg}); the writer opens it by name");
    let t = Instant::now();
    let writer = child::start(
        "shm",
        "locked-writer",
        std::slice::from_ref(&mutex_name),
        &[],
    )?;
    let (mut reads, mut torn) = (0u64, 0u64);
    loop {
        let [a, b, state] = m.lock().map_err(ipcworks::Error::from)?.get()?;
        if state == 2 {
            break;
        }
        reads += 1;
        if a != b {
            torn += 1;
        }
    }
    let status = writer.wait()?;
    anyhow::ensure!(status.success(), "the writer failed: {status}");
    println!(
        "    reader: {torn} of {reads} reads saw a torn pair [{:.0} ms]",
        t.elapsed().as_secs_f64() * 1e3
    );
    println!("    Holding the lock, each side sees the other's update whole or not at all.");
    drop(m);
    println!("\nremoved /dev/shm/{seg_name} and /dev/shm/{mutex_seg}");
    Ok(())
}

/// The writers of both steps: `writer SEGMENT` and `locked-writer MUTEX`,
/// each opening the parent's object by name.
pub(super) fn child(role: &str, args: &[String]) -> anyhow::Result<()> {
    let name = args.first().context("the object's name")?;
    match role {
        "writer" => {
            let mine = Segment::open(name).context("opening the segment by name")?;
            let (a, b, state) = (word(&mine, 0)?, word(&mine, 1)?, word(&mine, 2)?);
            state.store(1, Ordering::SeqCst);
            for i in 1..=WRITES {
                a.store(i, Ordering::Relaxed);
                std::hint::spin_loop();
                b.store(i, Ordering::Relaxed);
            }
            state.store(2, Ordering::SeqCst);
        }
        "locked-writer" => {
            let mine = Mutex::<[u64; 3]>::open(name).context("opening the mutex by name")?;
            for i in 1..=WRITES {
                let mut g = mine.lock().map_err(ipcworks::Error::from)?;
                // Two separate copies into shared memory, as in step 1.
                g.update(|v| v[0] = i)?;
                std::hint::spin_loop();
                g.update(|v| v[1] = i)?;
            }
            mine.lock()
                .map_err(ipcworks::Error::from)?
                .update(|v| v[2] = 2)?;
        }
        other => anyhow::bail!("unknown role {other:?}"),
    }
    Ok(())
}
