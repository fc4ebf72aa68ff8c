//! An async worker pool (feature `tokio`): jobs come from a native queue
//! (`queue:`), at most three run at once, limited by a semaphore that
//! every process of the pool shares (`ipcworks::tokio::AsyncSemaphore`).
//! Start this twice in two terminals with `worker` and the pool is two
//! processes wide, still at most three jobs at once between them.
//!
//! ```text
//! cargo run -p ipcworks --features tokio --example async_worker_pool          # fills the queue, works it, exits
//! cargo run -p ipcworks --features tokio --example async_worker_pool -- worker # one more worker process
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ipcworks::queue::Queue;
use ipcworks::sync::Semaphore;
use ipcworks::tokio::{AsyncQueue, AsyncSemaphore};

const QUEUE: &str = "ipcworks-example-jobs";
const SLOTS: &str = "ipcworks-example-slots";
const LIMIT: u32 = 3;
const JOBS: u32 = 20;

#[tokio::main]
async fn main() -> ipcworks::Result<()> {
    let worker_only = std::env::args().nth(1).as_deref() == Some("worker");
    let (queue, created) = Queue::open_or_create(QUEUE)?;
    let (sem, _) = Semaphore::open_or_create(SLOTS, LIMIT)?;
    // One helper thread per object in this process, however many tasks.
    let jobs = AsyncQueue::new(queue)?;
    let slots = AsyncSemaphore::new(sem)?;

    if !worker_only {
        for i in 0..JOBS {
            jobs.send(format!("job {i}").as_bytes(), i % 3).await?;
        }
        println!("queued {JOBS} jobs");
    }

    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        // Take a job, or stop after a second without one.
        let job = match tokio::time::timeout(Duration::from_secs(1), jobs.recv()).await {
            Ok(r) => r?,
            Err(_) => break,
        };
        let (slots, running, most) = (slots.clone(), running.clone(), most.clone());
        tasks.spawn(async move {
            // At most LIMIT inside, across every worker process.
            let _permit = slots.acquire().await?;
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            let (msg, prio) = job;
            println!(
                "{} (priority {prio}): {now} running here",
                String::from_utf8_lossy(&msg)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
            running.fetch_sub(1, Ordering::SeqCst);
            Ok::<_, ipcworks::Error>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("job task")?;
    }
    println!(
        "done; at most {} jobs ran at once in this process (limit {LIMIT})",
        most.load(Ordering::SeqCst)
    );
    if created && !worker_only {
        Queue::remove(QUEUE)?;
        Semaphore::remove(SLOTS)?;
    }
    Ok(())
}
