//! Unix and TCP sockets between real processes: descriptor passing, peer
//! credentials, socket file modes and stale files, message sockets, the
//! event-driven server under bad clients, and broken connections.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipcworks::Error;
use ipcworks::endpoint::{Endpoint, Options, open_sender};
use ipcworks::frame::{FrameReader, FrameWriter, Framing};
use ipcworks::message::Meta;
use ipcworks::pipe::{self, PipeWriter};
use ipcworks::shm::Segment;
use ipcworks::socket::{
    Peer, ServerOptions, ServerStats, UnixDatagram, UnixListener, UnixSeqpacket, UnixStream,
};

use crate::pipe::TmpPath;
use crate::support::{self, KillOnDrop};

#[test]
fn child() {
    support::as_child!(|role, arg| {
        match role {
            // Connects to ARG, receives a segment fd and a pipe end, writes a
            // marker into each, then says "done".
            "take-fds" => {
                let mut s = UnixStream::connect(&arg).unwrap();
                let mut buf = [0u8; 16];
                let (n, mut fds) = s.recv_fds(&mut buf).unwrap();
                assert_eq!(&buf[..n], b"fds");
                assert_eq!(fds.len(), 2);
                let pipe_end = fds.pop().unwrap();
                let seg = Segment::from_fd(fds.pop().unwrap()).unwrap();
                // SAFETY: in bounds (segment of at least 8 bytes), page aligned.
                let word = unsafe { &*(seg.as_ptr() as *const std::sync::atomic::AtomicU64) };
                word.store(0xFEED, Ordering::SeqCst);
                PipeWriter::from(pipe_end)
                    .write_all(b"through the passed pipe")
                    .unwrap();
                s.write_all(b"done").unwrap();
            }
            // Binds a Unix listener at PATH under umask MASK ("MASK:PATH") and
            // leaves the file for the parent to inspect.
            "bind-umask" => {
                let (mask, path) = arg.split_once(':').unwrap();
                rustix::process::umask(rustix::fs::Mode::from_raw_mode(mask.parse().unwrap()));
                let mut l = UnixListener::bind(path).unwrap();
                l.persist();
            }
            // With the fatal SIGPIPE default restored: writes to a Unix socket
            // and to a TCP connection whose peers are gone; must get errors.
            "socket-peer-gone" => {
                support::default_sigpipe();
                let (a, b) = UnixStream::pair().unwrap();
                drop(b);
                let e = (&a).write(b"x").unwrap_err();
                assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe);
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let port = l.local_addr().unwrap().port();
                let ep = Endpoint::Tcp {
                    host: "127.0.0.1".into(),
                    port,
                };
                let mut tx = open_sender(&ep, &Options::default()).unwrap();
                drop(l.accept().unwrap());
                drop(l);
                let mut failed = None;
                for _ in 0..1000 {
                    if let Err(e) = tx.send_with(&[b'x'; 1000], Meta::default()) {
                        failed = Some(e);
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                assert!(matches!(failed, Some(Error::Disconnected)), "{failed:?}");
                std::process::exit(42);
            }
            // Typed requests over a Unix stream: replies (n + 1, upper-cased).
            "typed-echo" => {
                let s = UnixStream::connect(&arg).unwrap();
                let mut r = FrameReader::new(&s, Framing::Frames);
                let mut w = FrameWriter::new(&s, Framing::Frames);
                while let Some((n, text)) = r.recv_value::<(u32, String)>().unwrap() {
                    w.send_value(&(n + 1, text.to_uppercase())).unwrap();
                }
            }
            other => support::unknown_role(other),
        }
    });
}

#[test]
fn passed_descriptors_work_in_the_child_and_peer_cred_names_it() {
    let path = TmpPath::new("fds.sock");
    let l = UnixListener::bind(&path.0).unwrap();
    let mut c = KillOnDrop::spawn(support::child(
        "socket::child",
        "take-fds",
        path.0.to_str().unwrap(),
    ));
    let mut s = l.accept().unwrap();
    let cred = s.peer_cred().unwrap();
    assert_eq!(cred.pid, c.pid(), "SO_PEERCRED names the child");
    assert_eq!(cred.uid, rustix::process::geteuid().as_raw());

    let seg = Segment::anonymous(4096).unwrap();
    let (r, w) = pipe::pipe().unwrap();
    s.send_fds(b"fds", &[seg.as_fd(), w.as_fd()]).unwrap();
    drop(w);
    let mut done = [0u8; 4];
    s.read_exact(&mut done).unwrap();
    assert_eq!(&done, b"done");
    let mut text = String::new();
    let mut r = r;
    r.read_to_string(&mut text).unwrap();
    assert_eq!(text, "through the passed pipe");
    // SAFETY: in bounds, aligned; the child is done writing.
    let word = unsafe { &*(seg.as_ptr() as *const std::sync::atomic::AtomicU64) };
    assert_eq!(word.load(Ordering::SeqCst), 0xFEED);
    assert!(c.wait_for(Duration::from_secs(30)).success());
    drop(l);
    assert!(!path.0.exists(), "socket file removed on drop");
}

#[test]
fn socket_file_is_0600_under_any_umask() {
    for mask in [0o000u32, 0o077, 0o022] {
        let path = TmpPath::new("mode.sock");
        let mut c = KillOnDrop::spawn(support::child(
            "socket::child",
            "bind-umask",
            &format!("{mask}:{}", path.0.display()),
        ));
        let pid = c.pid();
        assert!(c.wait_for(Duration::from_secs(30)).success());
        let mode = std::fs::symlink_metadata(&path.0)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "umask {mask:o}");
        // The private directory used for binding is gone.
        let dir = path.0.parent().unwrap();
        let leftover = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!(".iw{pid:x}."))
            });
        assert!(!leftover);
    }
}

