//! The async forms (feature `tokio`, issue 21): cancel safety against a
//! producer process, 10,000 tasks in two processes on one semaphore, an
//! idle awaiting task's CPU, kill -9 of the sender, and every operation
//! completing and timing out under `tokio::time::timeout`. Multi-threaded
//! runtimes throughout.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use ipcworks::channel::{Channel, Sender, WaitStrategy};
use ipcworks::endpoint::{Endpoint, Options};
use ipcworks::message::Meta;
use ipcworks::queue::Queue;
use ipcworks::shm::Segment;
use ipcworks::sync::Semaphore;
use ipcworks::tokio::{
    Async, AsyncMessageReceiver, AsyncMessageReceiverExt, AsyncMessageSender,
    AsyncMessageSenderExt, AsyncQueue, AsyncReceiver, AsyncSemaphore, AsyncSender,
};
use ipcworks::{Error, mq};

use crate::support::{self, KillOnDrop, ShmCleanup, runtime};

const LIMIT: Duration = Duration::from_secs(60);
/// Numbers the producer process sends.
const STREAM: u64 = 6000;
/// Tasks per process on the semaphore, and its permits.
const TASKS: u32 = 5000;
const PERMITS: u32 = 8;
/// Three counters in a shared segment: inside now, the most ever inside,
/// and tasks done.
struct Counters {
    seg: Segment,
}

impl Counters {
    fn word(&self, i: usize) -> &AtomicU32 {
        assert!(i < 3);
        // SAFETY: the segment is 4096 bytes, page-aligned; words 0..3 are in
        // bounds and aligned; atomics tolerate the other process's writes.
        unsafe { &*(self.seg.as_ptr().add(4 * i) as *const AtomicU32) }
    }
}

#[test]
fn child() {
    support::as_child!(|role, arg| {
        match role {
            // Sends 0..STREAM (u64, little-endian) on channel `arg`, in bursts
            // with pauses of 0-150 µs (so receives find it empty as often as
            // not), then leaves (the receiver then sees Disconnected).
            "produce-chan" => {
                let mut tx = Sender::open(&arg).unwrap();
                let mut rng = Rng(7);
                for i in 0..STREAM {
                    tx.send(&i.to_le_bytes()).unwrap();
                    pause(&mut rng);
                }
            }
            // The same into native queue `arg`, all at one priority (FIFO).
            "produce-queue" => {
                let q = Queue::open(&arg).unwrap();
                let mut rng = Rng(11);
                for i in 0..STREAM {
                    q.send(&i.to_le_bytes(), 1).unwrap();
                    pause(&mut rng);
                }
            }
            // The same into POSIX queue `/arg`.
            "produce-mq" => {
                let q = mq::posix::Queue::open(&arg).unwrap();
                let mut rng = Rng(13);
                for i in 0..STREAM {
                    q.send(&i.to_le_bytes(), 1).unwrap();
                    pause(&mut rng);
                }
            }
            // Posts STREAM permits to semaphore `arg`, with the same pauses.
            "post-sem" => {
                let sem = Semaphore::open(&arg).unwrap();
                let mut rng = Rng(17);
                for _ in 0..STREAM {
                    sem.post().unwrap();
                    pause(&mut rng);
                }
            }
            // TASKS tasks on semaphore `arg` (counters in segment `arg`-cnt).
            "sem-tasks" => {
                runtime().block_on(sem_tasks(&arg));
            }
            "idle" => idle_child(&arg),
            // Creates channel `arg` (room for 2 messages of 8 bytes) and its
            // receiver, says so, and waits to be killed without receiving.
            "recv-hang" => {
                let chan = Channel::builder()
                    .capacity(2)
                    .max_message(8)
                    .create(&arg)
                    .unwrap();
                let _rx = chan.receiver().unwrap();
                println!("ready");
                std::thread::sleep(LIMIT);
            }
            other => support::unknown_role(other),
        }
    });
}

/// A tiny deterministic generator (xorshift), so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The producer's pause after a message: none one time in four, else
/// 0-150 µs.
fn pause(rng: &mut Rng) {
    let r = rng.next();
    if !r.is_multiple_of(4) {
        std::thread::sleep(Duration::from_micros((r >> 8) % 150));
    }
}

