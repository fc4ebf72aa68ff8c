//! Round trips through our pipe and Unix-stream wrappers beside the raw
//! `read`/`write` (`send`/`recv`) loop, in the same run. The echoing peer
//! is a thread using raw system calls in every case, so only our side
//! differs. Run: `cargo bench -p ipcworks --bench kernel`.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};

use divan::Bencher;
use ipcworks::frame::{FrameReader, FrameWriter, Framing};
use ipcworks::pipe;
use ipcworks::socket::{UnixDatagram, UnixStream};
use rustix::net::{RecvFlags, SendFlags};

const MSG: usize = 64;

fn main() {
    divan::main();
}

/// Echoes fixed-size messages with raw syscalls until the input ends.
fn echo_raw(input: OwnedFd, output: OwnedFd, socket: bool) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        loop {
            let n = if socket {
                rustix::net::recv(&input, &mut buf, RecvFlags::empty()).map(|(n, _)| n)
            } else {
                rustix::io::read(&input, &mut buf)
            };
            let n = match n {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let mut off = 0;
            while off < n {
                let w = if socket {
                    rustix::net::send(&output, &buf[off..n], SendFlags::NOSIGNAL)
                } else {
                    rustix::io::write(&output, &buf[off..n])
                };
                match w {
                    Ok(w) => off += w,
                    Err(_) => return,
                }
            }
        }
    })
}

fn read_exact_raw(fd: &OwnedFd, buf: &mut [u8], socket: bool) {
    let mut off = 0;
    while off < buf.len() {
        let n = if socket {
            rustix::net::recv(fd, &mut buf[off..], RecvFlags::empty())
                .unwrap()
                .0
        } else {
            rustix::io::read(fd, &mut buf[off..]).unwrap()
        };
        assert!(n > 0);
        off += n;
    }
}

#[divan::bench(sample_count = 500, sample_size = 20, max_time = 3)]
fn pipe_raw(b: Bencher) {
    let (to_peer_r, to_peer_w) = pipe::pipe().unwrap();
    let (from_peer_r, from_peer_w) = pipe::pipe().unwrap();
    let peer = echo_raw(to_peer_r.into(), from_peer_w.into(), false);
    let w: OwnedFd = to_peer_w.into();
    let r: OwnedFd = from_peer_r.into();
    let msg = [7u8; MSG];
    let mut back = [0u8; MSG];
    b.bench_local(|| {
        rustix::io::write(&w, &msg).unwrap();
        read_exact_raw(&r, &mut back, false);
    });
    drop(w);
    peer.join().unwrap();
}

#[divan::bench(sample_count = 500, sample_size = 20, max_time = 3)]
fn pipe_ipcworks(b: Bencher) {
    let (to_peer_r, mut w) = pipe::pipe().unwrap();
    let (mut r, from_peer_w) = pipe::pipe().unwrap();
    let peer = echo_raw(to_peer_r.into(), from_peer_w.into(), false);
    let msg = [7u8; MSG];
    let mut back = [0u8; MSG];
    b.bench_local(|| {
        w.write_all(&msg).unwrap();
        r.read_exact(&mut back).unwrap();
    });
    drop(w);
    peer.join().unwrap();
}

#[divan::bench(sample_count = 500, sample_size = 20, max_time = 3)]
fn pipe_ipcworks_framed(b: Bencher) {
    let (to_peer_r, w) = pipe::pipe().unwrap();
    let (r, from_peer_w) = pipe::pipe().unwrap();
    let peer = echo_raw(to_peer_r.into(), from_peer_w.into(), false);
    let mut fw = FrameWriter::new(w, Framing::Frames);
    let mut fr = FrameReader::new(r, Framing::Frames);
    let msg = [7u8; MSG];
    b.bench_local(|| {
        fw.write_frame(&msg).unwrap();
        fr.read_frame().unwrap().unwrap();
    });
    drop(fw);
    peer.join().unwrap();
}

#[divan::bench(sample_count = 500, sample_size = 20, max_time = 3)]
fn unix_stream_raw(b: Bencher) {
    let (a, p) = UnixStream::pair().unwrap();
    let p2 = p.try_clone().unwrap();
    let peer = echo_raw(p.into(), p2.into(), true);
    let fd: OwnedFd = a.into();
    let msg = [7u8; MSG];
    let mut back = [0u8; MSG];
    b.bench_local(|| {
        rustix::net::send(&fd, &msg, SendFlags::NOSIGNAL).unwrap();
        read_exact_raw(&fd, &mut back, true);
    });
    rustix::net::shutdown(fd.as_fd(), rustix::net::Shutdown::Write).unwrap();
    peer.join().unwrap();
}

#[divan::bench(sample_count = 500, sample_size = 20, max_time = 3)]
fn unix_stream_ipcworks(b: Bencher) {
    let (mut a, p) = UnixStream::pair().unwrap();
    let p2 = p.try_clone().unwrap();
    let peer = echo_raw(p.into(), p2.into(), true);
    let msg = [7u8; MSG];
    let mut back = [0u8; MSG];
    b.bench_local(|| {
        a.write_all(&msg).unwrap();
        a.read_exact(&mut back).unwrap();
    });
    a.shutdown_write().unwrap();
    peer.join().unwrap();
}