#[test]
fn stale_socket_is_replaced_live_one_never_displaced() {
    let path = TmpPath::new("stale.sock");
    // A stale file, as a dead server leaves it.
    ipcworks_test_support::stale_socket(&path.0);
    assert!(path.0.exists());
    let live = UnixListener::bind(&path.0).expect("stale socket replaced");
    // A second server is refused while the first listens.
    match UnixListener::bind(&path.0) {
        Err(Error::AlreadyExists { .. }) => {}
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    // The first still works.
    let t = std::thread::spawn({
        let p = path.0.clone();
        move || {
            let mut c = UnixStream::connect(&p).unwrap();
            c.write_all(b"still here").unwrap();
        }
    });
    // (The refused bind probed with a connection of its own: skip it.)
    let got = loop {
        let mut s = live.accept().unwrap();
        let mut got = String::new();
        s.read_to_string(&mut got).unwrap();
        if !got.is_empty() {
            break got;
        }
    };
    assert_eq!(got, "still here");
    t.join().unwrap();

    // Not a socket: refused and left alone.
    let file = TmpPath::new("notsock");
    std::fs::write(&file.0, b"keep").unwrap();
    assert!(matches!(
        UnixListener::bind(&file.0),
        Err(Error::Refused { .. })
    ));
    assert_eq!(std::fs::read(&file.0).unwrap(), b"keep");
}

#[test]
fn datagram_and_seqpacket_keep_boundaries_and_carry_values() {
    let (a, b) = UnixDatagram::pair().unwrap();
    a.send(b"one").unwrap();
    a.send(b"two!").unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(b.recv(&mut buf).unwrap(), 3);
    assert_eq!(b.recv(&mut buf).unwrap(), 4);
    a.send(&[0u8; 32]).unwrap();
    assert!(matches!(
        b.recv(&mut buf),
        Err(Error::MessageTooLarge { len: 32, max: 16 })
    ));
    a.send_value(&vec![1u32, 2, 3]).unwrap();
    assert_eq!(b.recv_value::<Vec<u32>>(64).unwrap(), vec![1, 2, 3]);
    assert!(matches!(
        b.recv_timeout(&mut buf, Duration::from_millis(50)),
        Err(Error::Timeout)
    ));

    // Bound datagram socket, reached by path.
    let path = TmpPath::new("dgram.sock");
    let (rx, _file) = UnixDatagram::bind(&path.0).unwrap();
    assert_eq!(
        std::fs::metadata(&path.0).unwrap().permissions().mode() & 0o777,
        0o600
    );
    UnixDatagram::unbound()
        .unwrap()
        .send_to(b"by path", &path.0)
        .unwrap();
    let n = rx.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"by path");

    // Seqpacket through a listener.
    let spath = TmpPath::new("seq.sock");
    let l = UnixListener::bind_seqpacket(&spath.0).unwrap();
    let c = UnixSeqpacket::connect(&spath.0).unwrap();
    let s = l.accept_seqpacket().unwrap();
    c.send(b"alpha").unwrap();
    c.send(b"be").unwrap();
    assert_eq!(s.recv(&mut buf).unwrap(), 5);
    assert_eq!(s.recv(&mut buf).unwrap(), 2);
    assert_eq!(s.peer_cred().unwrap().pid, std::process::id());
    drop(c);
    assert_eq!(s.recv(&mut buf).unwrap(), 0, "end of connection");
}

