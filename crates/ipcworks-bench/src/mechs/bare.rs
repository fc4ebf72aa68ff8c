//! `bare`: the least a message of a given size can cost between these two
//! cores — a reference to read the channel against, not a mechanism to use.
//!
//! One ring per direction in shared memory, of fixed-size records: a flag's
//! cache line, then the payload's lines. The sender copies the payload in
//! and stores the record's sequence number into its flag (release); the
//! receiver spins on the flag (acquire), prefetching the payload's first
//! line meanwhile (so it crosses with the flag's, not after it), copies the
//! payload out and publishes how many records it has read, on a line of its
//! own, so that the sender may reuse them.
//!
//! That is `shm-spin`'s hand-off with nothing else: no length word, no
//! check of anything the peer wrote, no wake-ups, no dead-peer detection,
//! no several senders, no zero-copy. Where the `floor` is the cost of one
//! cache line, `bare` is the cost of the lines a message needs (two for
//! 64 bytes: a 64-byte payload and a flag cannot share one line), and of
//! the two copies every mechanism here makes: the channel's price for its
//! safety is its distance from this row.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use ipcworks::shm::Segment;

use crate::harness::{Case, Handoff, Link, Mechanism, Setup};
use crate::schema::{Metric, Wait};

/// The bare ring.
pub struct Bare;

/// Where the records start: the first page holds the reader's count.
const RECORDS_AT: usize = 4096;
/// A cache line.
const LINE: usize = 64;

/// One direction's ring, mapped.
struct Ring {
    seg: Segment,
    /// Bytes per record: the flag's line and the payload rounded up to lines.
    stride: usize,
    records: u64,
    size: usize,
}

impl Ring {
    /// Records of `size` bytes: a few for a round trip (one message is in
    /// flight), about a megabyte's worth for a stream, like the channel's
    /// rings in `shm`.
    fn layout(case: &Case) -> (usize, u64) {
        let stride = LINE + case.size.div_ceil(LINE) * LINE;
        let bytes = match case.metric {
            Metric::Rtt => stride * 8,
            Metric::Throughput => stride.saturating_mul(3).max(1 << 20),
        };
        (stride, (bytes / stride).max(2) as u64)
    }

    fn create(case: &Case) -> io::Result<Ring> {
        let (stride, records) = Ring::layout(case);
        let len = RECORDS_AT + stride * records as usize;
        let seg = Segment::anonymous(len).map_err(io::Error::from)?;
        Ring::new(seg, case)
    }

    fn new(seg: Segment, case: &Case) -> io::Result<Ring> {
        let (stride, records) = Ring::layout(case);
        if seg.len() < RECORDS_AT + stride * records as usize {
            return Err(io::Error::other("bare ring: mapping too small"));
        }
        Ok(Ring {
            seg,
            stride,
            records,
            size: case.size,
        })
    }

    /// The word at byte `off` of the mapping.
    fn word(&self, off: usize) -> &AtomicU64 {
        debug_assert!(off.is_multiple_of(8) && off + 8 <= self.seg.len());
        // SAFETY: the mapping is page-aligned and `off` is a multiple of 8
        // inside it (the reader's count at 0, flags at line starts of
        // records, all within the length checked in `new`); it lives as
        // long as `self.seg`, which `&self` borrows; both processes touch
        // these words only atomically.
        unsafe { AtomicU64::from_ptr(self.seg.as_ptr().add(off).cast::<u64>()) }
    }

    /// The reader's count: records read so far.
    fn read_count(&self) -> &AtomicU64 {
        self.word(0)
    }

    /// Offset of record `n`'s flag; its payload follows one line later.
    fn record(&self, n: u64) -> usize {
        RECORDS_AT + (n % self.records) as usize * self.stride
    }
}

/// One process's two ends: it writes `out` and reads `inn`.
struct Ends {
    out: Ring,
    inn: Ring,
    /// Messages sent, and the reader's count last seen.
    sent: u64,
    seen_read: u64,
    /// Messages received.
    got: u64,
}

impl Ends {
    fn new(out: Ring, inn: Ring) -> Ends {
        Ends {
            out,
            inn,
            sent: 0,
            seen_read: 0,
            got: 0,
        }
    }
}

