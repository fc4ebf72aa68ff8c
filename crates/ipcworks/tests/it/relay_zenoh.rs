//! The relay pair over Zenoh between real processes (`bridge::relay`,
//! what `ipcworks relay queue:A zenoh:KEY` and `ipcworks relay zenoh:KEY
//! queue:B` run), loopback only, scouting and gossip off: a producer
//! process fills queue A, a near relay process moves it over Zenoh to a
//! far relay process, which delivers into queue B, which a consumer
//! process drains. Relays are killed with SIGKILL at their abort points
//! and at random moments and restarted; the link between them (a TCP
//! proxy process) is cut for 5 s. Every message is numbered, checksummed,
//! of mixed size and priority; the test counts what arrived once, twice
//! or never, checks the order within each priority, and samples every
//! relay's memory.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipcworks::bridge::relay::{Destination, QueueToZenoh, RelayOptions, ZenohToQueue};
use ipcworks::bridge::{Config, Session};
use ipcworks::queue::Queue;

use ipcworks::endpoint::relay::pair;
use ipcworks::endpoint::{Endpoint, Options, open_receiver};
use ipcworks::message::MessageReceiver;

use crate::mq::{MqCleanup, new_sysv_queue};
use crate::relay::{END, Rng, consumed, judge, message, prio_of, unmessage};
use crate::support::{self, KillOnDrop};

/// Most memory a relay (or the proxy) may use: generous, to catch
/// unbounded growth (a relay piling messages up), not to measure.
const RSS_LIMIT_KIB: u64 = 256 * 1024;

fn options() -> RelayOptions {
    RelayOptions {
        reply_timeout: Duration::from_secs(2),
        ..RelayOptions::default()
    }
}

fn quiet() -> ipcworks::bridge::relay::Events {
    Arc::new(|e| eprintln!("relay: {e}"))
}

#[test]
fn child() {
    support::as_child!(|role, arg| {
        let a: Vec<&str> = arg.split(' ').collect();
        match role {
            // far KEY B PORT: listens on 127.0.0.1:PORT, delivers into B.
            "far" => {
                let mut c = Config::new();
                c.listen(format!("tcp/127.0.0.1:{}", a[2]));
                let s = Session::open(&c).unwrap();
                let q = Queue::open(a[1]).unwrap();
                let mut r =
                    ZenohToQueue::open(Destination::Queue(q), s, a[0], options(), quiet()).unwrap();
                println!("ready");
                r.run(None).unwrap();
            }
            // near A KEY PORT: connects to 127.0.0.1:PORT, relays A.
            "near" => {
                let mut c = Config::new();
                c.connect(format!("tcp/127.0.0.1:{}", a[2]));
                let s = Session::open(&c).unwrap();
                let q = Queue::open(a[0]).unwrap();
                let mut r = QueueToZenoh::open(q, s, a[1], options(), quiet()).unwrap();
                println!("ready");
                r.run(None).unwrap();
            }
            // far-kernel KEY ENDPOINT PORT: the far relay into a kernel queue.
            "far-kernel" => {
                let mut opts = Options::default();
                opts.zenoh.listen = vec![format!("tcp/127.0.0.1:{}", a[2])];
                let to: Endpoint = a[1].parse().unwrap();
                let mut r = pair::far(a[0], &to, &opts, options(), quiet()).unwrap();
                println!("ready");
                r.run(None).unwrap();
            }
            // consume-any ENDPOINT LOG: as relay's consume, from any endpoint.
            "consume-any" => {
                let ep: Endpoint = a[0].parse().unwrap();
                let mut rx = open_receiver(&ep, &Options::default()).unwrap();
                let mut log = String::new();
                loop {
                    let (m, _) = rx.recv_with_meta().unwrap();
                    let (seq, prio) = unmessage(&m);
                    if seq == END {
                        break;
                    }
                    log.push_str(&format!("{seq} {prio}\n"));
                }
                std::fs::write(a[1], log).unwrap();
            }
            // proxy PORT TARGET: forwards every TCP connection to TARGET.
            "proxy" => proxy(a[0].parse().unwrap(), a[1].parse().unwrap()),
            // paced A N: messages 0..N into A, a millisecond apart, then END.
            "paced" => {
                let q = Queue::open(a[0]).unwrap();
                let n: u32 = a[1].parse().unwrap();
                for seq in 0..n {
                    q.send(&message(seq), prio_of(seq)).unwrap();
                    std::thread::sleep(Duration::from_millis(1));
                }
                q.send(&message(END), 0).unwrap();
            }
            other => support::unknown_role(other),
        }
    });
}