#[test]
fn a_message_too_large_for_a_datagram_or_seqpacket_socket_names_the_real_limit() {
    let (d1, d2) = UnixDatagram::pair().unwrap();
    let (s1, s2) = UnixSeqpacket::pair().unwrap();
    type Send<'a> = Box<dyn Fn(&[u8]) -> ipcworks::Result<()> + 'a>;
    type Recv<'a> = Box<dyn Fn(&mut [u8]) -> ipcworks::Result<usize> + 'a>;
    let bound = TmpPath::new("big-dgram.sock");
    let (rx, _file) = UnixDatagram::bind(&bound.0).unwrap();
    let unbound = UnixDatagram::unbound().unwrap();
    let cases: [(&str, std::os::fd::BorrowedFd<'_>, Send<'_>, Recv<'_>); 4] = [
        (
            "datagram send",
            d1.as_fd(),
            Box::new(|m| d1.send(m)),
            Box::new(|b| d2.recv(b)),
        ),
        (
            "seqpacket send",
            s1.as_fd(),
            Box::new(|m| s1.send(m)),
            Box::new(|b| s2.recv(b)),
        ),
        (
            "datagram send_fds",
            d1.as_fd(),
            Box::new(|m| d1.send_fds(m, &[])),
            Box::new(|b| d2.recv(b)),
        ),
        (
            "datagram send_to",
            unbound.as_fd(),
            Box::new(|m| unbound.send_to(m, &bound.0)),
            Box::new(|b| rx.recv(b)),
        ),
    ];
    for (what, fd, send, recv) in cases {
        // A send buffer of our choosing, so the limit is this socket's own.
        rustix::net::sockopt::set_socket_send_buffer_size(fd, 16 * 1024).unwrap();
        let err = send(&vec![1u8; 1 << 20]).unwrap_err();
        let Error::MessageTooLarge { len, max } = err else {
            panic!("{what}: {err:?}");
        };
        assert_eq!(len, 1 << 20, "{what}");
        assert!(max > 0 && max < len, "{what}: a real limit, not {max}");
        assert!(err.to_string().contains(&max.to_string()), "{what}: {err}");
        // The limit is exact: `max` bytes go through whole, one more does not.
        assert!(
            matches!(send(&vec![2u8; max + 1]), Err(Error::MessageTooLarge { max: m, .. }) if m == max),
            "{what}"
        );
        send(&vec![3u8; max]).unwrap();
        let mut buf = vec![0u8; max + 1];
        assert_eq!(recv(&mut buf).unwrap(), max, "{what}");
        assert!(buf[..max].iter().all(|&b| b == 3), "{what}");
    }
}

#[test]
fn writes_to_vanished_socket_peers_fail_without_sigpipe() {
    let mut c = KillOnDrop::spawn(support::child("socket::child", "socket-peer-gone", ""));
    assert_eq!(c.wait_for(Duration::from_secs(30)).code(), Some(42));
}

/// Runs a server on a thread; returns its address or path, the stop
/// handle, and the join handle yielding the stats.
fn spawn_server(
    opts: &ServerOptions,
    unix: Option<&std::path::Path>,
) -> (
    String,
    ipcworks::socket::ShutdownHandle,
    std::thread::JoinHandle<ServerStats>,
) {
    let server = match unix {
        Some(p) => opts.bind_unix(p).unwrap(),
        None => opts.bind_tcp("127.0.0.1:0").unwrap(),
    };
    let addr = match server.local_addr() {
        Some(a) => a.to_string(),
        None => unix.unwrap().display().to_string(),
    };
    let stop = server.shutdown_handle();
    let h = std::thread::spawn(move || server.run(|_p: &Peer, m: &[u8]| Some(m.to_vec())).unwrap());
    (addr, stop, h)
}

fn frame(msg: &[u8]) -> Vec<u8> {
    let mut v = (msg.len() as u32).to_le_bytes().to_vec();
    v.extend_from_slice(msg);
    v
}

/// Reads until the server closes the connection (EOF or reset) or 20 s.
fn closed_by_server(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

fn echo_once(addr: &str, msg: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(&frame(msg)).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; u32::from_le_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    body
}

#[test]
fn server_drops_bad_clients_and_keeps_serving_the_rest() {
    let mut opts = ServerOptions::new();
    opts.framing(Framing::Frames)
        .max_message(1024)
        .idle_timeout(Some(Duration::from_millis(1000)));
    let (addr, stop, h) = spawn_server(&opts, None);

    // A good client stays connected through it all, talking between the
    // bad ones (so the idle timeout does not apply to it).
    let mut good = TcpStream::connect(&addr).unwrap();
    good.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut round = 0;
    let mut ping = |good: &mut TcpStream| {
        round += 1;
        let msg = format!("still served {round}");
        good.write_all(&frame(msg.as_bytes())).unwrap();
        let mut len = [0u8; 4];
        good.read_exact(&mut len).unwrap();
        let mut body = vec![0u8; u32::from_le_bytes(len) as usize];
        good.read_exact(&mut body).unwrap();
        assert_eq!(body, msg.as_bytes());
    };
    ping(&mut good);

    // Over-long frame: header claims 1 MiB.
    let mut over = TcpStream::connect(&addr).unwrap();
    over.write_all(&(1u32 << 20).to_le_bytes()).unwrap();
    assert!(closed_by_server(&mut over), "over-long frame dropped");
    ping(&mut good);

    // Garbage bytes (a header far over the limit).
    let mut garbage = TcpStream::connect(&addr).unwrap();
    garbage
        .write_all(&[0xde, 0xad, 0xbe, 0xef, 1, 2, 3])
        .unwrap();
    assert!(closed_by_server(&mut garbage), "garbage dropped");
    ping(&mut good);

    // Truncated frame, then the client closes its side.
    let mut cut = TcpStream::connect(&addr).unwrap();
    cut.write_all(&10u32.to_le_bytes()).unwrap();
    cut.write_all(b"abc").unwrap();
    cut.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(closed_by_server(&mut cut), "truncated frame dropped");
    ping(&mut good);

    // Disconnects mid-message.
    let mut gone = TcpStream::connect(&addr).unwrap();
    gone.write_all(&100u32.to_le_bytes()).unwrap();
    gone.write_all(&[1; 50]).unwrap();
    drop(gone);
    ping(&mut good);

    // Connects and sends nothing: dropped after the idle timeout.
    let mut silent = TcpStream::connect(&addr).unwrap();
    silent.set_nonblocking(true).unwrap();
    let start = std::time::Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        ping(&mut good);
        let mut b = [0u8; 1];
        match silent.read(&mut b) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            _ => break, // closed (0 or reset)
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "idle client never dropped"
        );
    }
    silent.set_nonblocking(false).unwrap();
    assert!(closed_by_server(&mut silent), "idle client dropped");
    ping(&mut good);

    // A flood of bytes without a frame end is bounded by max_message.
    let mut flood = TcpStream::connect(&addr).unwrap();
    flood
        .set_write_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let _ = flood.write_all(&frame(&[0u8; 2000]));
    assert!(closed_by_server(&mut flood));

    ping(&mut good);
    assert_eq!(echo_once(&addr, b"new client"), b"new client");
    stop.shutdown();
    let stats = h.join().unwrap();
    assert!(stats.dropped >= 6, "{stats:?}");
}

