//! Two processes, pinned to cores 0 and 1, bounce a 64-byte message through
//! two shared-memory channels; beside it, the floor: the same two processes
//! bouncing one cache line, and the least any 64-byte message can cost: a
//! bare two-line hand-off (the payload's line, then a flag's line, the
//! payload's line prefetched while the receiver waits, and nothing else:
//! no checks, no wake-ups, no recovery). Prints medians of per-round-trip
//! times, and the ratios the channel's speed targets use.
//!
//! `cargo run --release -p ipcworks --example channel_ping_pong [spin|default|block]`
//!
//! The child is this program again, given the channels' descriptors: the
//! way to open a channel from a child ([`Channel::inheritable_fd`] in the
//! parent, [`Channel::from_fd`] in the child).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ipcworks::channel::{Channel, WaitStrategy};
use ipcworks::shm::Segment;

const TRIPS: usize = 200_000;

/// Where the two bare rings live in the floor's page (the floor's word is
/// at 0): records of two lines each, a flag line then a payload line.
const BARE_THERE: usize = 1024;
const BARE_BACK: usize = 2048;
const BARE_RECORDS: usize = 8;

/// One direction of the bare two-line hand-off: the sender copies the
/// payload into its line, then stores the message's number into the flag
/// line (release); the receiver spins on the flag (acquire), prefetching
/// the payload's line, then copies the payload out.
struct Bare<'a> {
    seg: &'a Segment,
    base: usize,
    n: u64,
}

impl Bare<'_> {
    fn flag(&self, n: u64) -> &AtomicU64 {
        let off = self.base + (n as usize % BARE_RECORDS) * 128;
        // SAFETY: base + 8 * 128 <= 3072 < 4096, the segment's length; the
        // offset is 8-aligned (the mapping is page-aligned); both processes
        // touch the word only atomically.
        unsafe { &*(self.seg.as_ptr().add(off) as *const AtomicU64) }
    }

    fn payload(&self, n: u64) -> *mut u8 {
        let off = self.base + (n as usize % BARE_RECORDS) * 128 + 64;
        // SAFETY: in bounds, as in `flag`.
        unsafe { self.seg.as_ptr().add(off) }
    }

    fn send(&mut self, msg: &[u8; 64]) {
        self.n += 1;
        // SAFETY: 64 bytes inside the segment; the receiver reads this
        // line only after seeing the flag below (release/acquire), and the
        // sender writes it again only a lap later, after the receiver
        // answered every message of this lap.
        unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), self.payload(self.n), 64) };
        self.flag(self.n).store(self.n, Ordering::Release);
    }

    fn recv(&mut self, buf: &mut [u8; 64]) {
        self.n += 1;
        while self.flag(self.n).load(Ordering::Acquire) != self.n {
            // Pull the payload's line over while waiting, as the channel
            // does: it then crosses together with the flag's, not after.
            prefetch(self.payload(self.n));
            std::hint::spin_loop();
        }
        // SAFETY: as in `send`: the sender finished these 64 bytes before
        // its flag store, and does not touch them again this lap.
        unsafe { std::ptr::copy_nonoverlapping(self.payload(self.n), buf.as_mut_ptr(), 64) };
    }
}