impl Link for Ends {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        if msg.len() != self.out.size {
            return Err(io::Error::other("bare: message of the wrong size"));
        }
        let n = self.sent + 1;
        // Record n reuses record n - records: wait until the reader is
        // past it.
        while n - self.seen_read > self.out.records {
            self.seen_read = self.out.read_count().load(Ordering::Acquire);
            crate::harness::relax();
        }
        let at = self.out.record(n);
        // SAFETY: the payload's `size` bytes lie in the record, inside the
        // mapping (`new`); the reader reads them only after seeing the flag
        // stored below (release/acquire), and is past this record's last
        // use (the count above), so nobody reads them while they change.
        // A copy into memory another process maps is not a data race in
        // Rust's sense: that process is outside this program.
        unsafe {
            std::ptr::copy_nonoverlapping(
                msg.as_ptr(),
                self.out.seg.as_ptr().add(at + LINE),
                msg.len(),
            )
        };
        self.out.word(at).store(n, Ordering::Release);
        self.sent = n;
        Ok(())
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        let buf = buf.as_mut_slice();
        if buf.len() != self.inn.size {
            return Err(io::Error::other("bare: buffer of the wrong size"));
        }
        let n = self.got + 1;
        let at = self.inn.record(n);
        // SAFETY: pointer arithmetic only: the payload's line is in the
        // record, inside the mapping (`new`).
        let payload = unsafe { self.inn.seg.as_ptr().add(at + LINE) };
        while self.inn.word(at).load(Ordering::Acquire) != n {
            ipcworks::__bench::prefetch_read(payload);
            crate::harness::relax();
        }
        // SAFETY: in bounds (`new`); the writer finished these bytes before
        // its flag store and does not touch them again until our count
        // below passes this record.
        unsafe { std::ptr::copy_nonoverlapping(payload, buf.as_mut_ptr(), buf.len()) };
        self.inn.read_count().store(n, Ordering::Release);
        self.got = n;
        Ok(())
    }
}

impl Mechanism for Bare {
    fn name(&self) -> &'static str {
        "bare"
    }

    fn supports(&self, case: &Case) -> Result<(), String> {
        match case.wait {
            Wait::Poll => Ok(()),
            Wait::Block => Err(
                "bare only spins: it is the least the lines of a message cost, with no wake-up"
                    .into(),
            ),
        }
    }

    fn throughput_wait(&self) -> Wait {
        Wait::Poll
    }

    fn setup(&self, case: &Case) -> io::Result<Setup> {
        let (ping, pong) = (Ring::create(case)?, Ring::create(case)?);
        let fds = vec![super::fd::handed(&ping.seg)?, super::fd::handed(&pong.seg)?];
        Ok(Setup::ready(fds, vec![], Ends::new(ping, pong)))
    }

    fn peer(&self, case: &Case, mut h: Handoff) -> io::Result<Box<dyn Link>> {
        let open = |fd| {
            let seg = Segment::from_fd(fd).map_err(io::Error::from)?;
            Ring::new(seg, case)
        };
        let ping = open(h.fd(0)?)?;
        let pong = open(h.fd(1)?)?;
        Ok(Box::new(Ends::new(pong, ping)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::{set_tag, tag};

    fn case(metric: Metric, size: usize) -> Case {
        Case {
            metric,
            wait: Wait::Poll,
            size,
        }
    }

    /// Two ends over the same two mappings (the second maps them again,
    /// as the peer process does).
    fn pair(case: &Case) -> (Ends, Ends) {
        let (ping, pong) = (Ring::create(case).unwrap(), Ring::create(case).unwrap());
        let again = |r: &Ring| {
            let fd = super::super::fd::handed(&r.seg).unwrap();
            Ring::new(Segment::from_fd(fd).unwrap(), case).unwrap()
        };
        let (ping2, pong2) = (again(&ping), again(&pong));
        (Ends::new(ping, pong), Ends::new(pong2, ping2))
    }

    #[test]
    fn a_stream_arrives_whole_and_in_order_through_many_laps() {
        // 100 KB records in a 1 MiB ring: ten of them, so the sender laps
        // the ring 200 times and must wait for the reader each time.
        let c = case(Metric::Throughput, 100_000);
        let (mut a, mut b) = pair(&c);
        assert!(a.out.records < 20, "{}", a.out.records);
        const N: u32 = 2_000;
        let reader = std::thread::spawn(move || {
            let mut buf = vec![0u8; c.size];
            for i in 1..=N {
                b.recv(&mut buf).unwrap();
                assert_eq!(tag(&buf), i, "message {i} out of order");
                let fill = (i % 251) as u8;
                assert!(buf[4..].iter().all(|&x| x == fill), "message {i} garbled");
            }
        });
        let mut msg = vec![0u8; c.size];
        for i in 1..=N {
            msg[4..].fill((i % 251) as u8);
            set_tag(&mut msg, i);
            a.send(&msg).unwrap();
        }
        reader.join().unwrap();
    }

    #[test]
    fn round_trips_echo_and_wrong_sizes_are_refused() {
        let c = case(Metric::Rtt, 64);
        let (mut a, mut b) = pair(&c);
        let echo = std::thread::spawn(move || {
            let mut buf = vec![0u8; 64];
            for _ in 0..10_000 {
                b.recv(&mut buf).unwrap();
                b.send(&buf).unwrap();
            }
        });
        let (mut msg, mut back) = ([7u8; 64], vec![0u8; 64]);
        for i in 1..=10_000u32 {
            set_tag(&mut msg, i);
            a.send(&msg).unwrap();
            a.recv(&mut back).unwrap();
            assert_eq!(back, msg);
        }
        echo.join().unwrap();
        assert!(a.send(&[0u8; 65]).is_err());
        assert!(a.recv(&mut vec![0u8; 63]).is_err());
    }
}