#[divan::bench(sample_count = 500, sample_size = 20, max_time = 3)]
fn unix_datagram_raw(b: Bencher) {
    let (a, p) = UnixDatagram::pair().unwrap();
    let peer = echo_datagrams(p);
    let fd: OwnedFd = a.into();
    let msg = [7u8; MSG];
    let mut back = [0u8; MSG];
    b.bench_local(|| {
        rustix::net::send(&fd, &msg, SendFlags::NOSIGNAL).unwrap();
        rustix::net::recv(&fd, &mut back, RecvFlags::empty()).unwrap();
    });
    rustix::net::send(&fd, b"", SendFlags::NOSIGNAL).unwrap();
    peer.join().unwrap();
}

#[divan::bench(sample_count = 500, sample_size = 20, max_time = 3)]
fn unix_datagram_ipcworks(b: Bencher) {
    let (a, p) = UnixDatagram::pair().unwrap();
    let peer = echo_datagrams(p);
    let msg = [7u8; MSG];
    let mut back = [0u8; MSG];
    b.bench_local(|| {
        a.send(&msg).unwrap();
        a.recv(&mut back).unwrap();
    });
    a.send(b"").unwrap();
    peer.join().unwrap();
}

/// Echoes datagrams with raw calls until an empty one arrives.
fn echo_datagrams(p: UnixDatagram) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let fd: OwnedFd = p.into();
        let mut buf = [0u8; 65536];
        loop {
            let (n, _) = rustix::net::recv(&fd, &mut buf, RecvFlags::empty()).unwrap();
            if n == 0 {
                return;
            }
            rustix::net::send(&fd, &buf[..n], SendFlags::NOSIGNAL).unwrap();
        }
    })
}

fn tcp_pair() -> (std::net::TcpStream, std::net::TcpStream) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    c.set_nodelay(true).unwrap();
    s.set_nodelay(true).unwrap();
    (c, s)
}

#[divan::bench(sample_count = 500, sample_size = 20, max_time = 3)]
fn tcp_framed_raw(b: Bencher) {
    let (c, s) = tcp_pair();
    let s2 = s.try_clone().unwrap();
    let peer = echo_raw(s.into(), s2.into(), true);
    let fd: OwnedFd = c.into();
    let mut msg = (MSG as u32).to_le_bytes().to_vec();
    msg.extend_from_slice(&[7u8; MSG]);
    let mut back = vec![0u8; msg.len()];
    b.bench_local(|| {
        rustix::net::send(&fd, &msg, SendFlags::NOSIGNAL).unwrap();
        read_exact_raw(&fd, &mut back, true);
    });
    rustix::net::shutdown(fd.as_fd(), rustix::net::Shutdown::Write).unwrap();
    peer.join().unwrap();
}

#[divan::bench(sample_count = 500, sample_size = 20, max_time = 3)]
fn tcp_framed_ipcworks(b: Bencher) {
    let (c, s) = tcp_pair();
    let s2 = s.try_clone().unwrap();
    let peer = echo_raw(s.into(), s2.into(), true);
    let c2 = c.try_clone().unwrap();
    let mut fw = FrameWriter::new(c, Framing::Frames);
    let mut fr = FrameReader::new(c2, Framing::Frames);
    let msg = [7u8; MSG];
    b.bench_local(|| {
        fw.write_frame(&msg).unwrap();
        fr.read_frame().unwrap().unwrap();
    });
    fw.get_ref().shutdown(std::net::Shutdown::Write).unwrap();
    peer.join().unwrap();
}

const BULK: usize = 64 * 1024;

#[divan::bench(sample_count = 200, sample_size = 16, max_time = 3, bytes_count = BULK)]
fn pipe_throughput_raw(b: Bencher) {
    let (r, w) = pipe::pipe().unwrap();
    let sink = drain(r.into());
    let w: OwnedFd = w.into();
    let chunk = vec![1u8; BULK];
    b.bench_local(|| {
        let mut off = 0;
        while off < chunk.len() {
            off += rustix::io::write(&w, &chunk[off..]).unwrap();
        }
    });
    drop(w);
    sink.join().unwrap();
}

#[divan::bench(sample_count = 200, sample_size = 16, max_time = 3, bytes_count = BULK)]
fn pipe_throughput_ipcworks(b: Bencher) {
    let (r, mut w) = pipe::pipe().unwrap();
    let sink = drain(r.into());
    let chunk = vec![1u8; BULK];
    b.bench_local(|| w.write_all(&chunk).unwrap());
    drop(w);
    sink.join().unwrap();
}

fn drain(fd: OwnedFd) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 20];
        while rustix::io::read(&fd, &mut buf).unwrap() > 0 {}
    })
}
