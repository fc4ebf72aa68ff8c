//! The socket server out of file descriptors (`EMFILE`): a server in a
//! child process whose `RLIMIT_NOFILE` leaves room for a few clients, and
//! more clients than that. Every client is served or cleanly closed; none
//! is left waiting for ever in the listen backlog.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use ipcworks::socket::{Peer, ServerOptions};

use crate::pipe::TmpPath;
use crate::support::{self, KillOnDrop};

/// Client slots the child leaves itself above what it has open.
const ROOM: u64 = 8;
/// Clients, well beyond the room.
const CLIENTS: usize = 30;
/// Far beyond what an echo takes on a loaded machine: only a hang trips it.
const HANG: Duration = Duration::from_secs(30);

#[test]
fn child() {
    support::as_child!(|role, arg| {
        match role {
            // "PATH,WAIT_MS": an echo server at PATH that runs out of
            // descriptors after ROOM more, shedding waiting clients after
            // WAIT_MS out of them.
            "fd-limited-echo" => {
                let (path, wait) = arg.split_once(',').unwrap();
                let wait = Duration::from_millis(wait.parse().unwrap());
                let server = ServerOptions::new()
                    .idle_timeout(None)
                    .out_of_fds_wait(wait)
                    .bind_unix(path)
                    .unwrap();
                support::limit_open_files(ROOM);
                println!("ready");
                server.run(|_p: &Peer, m: &[u8]| Some(m.to_vec())).unwrap();
            }
            // With the soft descriptor limit lowered to 64: a server bound
            // without `raise_fd_limit` leaves it, one bound with it raises it
            // to the hard limit. Prints both soft limits.
            "raise-limit" => {
                use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
                let hard = getrlimit(Resource::Nofile).maximum;
                setrlimit(
                    Resource::Nofile,
                    Rlimit {
                        current: Some(64),
                        maximum: hard,
                    },
                )
                .unwrap();
                let plain = ServerOptions::new().bind_tcp("127.0.0.1:0").unwrap();
                let kept = getrlimit(Resource::Nofile).current;
                let raised = ServerOptions::new()
                    .raise_fd_limit(true)
                    .bind_tcp("127.0.0.1:0")
                    .unwrap();
                let now = getrlimit(Resource::Nofile).current;
                println!("limits {kept:?} {now:?} {hard:?}");
                drop((plain, raised));
            }
            other => support::unknown_role(other),
        }
    });
}

/// `ServerOptions::raise_fd_limit` (what `ipcworks serve` asks for) raises
/// the soft descriptor limit to the hard one when the server is bound;
/// without it the limit is left alone.
#[test]
fn raise_fd_limit_lifts_the_soft_limit_to_the_hard_one() {
    let out = support::child("server_fds::child", "raise-limit", "")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{:?}\n{stdout}", out.status);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("limits "))
        .unwrap_or_else(|| panic!("{stdout}"));
    let v: Vec<&str> = line.split(' ').collect();
    assert_eq!(v[0], "Some(64)", "without the option: {line}");
    assert_eq!(v[1], v[2], "with it, soft = hard: {line}");
}

fn start(path: &TmpPath, wait: Duration) -> KillOnDrop {
    KillOnDrop::spawn_ready(support::child(
        "server_fds::child",
        "fd-limited-echo",
        &format!("{},{}", path.0.display(), wait.as_millis()),
    ))
}

/// Connects `CLIENTS` clients, each sending one line.
pub(crate) fn clients(path: &TmpPath) -> Vec<BufReader<UnixStream>> {
    (0..CLIENTS)
        .map(|i| {
            let mut s = UnixStream::connect(&path.0).unwrap();
            s.set_read_timeout(Some(HANG)).unwrap();
            s.write_all(format!("hello {i}\n").as_bytes()).unwrap();
            BufReader::new(s)
        })
        .collect()
}

/// Each client in turn gets its echo, then leaves (the server gets a
/// descriptor back, and must accept the next one queued in its backlog).
pub(crate) fn served_as_others_leave(mut all: Vec<BufReader<UnixStream>>) {
    for (i, c) in all.iter_mut().enumerate() {
        let mut line = String::new();
        match c.read_line(&mut line) {
            Ok(_) => assert_eq!(line, format!("hello {i}\n"), "client {i}"),
            Err(e) => panic!("client {i} of {CLIENTS} got no reply within {HANG:?}: {e}"),
        }
        c.get_ref().shutdown(std::net::Shutdown::Both).unwrap();
    }
}

/// Nobody leaves: every client is either served or closed cleanly (end of
/// stream or a reset), some of each; none hangs.
pub(crate) fn served_or_closed_when_nobody_leaves(mut all: Vec<BufReader<UnixStream>>) {
    let (mut served, mut closed) = (0, 0);
    for (i, c) in all.iter_mut().enumerate() {
        let mut line = String::new();
        match c.read_line(&mut line) {
            Ok(0) => closed += 1,
            Ok(_) => {
                assert_eq!(line, format!("hello {i}\n"), "client {i}");
                served += 1;
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => closed += 1,
            Err(e) => panic!("client {i} of {CLIENTS} got neither a reply nor a close: {e}"),
        }
    }
    assert_eq!(served + closed, CLIENTS);
    assert!(
        served >= 1 && closed >= 1,
        "served {served}, closed {closed}"
    );
}

/// Issue 16 item 3: clients queued in the backlog while the server is out
/// of descriptors are accepted once earlier clients leave, without a new
/// connection to wake the server (its epoll is edge-triggered).
#[test]
fn clients_queued_while_out_of_descriptors_are_served_when_others_leave() {
    let path = TmpPath::new("emfile.sock");
    let _server = start(&path, Duration::from_secs(600));
    served_as_others_leave(clients(&path));
}

/// Issue 16 item 3: when nobody leaves, clients waiting in the backlog are
/// accepted and closed (cleanly: end of stream) after the server has been
/// out of descriptors for the configured wait; none hangs.
#[test]
fn clients_beyond_the_descriptors_are_closed_cleanly_when_nobody_leaves() {
    let path = TmpPath::new("emfile-shed.sock");
    let _server = start(&path, Duration::from_millis(200));
    served_or_closed_when_nobody_leaves(clients(&path));
}