/// Polls `fut` at most `polls` times, then drops it (cancels it): `None`
/// when it was cancelled. Between polls the task yields, so the producer
/// makes progress and a poll may find a message that was not there at the
/// previous one.
struct CancelAfter<F> {
    fut: Pin<Box<F>>,
    polls: u32,
}

impl<F: Future> Future for CancelAfter<F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.polls == 0 {
            return Poll::Ready(None);
        }
        self.polls -= 1;
        match self.fut.as_mut().poll(cx) {
            Poll::Ready(v) => Poll::Ready(Some(v)),
            Poll::Pending => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }
}

/// Receives the whole stream through `rx`, cancelling receives at random
/// moments (after 1-3 polls, or by a timeout of 0-2 ms); checks every
/// number arrives exactly once, in order, and that thousands of receives
/// were cancelled.
async fn receive_stream_cancelling(rx: &mut dyn AsyncMessageReceiver, ends_disconnected: bool) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut next = 0u64;
    let mut cancelled = 0u32;
    let start = Instant::now();
    while next < STREAM {
        assert!(start.elapsed() < LIMIT, "stuck at {next}");
        let got = match rng.next() % 3 {
            0 => tokio::time::timeout(Duration::from_micros(rng.next() % 2000), rx.recv())
                .await
                .ok(),
            _ => {
                let polls = 1 + (rng.next() % 3) as u32;
                CancelAfter {
                    fut: Box::pin(rx.recv()),
                    polls,
                }
                .await
            }
        };
        match got {
            None => cancelled += 1,
            Some(r) => {
                let m = r.unwrap();
                let n = u64::from_le_bytes(m.as_slice().try_into().unwrap());
                assert_eq!(n, next, "a number was lost, duplicated or reordered");
                next += 1;
            }
        }
    }
    eprintln!("{STREAM} numbers received exactly once, {cancelled} receives cancelled");
    assert!(
        cancelled >= 1000,
        "only {cancelled} receives were cancelled"
    );
    if ends_disconnected {
        let r = tokio::time::timeout(LIMIT, rx.recv()).await.unwrap();
        assert!(matches!(r, Err(Error::Disconnected)), "{r:?}");
    } else {
        let r = tokio::time::timeout(Duration::from_millis(50), rx.recv()).await;
        assert!(r.is_err(), "more than the stream arrived: {r:?}");
    }
}

/// A channel receive cancelled at random moments while a producer process
/// sends a numbered stream: every number exactly once, in order.
#[test]
fn cancelled_channel_receives_lose_nothing() {
    let name = support::unique_name("acancel");
    let _cleanup = ShmCleanup(vec![format!("ipcworks.chan.{name}")]);
    let chan = Channel::builder().capacity(16).create(&name).unwrap();
    let rx = chan.receiver().unwrap();
    let mut child = KillOnDrop::spawn(support::child("tokio::child", "produce-chan", &name));
    runtime().block_on(async move {
        let mut rx = AsyncReceiver::new(rx).unwrap();
        receive_stream_cancelling(&mut rx, true).await;
    });
    assert!(child.wait_for(LIMIT).success());
}

/// The same through a native queue, as a `dyn AsyncMessageReceiver`.
#[test]
fn cancelled_queue_receives_lose_nothing() {
    let name = support::unique_name("aqcancel");
    let _cleanup = ShmCleanup(vec![format!("ipcworks.queue.{name}")]);
    let q = Queue::options()
        .capacity(16)
        .max_message(64)
        .remove_on_drop(true)
        .create(&name)
        .unwrap();
    let mut child = KillOnDrop::spawn(support::child("tokio::child", "produce-queue", &name));
    runtime().block_on(async move {
        let mut rx: Box<dyn AsyncMessageReceiver> = Box::new(AsyncQueue::new(q).unwrap());
        receive_stream_cancelling(&mut *rx, false).await;
    });
    assert!(child.wait_for(LIMIT).success());
}

/// The same through a POSIX queue (its descriptor in tokio's reactor).
#[test]
fn cancelled_mq_receives_lose_nothing() {
    ipcworks_test_support::require!(ipcworks_test_support::need::MQUEUE);
    let name = support::unique_name("amqcancel");
    let q = mq::posix::Queue::options()
        .capacity(10)
        .max_message(8)
        .remove_on_drop(true)
        .create(&name)
        .unwrap();
    let mut child = KillOnDrop::spawn(support::child("tokio::child", "produce-mq", &name));
    runtime().block_on(async move {
        let mut rx = Async::receiver(q).unwrap();
        receive_stream_cancelling(&mut rx, false).await;
    });
    assert!(child.wait_for(LIMIT).success());
}