/// A TCP forwarder on 127.0.0.1:`port` to 127.0.0.1:`target`.
fn proxy(port: u16, target: u16) {
    let l = TcpListener::bind(("127.0.0.1", port)).unwrap();
    println!("ready");
    for client in l.incoming() {
        let Ok(client) = client else { continue };
        let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
            continue;
        };
        let pump = |mut from: TcpStream, mut to: TcpStream| {
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = from.read(&mut buf) {
                    if n == 0 || to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = to.shutdown(Shutdown::Both);
                let _ = from.shutdown(Shutdown::Both);
            });
        };
        pump(client.try_clone().unwrap(), server.try_clone().unwrap());
        pump(server, client);
    }
}

/// A port free now on 127.0.0.1.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Resident memory of process `pid` in KiB (`VmRSS` in
/// `/proc/PID/status`), if it still runs.
fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Queues A and B, the consumer's log, and the pair's key and ports;
/// removes the queues and the log when dropped.
struct Pair {
    a: String,
    b: String,
    key: String,
    log: std::path::PathBuf,
    /// Where the far relay listens.
    far_port: u16,
    /// Where the near relay connects (the far port, or a proxy's).
    near_port: u16,
    /// The highest memory seen per role.
    rss: std::collections::HashMap<&'static str, u64>,
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = Queue::remove(&self.a);
        let _ = Queue::remove(&self.b);
        let _ = std::fs::remove_file(&self.log);
    }
}

impl Pair {
    fn new(capacity_a: usize, proxied: bool) -> Pair {
        let (a, b) = (support::unique_name("za"), support::unique_name("zb"));
        for (name, cap) in [(&a, capacity_a), (&b, 64)] {
            Queue::options()
                .capacity(cap)
                .max_message(2048)
                .create(name)
                .unwrap();
        }
        let far_port = free_port();
        Pair {
            key: format!("ipcworks-test/{}/{}", std::process::id(), a),
            log: std::env::temp_dir().join(format!("{b}.log")),
            a,
            b,
            far_port,
            near_port: if proxied { free_port() } else { far_port },
            rss: Default::default(),
        }
    }

    fn far(&self, abort_at: Option<&str>) -> KillOnDrop {
        let arg = format!("{} {} {}", self.key, self.b, self.far_port);
        spawn("far", &arg, abort_at)
    }

    fn near(&self, abort_at: Option<&str>) -> KillOnDrop {
        let arg = format!("{} {} {}", self.a, self.key, self.near_port);
        spawn("near", &arg, abort_at)
    }

    fn proxy(&self) -> KillOnDrop {
        let arg = format!("{} {}", self.near_port, self.far_port);
        spawn("proxy", &arg, None)
    }

    fn producer(&self, n: u32) -> KillOnDrop {
        let arg = format!("queue:{} {n}", self.a);
        KillOnDrop::spawn(support::child("relay::child", "produce", &arg))
    }

    fn paced_producer(&self, n: u32) -> KillOnDrop {
        let arg = format!("{} {n}", self.a);
        KillOnDrop::spawn(support::child("relay_zenoh::child", "paced", &arg))
    }

    fn consumer(&self) -> KillOnDrop {
        let arg = format!("{} {}", self.b, self.log.display());
        KillOnDrop::spawn(support::child("relay::child", "consume", &arg))
    }

    /// Records the memory of `p` (as `role`) and checks the bound.
    fn sample(&mut self, role: &'static str, p: &KillOnDrop) {
        if let Some(kib) = p.0.as_ref().and_then(|c| rss_kib(c.id())) {
            let max = self.rss.entry(role).or_default();
            *max = (*max).max(kib);
            assert!(kib < RSS_LIMIT_KIB, "{role} uses {kib} KiB");
        }
    }