#[test]
fn a_client_that_does_not_read_its_replies_stalls_nobody() {
    let mut opts = ServerOptions::new();
    opts.max_buffered(64 * 1024)
        .idle_timeout(Some(Duration::from_secs(30)));
    let (addr, stop, h) = spawn_server(&opts, None);
    // The hog writes up to 32 MiB of lines and never reads the echoes (more
    // than the kernel's socket buffers on both sides can hold).
    let hog_written = Arc::new(AtomicU64::new(0));
    let hog = std::thread::spawn({
        let addr = addr.clone();
        let written = hog_written.clone();
        move || {
            let mut s = TcpStream::connect(&addr).unwrap();
            s.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
            let line = [b'x'; 1023];
            let mut buf = line.to_vec();
            buf.push(b'\n');
            for _ in 0..32 * 1024 {
                if s.write_all(&buf).is_err() {
                    break; // the server stopped reading us: expected
                }
                written.fetch_add(buf.len() as u64, Ordering::Relaxed);
            }
            s
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    // Others are answered meanwhile.
    for i in 0..20 {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        writeln!(s, "hello {i}").unwrap();
        let mut line = String::new();
        BufReader::new(&s).read_line(&mut line).unwrap();
        assert_eq!(line, format!("hello {i}\n"));
    }
    let _hog_stream = hog.join().unwrap();
    assert!(
        hog_written.load(Ordering::Relaxed) < 32 << 20,
        "back-pressure: the server stopped reading the hog"
    );
    stop.shutdown();
    h.join().unwrap();
}

#[test]
fn unix_server_with_allowed_uids_and_cleanup() {
    let me = rustix::process::geteuid().as_raw();
    let path = TmpPath::new("srv.sock");
    let mut opts = ServerOptions::new();
    opts.allowed_uids(Some(vec![me.wrapping_add(1)])).log(false);
    let (_, stop, h) = spawn_server(&opts, Some(&path.0));
    let mut s = UnixStream::connect(&path.0).unwrap();
    let mut buf = [0u8; 8];
    let _ = s.write_all(b"hi\n");
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "a client with a uid not allowed is closed at once");
    stop.shutdown();
    let stats = h.join().unwrap();
    assert_eq!(stats.refused, 1);
    assert!(!path.0.exists(), "socket file removed at shutdown");

    let mut opts = ServerOptions::new();
    opts.allowed_uids(Some(vec![me]));
    let (_, stop, h) = spawn_server(&opts, Some(&path.0));
    let s = UnixStream::connect(&path.0).unwrap();
    (&s).write_all(b"welcome\n").unwrap();
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).unwrap();
    assert_eq!(line, "welcome\n");
    stop.shutdown();
    assert_eq!(h.join().unwrap().accepted, 1);
}

#[test]
fn server_handler_sees_peers() {
    let path = TmpPath::new("peers.sock");
    let server = ServerOptions::new().bind_unix(&path.0).unwrap();
    let stop = server.shutdown_handle();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let h = std::thread::spawn({
        let seen = seen.clone();
        move || {
            server
                .run(move |p: &Peer, m: &[u8]| {
                    seen.lock()
                        .unwrap()
                        .push((p.cred.map(|c| c.pid), m.to_vec()));
                    None
                })
                .unwrap()
        }
    });
    let s = UnixStream::connect(&path.0).unwrap();
    (&s).write_all(b"a\nb\n").unwrap();
    assert!(support::wait_until(Duration::from_secs(20), || seen
        .lock()
        .unwrap()
        .len()
        == 2));
    stop.shutdown();
    h.join().unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0], (Some(std::process::id()), b"a".to_vec()));
    assert_eq!(seen[1].1, b"b");
}