/// Acquires (P) cancelled at random moments while another process posts
/// STREAM permits: the acquires that completed took exactly STREAM, and
/// none is left — a cancelled acquire took no permit (it would be missing
/// from the count, the semaphore empty) and none was taken twice.
#[test]
fn cancelled_acquires_take_no_permit() {
    let name = support::unique_name("asemcancel");
    let _cleanup = ShmCleanup(vec![format!("ipcworks.sem.{name}")]);
    let sem = Semaphore::create(&name, 0).unwrap();
    let mut child = KillOnDrop::spawn(support::child("tokio::child", "post-sem", &name));
    let (got, cancelled) = runtime().block_on(async {
        let sem = AsyncSemaphore::new(sem).unwrap();
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let (mut got, mut cancelled) = (0u64, 0u32);
        let start = Instant::now();
        loop {
            assert!(start.elapsed() < LIMIT, "stuck at {got}");
            let r = match rng.next() % 3 {
                0 => tokio::time::timeout(Duration::from_micros(rng.next() % 2000), sem.wait())
                    .await
                    .ok(),
                _ => {
                    CancelAfter {
                        fut: Box::pin(sem.wait()),
                        polls: 1 + (rng.next() % 3) as u32,
                    }
                    .await
                }
            };
            match r {
                Some(r) => {
                    r.unwrap();
                    got += 1;
                }
                None => cancelled += 1,
            }
            if got == STREAM {
                break;
            }
            // Every permit posted and none left to take: done (a lost
            // one never comes).
            if sem.get_ref().value().unwrap() == 0
                && child.0.as_mut().unwrap().try_wait().unwrap().is_some()
            {
                break;
            }
        }
        assert!(child.wait_for(LIMIT).success());
        // Every permit is posted now.
        assert_eq!(sem.get_ref().value().unwrap(), 0, "permits were left over");
        (got, cancelled)
    });
    eprintln!("{got} permits taken, {cancelled} acquires cancelled");
    assert_eq!(got, STREAM, "a cancelled acquire took a permit");
    assert!(
        cancelled >= 1000,
        "only {cancelled} acquires were cancelled"
    );
}