    /// What the consumer logged once it ended: `(seq, prio)`.
    fn arrived(&self, consumer: &mut KillOnDrop) -> Vec<(u32, u32)> {
        consumed(consumer, &self.log, Duration::from_secs(240))
    }

    /// Everything once, in order within each priority; A empty, B's
    /// table holds nothing of A's once the near relay forgot it all.
    fn judge(&self, arrived: &[(u32, u32)], n: u32) {
        let (dups, missing) = judge(arrived, n);
        assert!(missing.is_empty(), "lost: {missing:?}");
        assert_eq!(dups, 0, "duplicates");
        // The near relay commits the last claims when the far relay's
        // acknowledgement reaches it, which may be after the consumer has
        // the messages: wait for it (generously), with the relays alive.
        let a = Queue::open(&self.a).unwrap();
        let until = Instant::now() + Duration::from_secs(30);
        let mut s = a.stats().unwrap();
        while (s.depth, s.reading, s.writing) != (0, 0, 0) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
            s = a.stats().unwrap();
        }
        assert_eq!((s.depth, s.reading, s.writing), (0, 0, 0), "{s:?}");
    }
}

fn spawn(role: &str, arg: &str, abort_at: Option<&str>) -> KillOnDrop {
    let mut cmd = support::child("relay_zenoh::child", role, arg);
    match abort_at {
        Some(p) => cmd.env(ipcworks::fault::ABORT_VAR, p),
        None => cmd.env_remove(ipcworks::fault::ABORT_VAR),
    };
    KillOnDrop::spawn_ready(cmd)
}

/// 100,000 messages of mixed sizes (16 B to 1.8 KiB) and priorities,
/// queue → Zenoh → queue between two relay processes: each arrives once,
/// whole, in order within its priority; the relays' memory stays bounded.
#[test]
fn relay_zenoh_100k_mixed_messages_arrive_once_in_order() {
    const N: u32 = 100_000;
    let mut p = Pair::new(256, false);
    let far = p.far(None);
    let near = p.near(None);
    let mut consumer = p.consumer();
    let mut producer = p.producer(N);
    let start = Instant::now();
    while producer.0.as_mut().unwrap().try_wait().unwrap().is_none() {
        p.sample("near", &near);
        p.sample("far", &far);
        assert!(start.elapsed() < Duration::from_secs(240), "too slow");
        std::thread::sleep(Duration::from_millis(200));
    }
    let arrived = p.arrived(&mut consumer);
    println!(
        "queue -> zenoh -> queue: {N} messages in {:?}, peak RSS {:?} KiB",
        start.elapsed(),
        p.rss
    );
    assert_eq!(arrived.len(), N as usize);
    p.judge(&arrived, N);
}

/// Each abort point of both relays, hit in turn: the near relay killed
/// after claiming a batch, after sending it, after the acknowledgement,
/// after removing it locally; the far relay after receiving a batch,
/// inside its queue's relayed send (entry pending, message published)
/// and after storing the batch before replying. Each killed relay is
/// restarted; nothing is lost, nothing duplicated.
#[test]
fn relay_zenoh_abort_points_of_both_relays_hit_in_turn() {
    const N: u32 = 1500;
    let p = Pair::new(2048, false);
    let mut producer = p.producer(N);
    assert!(producer.wait_for(Duration::from_secs(120)).success());
    let mut consumer = p.consumer();
    let mut far = p.far(None);
    for point in [
        "relay-received",
        "relay-sent",
        "relay-acknowledged",
        "relay-committed",
    ] {
        let mut near = p.near(Some(&format!("{point}:2")));
        let st = near.wait_for(Duration::from_secs(120));
        assert_eq!(st.signal(), Some(9), "near {point}: {st:?}");
    }
    far.kill9();
    // Started once the first far relay of this phase listens (a near
    // relay connects to a listening far one); it outlives them all.
    let mut near: Option<KillOnDrop> = None;
    for point in [
        "relay-far-received",
        "relayed-pending",
        "relayed-published",
        "relay-stored",
    ] {
        let mut far = p.far(Some(&format!("{point}:2")));
        if near.is_none() {
            near = Some(p.near(None));
        }
        let st = far.wait_for(Duration::from_secs(120));
        assert_eq!(st.signal(), Some(9), "far {point}: {st:?}");
    }
    let _far = p.far(None);
    let arrived = p.arrived(&mut consumer);
    p.judge(&arrived, N);
    drop(near);
}