#[test]
fn typed_messages_over_a_unix_stream_with_a_child() {
    let path = TmpPath::new("typed.sock");
    let l = UnixListener::bind(&path.0).unwrap();
    let mut c = KillOnDrop::spawn(support::child(
        "socket::child",
        "typed-echo",
        path.0.to_str().unwrap(),
    ));
    let s = l.accept().unwrap();
    let mut w = FrameWriter::new(&s, Framing::Frames);
    let mut r = FrameReader::new(&s, Framing::Frames);
    for i in 0..50u32 {
        w.send_value(&(i, format!("value {i}"))).unwrap();
        let (n, text) = r.recv_value::<(u32, String)>().unwrap().unwrap();
        assert_eq!((n, text), (i + 1, format!("VALUE {i}")));
    }
    s.shutdown_write().unwrap();
    assert!(c.wait_for(Duration::from_secs(30)).success());
    assert_eq!(r.recv_value::<(u32, String)>().unwrap(), None);
}

#[test]
fn clients_beyond_max_connections_are_refused_and_the_rest_served() {
    let mut opts = ServerOptions::new();
    opts.max_connections(2).log(false);
    let (addr, stop, h) = spawn_server(&opts, None);
    let talk = |s: &TcpStream, what: &str| {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        writeln!(&*s, "{what}").unwrap();
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).unwrap();
        line
    };
    let a = TcpStream::connect(&addr).unwrap();
    assert_eq!(talk(&a, "a"), "a\n");
    let b = TcpStream::connect(&addr).unwrap();
    assert_eq!(talk(&b, "b"), "b\n");
    let mut third = TcpStream::connect(&addr).unwrap();
    assert!(closed_by_server(&mut third), "third client refused");
    assert_eq!(talk(&a, "a again"), "a again\n");
    drop(b);
    // A slot is free again once b is gone.
    assert!(
        (0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            let c = TcpStream::connect(&addr).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            let _ = writeln!(&c, "c");
            let mut line = String::new();
            BufReader::new(&c).read_line(&mut line).is_ok() && line == "c\n"
        }),
        "served after a slot freed"
    );
    stop.shutdown();
    let stats = h.join().unwrap();
    assert!(stats.refused >= 1, "{stats:?}");
}

#[test]
fn a_socket_path_near_the_address_limit_binds() {
    // Deep enough that the private binding directory's own path would not
    // fit a socket address, while the final path (107 bytes) does.
    let base = std::env::temp_dir().join(support::unique_name("long"));
    let room = 107 - base.as_os_str().len() - 2;
    let dir = base.join("d".repeat(room.saturating_sub(8).max(1)));
    std::fs::create_dir_all(&dir).unwrap();
    struct RmDir(std::path::PathBuf);
    impl Drop for RmDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _clean = RmDir(base.clone());
    let name_len = 107 - dir.as_os_str().len() - 1;
    let path = dir.join("s".repeat(name_len));
    assert_eq!(path.as_os_str().len(), 107);
    let l = UnixListener::bind(&path).unwrap();
    let c = UnixStream::connect(&path).unwrap();
    let s = l.accept().unwrap();
    (&c).write_all(b"ok").unwrap();
    let mut buf = [0u8; 2];
    (&s).read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ok");
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let too_long = dir.join("s".repeat(name_len + 1));
    assert!(matches!(
        UnixListener::bind(&too_long),
        Err(Error::InvalidArgument(_))
    ));
    drop(l);
    assert!(!path.exists());
}