/// TASKS tasks, each takes a permit of semaphore `name`, counts itself in
/// (recording the most ever inside), yields, counts itself out.
async fn sem_tasks(name: &str) {
    let sem = AsyncSemaphore::new(Semaphore::open(name).unwrap()).unwrap();
    let counters = std::sync::Arc::new(Counters {
        seg: Segment::open(&format!("{name}-cnt")).unwrap(),
    });
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..TASKS {
        let (sem, c) = (sem.clone(), counters.clone());
        tasks.spawn(async move {
            let permit = sem.acquire().await.unwrap();
            let inside = c.word(0).fetch_add(1, SeqCst) + 1;
            c.word(1).fetch_max(inside, SeqCst);
            for _ in 0..(i % 3) {
                tokio::task::yield_now().await;
            }
            if i % 97 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            c.word(0).fetch_sub(1, SeqCst);
            drop(permit);
            c.word(2).fetch_add(1, SeqCst);
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
}

/// 10,000 tasks in two processes awaiting one semaphore of 8 permits:
/// never more than 8 inside (counted in shared memory), all complete, and
/// every permit is back at the end.
#[test]
fn ten_thousand_tasks_in_two_processes_share_eight_permits() {
    let name = support::unique_name("asem");
    let _cleanup = ShmCleanup(vec![format!("ipcworks.sem.{name}"), format!("{name}-cnt")]);
    let sem = Semaphore::create(&name, PERMITS).unwrap();
    let counters = Counters {
        seg: Segment::create(&format!("{name}-cnt"), 4096).unwrap(),
    };
    let mut child = KillOnDrop::spawn(support::child("tokio::child", "sem-tasks", &name));
    runtime().block_on(sem_tasks(&name));
    assert!(child.wait_for(LIMIT).success(), "the other process failed");
    let (inside, most, done) = (
        counters.word(0).load(SeqCst),
        counters.word(1).load(SeqCst),
        counters.word(2).load(SeqCst),
    );
    eprintln!("most inside at once: {most}; done: {done}");
    assert_eq!(done, 2 * TASKS, "not every task completed");
    assert_eq!(inside, 0);
    assert!(most <= PERMITS, "{most} tasks were inside at once");
    assert!(
        most >= 2,
        "the tasks never overlapped: the test shows nothing"
    );
    assert_eq!(sem.value().unwrap(), PERMITS, "a permit was lost");
}

/// utime + stime of process `pid`, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    (f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()) as f64 / 100.0
}

/// Tasks awaiting a channel (with a live sender, default strategy), a
/// native queue and a semaphore with no permit, on a multi-threaded
/// runtime; says "ready" once they wait, then waits to be killed.
fn idle_child(name: &str) {
    runtime().block_on(async {
        let chan = Channel::builder().capacity(4).create(name).unwrap();
        let mut rx = AsyncReceiver::new(chan.receiver().unwrap()).unwrap();
        let _tx = chan.sender().unwrap();
        let q =
            AsyncQueue::new(Queue::options().remove_on_drop(true).create(name).unwrap()).unwrap();
        let sem = AsyncSemaphore::new(Semaphore::create(name, 0).unwrap()).unwrap();
        let waits = async {
            tokio::join!(rx.recv(), q.recv(), sem.acquire()).0.unwrap();
        };
        tokio::select! {
            () = waits => panic!("something arrived"),
            () = async {
                // Past the spin, parked.
                tokio::time::sleep(Duration::from_millis(200)).await;
                println!("ready");
                tokio::time::sleep(LIMIT).await;
            } => {}
        }
    });
}

/// An idle awaiting task (channel, queue, semaphore; their helper threads
/// and tokio's workers included) uses (almost) no CPU over three seconds.
#[test]
fn idle_awaiting_tasks_use_no_cpu() {
    let name = support::unique_name("aidle");
    let _cleanup = ShmCleanup(vec![
        format!("ipcworks.chan.{name}"),
        format!("ipcworks.queue.{name}"),
        format!("ipcworks.sem.{name}"),
    ]);
    let mut child = KillOnDrop::spawn_ready(support::child("tokio::child", "idle", &name));
    let pid = child.pid();
    let before = cpu_seconds(pid);
    std::thread::sleep(Duration::from_secs(3));
    let used = cpu_seconds(pid) - before;
    child.kill9();
    eprintln!("three idle awaiting tasks: {used} s of CPU in 3 s");
    assert!(
        used < 0.15,
        "idle awaiting tasks used {used} s of CPU in 3 s"
    );
}

/// One kill: a sender in a child process, the async receive parked
/// (`strategy`) when the child is killed; the time from the kill to
/// `Disconnected`.
fn one_async_kill(rt: &tokio::runtime::Runtime, strategy: WaitStrategy) -> Duration {
    let name = support::unique_name("adead");
    let _cleanup = ShmCleanup(vec![format!("ipcworks.chan.{name}")]);
    let chan = Channel::builder()
        .capacity(4)
        .wait(strategy)
        .create(&name)
        .unwrap();
    let rx = chan.receiver().unwrap();
    let mut child = KillOnDrop::spawn_ready(support::child("dead_peer::child", "send-hang", &name));
    rt.block_on(async move {
        let mut rx = AsyncReceiver::new(rx).unwrap();
        assert_eq!(rx.recv().await.unwrap(), b"one");
        let waiter = tokio::spawn(async move {
            let r = rx.recv().await;
            (r, Instant::now())
        });
        tokio::time::sleep(Duration::from_millis(150)).await;
        let killed = Instant::now();
        child.kill9();
        let (r, ended) = tokio::time::timeout(LIMIT, waiter).await.unwrap().unwrap();
        assert!(matches!(r, Err(Error::Disconnected)), "ended with {r:?}");
        ended.saturating_duration_since(killed)
    })
}

/// kill -9 of the last sender ends an awaiting receive with Disconnected
/// as fast as the blocking one (`dead_peer`'s bound: a median under 4 ms
/// of seven kills, where the old 20 ms look alone would take 10 ms).
#[test]
fn kill_9_of_the_sender_ends_an_awaiting_receive_at_once() {
    let rt = runtime();
    let mut times: Vec<Duration> = (0..7)
        .map(|i| {
            let s = match i % 2 {
                0 => WaitStrategy::Block,
                _ => WaitStrategy::default(),
            };
            one_async_kill(&rt, s)
        })
        .collect();
    times.sort();
    let median = times[times.len() / 2];
    eprintln!("kill -9 to Disconnected, async: {times:?}");
    assert!(
        median < Duration::from_millis(4),
        "median {median:?} from kill -9 to Disconnected (all: {times:?})"
    );
}

/// kill -9 of the receiver ends an async send waiting for room in a full
/// channel with Disconnected (as the blocking send's look at the receiver
/// every 20 ms does), not a wait for ever.
#[test]
fn kill_9_of_the_receiver_ends_an_async_send_on_a_full_channel() {
    let name = support::unique_name("afull");
    let _cleanup = ShmCleanup(vec![format!("ipcworks.chan.{name}")]);
    let mut child = KillOnDrop::spawn_ready(support::child("tokio::child", "recv-hang", &name));
    runtime().block_on(async {
        let mut tx = AsyncSender::new(Sender::open(&name).unwrap()).unwrap();
        while tx.get_mut().try_send(b"fill").is_ok() {}
        let sending = tokio::spawn(async move { tx.send(b"more").await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let killed = Instant::now();
        child.kill9();
        let r = tokio::time::timeout(Duration::from_secs(10), sending)
            .await
            .expect("the send still waits 10 s after its receiver was killed")
            .unwrap();
        assert!(matches!(r, Err(Error::Disconnected)), "{r:?}");
        eprintln!(
            "kill -9 of the receiver to Disconnected: {:?}",
            killed.elapsed()
        );
    });
}

/// A native queue's only slot claimed by a process killed before it
/// committed: an async send waiting for room gets the slot back and
/// sends (the dead claim is recovered), as the blocking send does.
#[test]
fn an_async_send_recovers_a_killed_claimants_slot() {
    let name = support::unique_name("aqdead");
    let _cleanup = ShmCleanup(vec![format!("ipcworks.queue.{name}")]);
    let q = Queue::options()
        .capacity(1)
        .max_message(64)
        .remove_on_drop(true)
        .create(&name)
        .unwrap();
    let mut child =
        KillOnDrop::spawn_ready(support::child("dead_peer::child", "claim-hang", &name));
    runtime().block_on(async {
        let q = AsyncQueue::new(q).unwrap();
        let q2 = q.clone();
        let sending = tokio::spawn(async move { q2.send(b"after", 1).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        child.kill9();
        tokio::time::timeout(Duration::from_secs(10), sending)
            .await
            .expect("the send still waits 10 s after the claimant was killed")
            .unwrap()
            .unwrap();
        assert_eq!(q.recv().await.unwrap(), (b"after".to_vec(), 1));
    });
}

/// A permit held by a process killed with SIGKILL comes back to an async
/// acquire waiting for it, as it does to a blocking one.
#[test]
fn a_killed_holders_permit_comes_back_to_an_async_acquire() {
    let name = support::unique_name("asemdead");
    let _cleanup = ShmCleanup(vec![format!("ipcworks.sem.{name}")]);
    let sem = Semaphore::create(&name, 1).unwrap();
    let mut child = KillOnDrop::spawn_ready(support::child("dead_peer::child", "sem-hold", &name));
    runtime().block_on(async {
        let sem = AsyncSemaphore::new(sem).unwrap();
        let s2 = sem.clone();
        let acquiring = tokio::spawn(async move { s2.acquire().await.map(drop) });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let killed = Instant::now();
        child.kill9();
        tokio::time::timeout(Duration::from_secs(10), acquiring)
            .await
            .expect("the acquire still waits 10 s after the holder was killed")
            .unwrap()
            .unwrap();
        eprintln!(
            "kill -9 of the holder to the async acquire: {:?}",
            killed.elapsed()
        );
    });
}

const SHORT: Duration = Duration::from_millis(30);

/// Times out under `tokio::time::timeout` (nothing to do), then completes
/// once there is.
async fn times_out<F: Future>(what: &str, f: F) {
    assert!(
        tokio::time::timeout(SHORT, f).await.is_err(),
        "{what} completed with nothing to do"
    );
}

/// Every async operation times out under `tokio::time::timeout`, takes
/// nothing when it does (no message, no permit, no half send), and
/// completes once it can.
#[test]
fn every_operation_completes_and_times_out() {
    let rt = runtime();
    rt.block_on(async {
        // Channel: recv on empty, send on full.
        let chan = Channel::builder()
            .capacity(1)
            .max_message(8)
            .anonymous()
            .unwrap();
        let mut rx = AsyncReceiver::new(chan.receiver().unwrap()).unwrap();
        let mut tx = AsyncSender::new(chan.sender().unwrap()).unwrap();
        times_out("channel recv", rx.recv()).await;
        tx.send(b"a").await.unwrap();
        let mut n = 1;
        while tx.get_mut().try_send(b"x").is_ok() {
            n += 1;
        }
        times_out("channel send on a full channel", tx.send(b"b")).await;
        assert_eq!(chan.len().unwrap(), n, "a cancelled send left something");
        let sender = tokio::spawn(async move { tx.send(b"b").await.map(|()| tx) });
        assert_eq!(rx.recv().await.unwrap(), b"a");
        let tx = sender.await.unwrap().unwrap();
        for _ in 1..n {
            assert_eq!(rx.recv().await.unwrap(), b"x");
        }
        assert_eq!(rx.recv().await.unwrap(), b"b");
        // A loan: times out while full (reserving nothing), then completes,
        // and what is written in place arrives (recv_into).
        let mut tx = tx;
        while tx.get_mut().try_send(b"y").is_ok() {}
        assert!(tokio::time::timeout(SHORT, tx.loan(4)).await.is_err());
        let queued = chan.len().unwrap();
        let mut buf = Vec::new();
        for _ in 0..queued {
            rx.recv_into(&mut buf).await.unwrap();
            assert_eq!(buf, b"y");
        }
        let mut loan = tokio::time::timeout(LIMIT, tx.loan(4))
            .await
            .unwrap()
            .unwrap();
        loan.copy_from_slice(b"loan").unwrap();
        loan.publish().unwrap();
        rx.recv_into(&mut buf).await.unwrap();
        assert_eq!(buf, b"loan");
        drop(tx);
        assert!(matches!(rx.recv().await, Err(Error::Disconnected)));

        // Native queue: recv on empty, send on full.
        let q = AsyncQueue::new(
            Queue::options()
                .capacity(1)
                .max_message(8)
                .anonymous()
                .unwrap(),
        )
        .unwrap();
        times_out("queue recv", q.recv()).await;
        q.send(b"q1", 3).await.unwrap();
        times_out("queue send on a full queue", q.send(b"q2", 4)).await;
        assert_eq!(q.get_ref().depth().unwrap(), 1);
        let q2 = q.clone();
        let sender = tokio::spawn(async move { q2.send(b"q2", 4).await });
        assert_eq!(q.recv().await.unwrap(), (b"q1".to_vec(), 3));
        sender.await.unwrap().unwrap();
        assert_eq!(q.recv().await.unwrap(), (b"q2".to_vec(), 4));
        times_out("queue recv after all", q.recv()).await;

        // Semaphore: a timed-out acquire takes no permit.
        let sem = AsyncSemaphore::new(Semaphore::anonymous(0).unwrap()).unwrap();
        times_out("semaphore acquire", sem.acquire()).await;
        times_out("semaphore wait", sem.wait()).await;
        assert_eq!(sem.get_ref().value().unwrap(), 0);
        let s2 = sem.clone();
        let poster = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            s2.post().unwrap();
        });
        let permit = sem.acquire().await.unwrap();
        poster.await.unwrap();
        assert_eq!(sem.get_ref().value().unwrap(), 0);
        drop(permit);
        assert_eq!(sem.get_ref().value().unwrap(), 1);
        sem.wait().await.unwrap();
        assert_eq!(sem.get_ref().value().unwrap(), 0);
    });
}

/// POSIX and System V queues through [`Async`]: recv times out on empty,
/// send on full (POSIX), both complete once they can; meta travels.
#[test]
fn kernel_queues_complete_and_time_out() {
    ipcworks_test_support::require!(ipcworks_test_support::need::MQUEUE);
    let rt = runtime();
    rt.block_on(async {
        let name = support::unique_name("amq");
        let q = mq::posix::Queue::options()
            .capacity(1)
            .max_message(16)
            .remove_on_drop(true)
            .create(&name)
            .unwrap();
        let other = mq::posix::Queue::open(&name).unwrap();
        let mut rx = Async::receiver(q).unwrap();
        let mut tx = Async::sender(other).unwrap();
        times_out("mq recv", rx.recv()).await;
        tx.send_with(b"m1", Meta::with_priority(7)).await.unwrap();
        times_out(
            "mq send on a full queue",
            tx.send_with(b"m2", Meta::default()),
        )
        .await;
        let sender = tokio::spawn(async move {
            tx.send_with(b"m2", Meta::with_priority(1)).await.unwrap();
        });
        let (m, meta) = rx.recv().await.unwrap();
        assert_eq!((m.as_slice(), meta.priority), (&b"m1"[..], 7));
        sender.await.unwrap();
        assert_eq!(rx.recv().await.unwrap().0, b"m2");

        let sq = mq::sysv::Queue::options()
            .remove_on_drop(true)
            .create_private()
            .unwrap();
        let id_queue = mq::sysv::Queue::open(sq.key());
        drop(id_queue);
        let mut srx = Async::receiver(mq::sysv::Receiver::new(sq, 0)).unwrap();
        times_out("sysv recv", srx.recv()).await;
        srx.get_ref().queue().send(b"s1", 5).unwrap();
        let (m, meta) = tokio::time::timeout(LIMIT, srx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((m.as_slice(), meta.msg_type), (&b"s1"[..], 5));
    });
}

/// Endpoints open as `Box<dyn AsyncMessageReceiver/Sender>`, and the
/// futures of the extension traits are `Send` (spawned on the runtime).
#[test]
fn endpoints_open_as_async_trait_objects() {
    ipcworks_test_support::require!(ipcworks_test_support::need::MQUEUE);
    let rt = runtime();
    // A System V key of this process's own (removed below).
    let sysv_key = 0x5a00_0000 | (std::process::id() as i32 & 0xff_ffff);
    for kind in ["shm", "queue", "mq", "sysv"] {
        let name = match kind {
            "sysv" => sysv_key.to_string(),
            _ => support::unique_name("aep"),
        };
        let _cleanup = ShmCleanup(vec![
            format!("ipcworks.chan.{name}"),
            format!("ipcworks.queue.{name}"),
        ]);
        let ep: Endpoint = format!("{kind}:{name}").parse().unwrap();
        rt.block_on(async {
            let opts = Options {
                create_queue: true,
                ..Options::default()
            };
            let mut rx = ipcworks::tokio::open_receiver(&ep, &opts).unwrap();
            let mut tx: Box<dyn AsyncMessageSender> =
                ipcworks::tokio::open_sender(&ep, &opts).unwrap();
            let receiving = tokio::spawn(async move {
                let got = rx.recv_with_meta().await;
                (got, rx)
            });
            tokio::time::sleep(Duration::from_millis(5)).await;
            tx.send_with(b"hello", Meta::with_priority(2))
                .await
                .unwrap();
            let (got, _rx) = tokio::time::timeout(LIMIT, receiving)
                .await
                .unwrap()
                .unwrap();
            let (m, meta) = got.unwrap();
            assert_eq!(m, b"hello", "{kind}");
            match kind {
                "shm" => {}
                "sysv" => assert_eq!(meta.msg_type, 1, "{kind}"),
                _ => assert_eq!(meta.priority, 2, "{kind}"),
            }
        });
        match kind {
            "queue" => {
                let _ = Queue::remove(&name);
            }
            "mq" => {
                let _ = mq::posix::Queue::remove(&name);
            }
            "sysv" => {
                mq::sysv::Queue::remove_key(sysv_key).unwrap();
            }
            _ => {}
        }
    }
}

/// Outside a runtime the constructors say so instead of panicking.
#[test]
fn outside_a_runtime_is_an_error() {
    let sem = Semaphore::anonymous(1).unwrap();
    let e = AsyncSemaphore::new(sem).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    assert!(e.to_string().contains("tokio runtime"), "{e}");
}