/// A 5-second link cut (the TCP proxy between the relays killed, then
/// started again) while a producer keeps sending, then SIGKILL of either
/// relay at 20 random moments, each restarted: nothing lost, nothing
/// duplicated; during the cut the source queue fills (its producer
/// blocks) and no relay's memory grows.
#[test]
fn relay_zenoh_link_cut_and_20_random_kills_lose_and_duplicate_nothing() {
    const N: u32 = 30_000;
    const KILLS: usize = 20;
    let mut rng = Rng::new();
    let mut p = Pair::new(64, true);
    let mut far = p.far(None);
    let mut proxy = p.proxy();
    let mut near = p.near(None);
    let mut consumer = p.consumer();
    let mut producer = p.paced_producer(N);
    std::thread::sleep(Duration::from_millis(1500));
    // The cut.
    proxy.kill9();
    let cut = Instant::now();
    while cut.elapsed() < Duration::from_secs(5) {
        p.sample("near", &near);
        p.sample("far", &far);
        std::thread::sleep(Duration::from_millis(250));
    }
    let a = Queue::open(&p.a).unwrap().stats().unwrap();
    assert_eq!(
        a.depth + a.reading,
        a.capacity,
        "the source queue fills while the link is cut: {a:?}"
    );
    proxy = p.proxy();
    // The kills.
    let mut killed = (0, 0);
    for _ in 0..KILLS {
        std::thread::sleep(Duration::from_millis(50 + rng.below(400)));
        p.sample("near", &near);
        p.sample("far", &far);
        if rng.below(2) == 0 {
            near.kill9();
            near = p.near(None);
            killed.0 += 1;
        } else {
            far.kill9();
            far = p.far(None);
            killed.1 += 1;
        }
    }
    let arrived = p.arrived(&mut consumer);
    assert!(producer.wait_for(Duration::from_secs(60)).success());
    println!(
        "link cut 5 s, kills near/far {killed:?}: {} arrivals, peak RSS {:?} KiB",
        arrived.len(),
        p.rss
    );
    p.judge(&arrived, N);
    drop((near, far, proxy));
}

/// queue → Zenoh → a kernel queue (`to`): the far relay records each id
/// in its relay-state queue after the kernel's send, so a kill right
/// between the two (the abort point `relay-kernel-sent`) delivers that
/// one message twice, and random kills of the far relay at most one each;
/// nothing is lost.
fn into_kernel_queue(to: Endpoint, state: &str) {
    const N: u32 = 1000;
    const KILLS: usize = 5;
    let mut rng = Rng::new();
    let p = Pair::new(1024, false);
    let _state = StateCleanup(state.to_string());
    let mut producer = p.producer(N);
    assert!(producer.wait_for(Duration::from_secs(120)).success());
    let far_arg = format!("{} {to} {}", p.key, p.far_port);
    let mut far = spawn("far-kernel", &far_arg, Some("relay-kernel-sent:100"));
    let _near = p.near(None);
    let log = p.log.display().to_string();
    let mut consumer = KillOnDrop::spawn(support::child(
        "relay_zenoh::child",
        "consume-any",
        &format!("{to} {log}"),
    ));
    let st = far.wait_for(Duration::from_secs(120));
    assert_eq!(st.signal(), Some(9), "far relay-kernel-sent: {st:?}");
    for _ in 0..KILLS {
        let mut far = spawn("far-kernel", &far_arg, None);
        std::thread::sleep(Duration::from_millis(100 + rng.below(300)));
        far.kill9();
    }
    let _far = spawn("far-kernel", &far_arg, None);
    let arrived = p.arrived(&mut consumer);
    let (dups, missing) = judge(&arrived, N);
    println!("queue -> zenoh -> {to}: 1 abort + {KILLS} kills: {dups} duplicates");
    assert!(missing.is_empty(), "lost: {missing:?}");
    assert!(
        dups >= 1,
        "the abort between send and record duplicated nothing"
    );
    assert!(
        dups <= 1 + KILLS,
        "{dups} duplicates for {} kills",
        1 + KILLS
    );
}