/// Asks for the cache line holding `addr` (`prefetcht0`; nothing on other
/// processors).
fn prefetch(addr: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is part of the x86_64 baseline, and a prefetch is no
    // memory access: it neither faults nor races, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(addr.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}

fn pin(core: usize) {
    let mut set = rustix::thread::CpuSet::new();
    set.set(core);
    let _ = rustix::thread::sched_setaffinity(None, &set);
}

fn strategy(name: &str) -> WaitStrategy {
    match name {
        "spin" => WaitStrategy::Spin,
        "block" => WaitStrategy::Block,
        _ => WaitStrategy::default(),
    }
}

fn fd(arg: &str) -> OwnedFd {
    // SAFETY: the parent passed us this inherited descriptor number.
    unsafe { OwnedFd::from_raw_fd(arg.parse().expect("descriptor number")) }
}

fn word(seg: &Segment) -> &AtomicU64 {
    // SAFETY: the segment is at least 8 bytes, page-aligned, and outlives the
    // reference; atomics tolerate the other process's writes.
    unsafe { &*(seg.as_ptr() as *const AtomicU64) }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> ipcworks::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child") {
        pin(1);
        let wait = strategy(&args[2]);
        let there = Channel::builder().wait(wait).from_fd(fd(&args[3]))?;
        let back = Channel::builder().wait(wait).from_fd(fd(&args[4]))?;
        let floor = Segment::from_fd(fd(&args[5]))?;
        // Floor first: answer odd values with the next even one.
        let w = word(&floor);
        loop {
            let v = w.load(Ordering::Acquire);
            if v == u64::MAX {
                break;
            }
            if v & 1 == 1 {
                w.store(v + 1, Ordering::Release);
            }
            std::hint::spin_loop();
        }
        // Then the bare two-line hand-off: echo TRIPS messages.
        let mut bin = Bare {
            seg: &floor,
            base: BARE_THERE,
            n: 0,
        };
        let mut bout = Bare {
            seg: &floor,
            base: BARE_BACK,
            n: 0,
        };
        let mut msg = [0u8; 64];
        for _ in 0..TRIPS {
            bin.recv(&mut msg);
            bout.send(&msg);
        }
        let (mut rx, mut tx) = (there.receiver()?, back.sender()?);
        let mut buf = Vec::new();
        while rx.recv_into(&mut buf)? > 0 {
            tx.send(&buf)?;
        }
        return Ok(());
    }
    let name = args.get(1).cloned().unwrap_or_else(|| "default".into());
    let wait = strategy(&name);
    pin(0);
    let there = Channel::builder()
        .wait(wait)
        .capacity_bytes(4096)
        .max_message(64)
        .anonymous()?;
    let back = Channel::builder()
        .wait(wait)
        .capacity_bytes(4096)
        .max_message(64)
        .anonymous()?;
    let floor = Segment::anonymous(4096)?;
    let fds = [
        there.inheritable_fd()?,
        back.inheritable_fd()?,
        floor.inheritable_fd()?,
    ];
    let mut child = Command::new(std::env::current_exe().expect("current_exe"))
        .arg("child")
        .arg(&name)
        .args(fds.iter().map(|f| f.as_raw_fd().to_string()))
        .spawn()
        .expect("spawn the child");
    drop(fds);
    let result = measure(&there, &back, &floor);
    // Reap the child on every path (it exits once the floor's and the
    // channel's stop marks arrive, or when its peer vanishes).
    if result.is_err() {
        let _ = child.kill();
    }
    child.wait().expect("wait for the child");
    let (floor_median, bare_median, chan_median) = result?;
    let ratio = |d: Duration| d.as_secs_f64() / floor_median.as_secs_f64();
    println!("round trip medians, 64 B (x floor):");
    println!("  floor, one cache line        {floor_median:>10?}  1.00x");
    println!(
        "  bare two-line hand-off       {bare_median:>10?}  {:.2}x",
        ratio(bare_median)
    );
    println!(
        "  channel ({name:<7})            {chan_median:>10?}  {:.2}x",
        ratio(chan_median)
    );
    Ok(())
}

/// Median round trips: the floor, the bare two-line hand-off, then the
/// channel.
fn measure(
    there: &Channel,
    back: &Channel,
    floor: &Segment,
) -> ipcworks::Result<(Duration, Duration, Duration)> {
    let w = word(floor);
    let mut times = Vec::with_capacity(TRIPS);
    let mut n = 0u64;
    for _ in 0..TRIPS {
        let t = Instant::now();
        n += 2;
        w.store(n - 1, Ordering::Release);
        while w.load(Ordering::Acquire) != n {
            std::hint::spin_loop();
        }
        times.push(t.elapsed());
    }
    w.store(u64::MAX, Ordering::Release);
    let floor_median = median(times);

    let mut bout = Bare {
        seg: floor,
        base: BARE_THERE,
        n: 0,
    };
    let mut bin = Bare {
        seg: floor,
        base: BARE_BACK,
        n: 0,
    };
    let msg = [0x5Au8; 64];
    let mut got = [0u8; 64];
    let mut times = Vec::with_capacity(TRIPS);
    for _ in 0..TRIPS {
        let t = Instant::now();
        bout.send(&msg);
        bin.recv(&mut got);
        times.push(t.elapsed());
    }
    if got != msg {
        // An error, not a panic: the caller then kills the child.
        return Err(ipcworks::Error::InvalidArgument(
            "the bare hand-off garbled the message".into(),
        ));
    }
    let bare_median = median(times);

    let (mut tx, mut rx) = (there.sender()?, back.receiver()?);
    let mut times = Vec::with_capacity(TRIPS);
    for _ in 0..TRIPS {
        let t = Instant::now();
        tx.send(&msg)?;
        rx.recv_slice(&mut got)?;
        times.push(t.elapsed());
    }
    tx.send(&[])?;
    Ok((floor_median, bare_median, median(times)))
}