/// Removes a far relay's relay-state queue.
struct StateCleanup(String);

impl Drop for StateCleanup {
    fn drop(&mut self) {
        let _ = Queue::remove(&self.0);
    }
}

#[test]
fn relay_zenoh_into_a_posix_queue_duplicates_at_most_one_per_far_kill() {
    let name = support::unique_name("zmq");
    let _guard = MqCleanup(vec![name.clone()]);
    ipcworks::mq::posix::Queue::options()
        .capacity(8)
        .max_message(2048)
        .create(&name)
        .unwrap();
    into_kernel_queue(
        Endpoint::Mq(name.clone()),
        &format!("relay-state-mq-{name}"),
    );
}

#[test]
fn relay_zenoh_into_a_system_v_queue_duplicates_at_most_one_per_far_kill() {
    let (q, _guard) = new_sysv_queue();
    let state = format!("relay-state-sysv-{:#x}", q.key() as u32);
    into_kernel_queue(Endpoint::Sysv(q.key()), &state);
}

/// A batch query as a near relay encodes it (`src/relay_wire.rs`):
/// "IPCR", version 1, kind 2, via, deadline, the ids to forget, no
/// messages.
fn forget_query(via: u64, ids: u64) -> Vec<u8> {
    let mut q = b"IPCR\x01\x02".to_vec();
    q.extend_from_slice(&via.to_le_bytes());
    q.extend_from_slice(&1000u32.to_le_bytes());
    q.extend_from_slice(&u32::try_from(ids).unwrap().to_le_bytes());
    for seq in 0..ids {
        q.extend_from_slice(&via.to_le_bytes());
        q.extend_from_slice(&seq.to_le_bytes());
    }
    q.extend_from_slice(&0u32.to_le_bytes());
    q
}

/// A hostile near relay's batch that asks the far relay to forget more
/// ids than its queue's table holds (each id a look under the table's
/// lock, which the queue's relayed sends wait for) is refused with the
/// reason, before anything is looked up; one as long as the table is
/// answered as usual.
#[test]
fn relay_zenoh_far_refuses_a_forget_list_longer_than_its_table() {
    use ipcworks::bridge::zenoh::Wait;
    let p = Pair::new(64, false);
    let _far = p.far(None);
    let mut c = Config::new();
    c.connect(format!("tcp/127.0.0.1:{}", p.far_port));
    let s = Session::open(&c).unwrap();
    let window = Queue::open(&p.b).unwrap().relay_window() as u64;
    // The far relay's answer to `payload`: Ok(reply bytes) or Err(the
    // refusal's text), retried while the route to it is still forming.
    let ask = |payload: Vec<u8>| -> Result<Vec<u8>, String> {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let replies = s
                .zenoh()
                .get(format!("{}/@ipcworks/relay", p.key))
                .payload(payload.clone())
                .timeout(Duration::from_secs(5))
                .wait()
                .unwrap();
            if let Ok(r) = replies.recv() {
                return match r.result() {
                    Ok(sample) => Ok(sample.payload().to_bytes().into_owned()),
                    Err(e) => Err(String::from_utf8_lossy(&e.payload().to_bytes()).into_owned()),
                };
            }
            assert!(Instant::now() < until, "the far relay never answered");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let ok = ask(forget_query(7, window)).expect("a forget list as long as the table");
    assert!(ok.starts_with(b"IPCR\x01\x02"), "{ok:?}");
    let why = ask(forget_query(7, 100_000)).expect_err("a forget list of 100,000 ids");
    assert!(
        why.contains("forget 100000 ids") && why.contains(&format!("({window})")),
        "{why}"
    );
}
