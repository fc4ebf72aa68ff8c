//! Binding a Unix socket path where others may have been first: a live
//! listener whose backlog is full, names pre-created in the parent, and a
//! second binder racing to replace the same stale socket.

use std::cell::RefCell;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::rc::Rc;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use ipcworks::Error;
use ipcworks::fault::{self, Point};
use ipcworks::socket::{UnixListener, UnixStream};
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

use crate::pipe::TmpPath;
use crate::support::{self, KillOnDrop};

#[test]
fn child() {
    support::as_child!(|role, arg| {
        match role {
            // With a handler that ends the process on SIGTERM (as the CLI
            // installs), binds at ARG and gets SIGTERM the moment the socket
            // file is in place. The signal is sent to this thread: in a
            // single-threaded program like the CLI, Ctrl-C lands there too.
            "bind-then-sigterm" => {
                ipcworks::process::remove_on_terminate(&[]).unwrap();
                fault::on(Point::SocketPlaced, || {
                    // SAFETY: pthread_self names this live thread.
                    let r = unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGTERM) };
                    assert_eq!(r, 0);
                });
                let _l = UnixListener::bind(&arg).unwrap();
                // The held signal ends the process as the bind returns.
                std::thread::sleep(HANG);
            }
            other => support::unknown_role(other),
        }
    });
}

/// Far beyond what a bind takes on a loaded machine: only a hang trips it.
const HANG: Duration = Duration::from_secs(30);

/// A listener at `path` with `listen(0)` and its backlog filled by
/// non-blocking connections that nobody accepts: a live server too busy to
/// take one more. Returns the listener and the pending clients.
fn busy_listener(path: &Path) -> (OwnedFd, Vec<OwnedFd>) {
    let addr = SocketAddrUnix::new(path).unwrap();
    let l = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .unwrap();
    rustix::net::bind(&l, &addr).unwrap();
    rustix::net::listen(&l, 0).unwrap();
    let mut pending = Vec::new();
    for _ in 0..64 {
        let c = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            None,
        )
        .unwrap();
        match rustix::net::connect(&c, &addr) {
            Ok(()) => pending.push(c),
            Err(rustix::io::Errno::AGAIN) => return (l, pending),
            Err(e) => panic!("connect: {e}"),
        }
    }
    panic!("the backlog never filled");
}

/// Runs `f` on a thread and waits at most [`HANG`] for it.
fn bounded<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(HANG)
        .unwrap_or_else(|_| panic!("{what} hung for {HANG:?}"))
}

/// Issue 16 item 4: probing the path must not block on a live listener
/// whose backlog is full; busy means live.
#[test]
fn binding_over_a_busy_live_listener_is_refused_at_once() {
    let path = TmpPath::new("busy.sock");
    let (_l, _pending) = busy_listener(&path.0);
    let p = path.0.clone();
    let r = bounded("UnixListener::bind over a busy listener", move || {
        UnixListener::bind(&p).map(drop)
    });
    match r {
        Err(Error::AlreadyExists { .. }) => {}
        other => panic!("expected AlreadyExists (a live server), got {other:?}"),
    }
    let p = path.0.clone();
    assert!(bounded("is_live", move || ipcworks::socket::is_live(&p)));
    assert!(path.0.exists(), "the live listener's file is left alone");
}

/// Issue 16 item 5: the private directory made beside the socket has a
/// name nobody can guess; names pre-created by someone who can write the
/// parent (here: every name the old `.iw{pid}.{n}` scheme would pick for
/// this process) do not stop the bind.
#[test]
fn pre_created_private_directory_names_do_not_stop_a_bind() {
    let dir = TmpPath::new("squatted-dir");
    std::fs::create_dir(&dir.0).unwrap();
    struct RmDir(std::path::PathBuf);
    impl Drop for RmDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _clean = RmDir(dir.0.clone());
    for n in 0..1024u32 {
        std::fs::create_dir(dir.0.join(format!(".iw{:x}.{n:x}", std::process::id()))).unwrap();
    }
    let path = dir.0.join("s.sock");
    let l = UnixListener::bind(&path).expect("bind beside pre-created names");
    let _c = UnixStream::connect(&path).unwrap();
    assert!(l.wait_acceptable(Some(HANG)).unwrap());
    drop(l);
    // Only the squatter's directories are left: ours was removed.
    let left = std::fs::read_dir(&dir.0).unwrap().count();
    assert_eq!(left, 1024);
}

/// The socket at `path` reaches `listener`: a client connects and the
/// listener has it to accept.
fn reaches(path: &Path, listener: &UnixListener) -> bool {
    let Ok(_c) = UnixStream::connect(path) else {
        return false;
    };
    listener.wait_acceptable(Some(HANG)).unwrap_or(false)
}

/// Issue 16 item 8: a second binder acts while the first has judged the
/// socket stale but not yet replaced it (a fault-injection point). The
/// first must not remove the second's live socket: exactly one binds, and
/// the path reaches it.
#[test]
fn a_second_binder_inside_the_stale_window_keeps_its_socket() {
    let path = TmpPath::new("race.sock");
    ipcworks_test_support::stale_socket(&path.0);
    let second: Rc<RefCell<Option<ipcworks::Result<UnixListener>>>> = Rc::default();
    fault::on(Point::StaleSocketBeforeReplace, {
        let (p, second) = (path.0.clone(), second.clone());
        move || *second.borrow_mut() = Some(UnixListener::bind(&p))
    });
    let first = UnixListener::bind(&path.0);
    fault::clear();
    let second = second
        .borrow_mut()
        .take()
        .expect("the fault point was not reached");
    let winner = match (first, second) {
        (Ok(_), Ok(_)) => panic!("both binders succeeded: one of them lost its socket file"),
        (Ok(w), Err(e)) | (Err(e), Ok(w)) => {
            assert!(matches!(e, Error::AlreadyExists { .. }), "{e}");
            w
        }
        (Err(a), Err(b)) => panic!("neither binder succeeded: {a}; {b}"),
    };
    assert!(
        reaches(&path.0, &winner),
        "the path does not reach the winner"
    );
}

/// Issue 16 item 8 again, left to the scheduler: two threads bind the same
/// path over a fresh stale socket, 200 times. Each time exactly one wins
/// and the path reaches it.
#[test]
fn two_binders_racing_over_a_stale_socket_never_both_win() {
    let path = TmpPath::new("race-loop.sock");
    for round in 0..200 {
        ipcworks_test_support::stale_socket(&path.0);
        let start = Arc::new(Barrier::new(2));
        let bind = |start: Arc<Barrier>| {
            let p = path.0.clone();
            std::thread::spawn(move || {
                start.wait();
                UnixListener::bind(&p)
            })
        };
        let (a, b) = (bind(start.clone()), bind(start));
        let (a, b) = (a.join().unwrap(), b.join().unwrap());
        let winner = match (a, b) {
            (Ok(_), Ok(_)) => panic!("round {round}: both binders succeeded"),
            (Ok(w), Err(e)) | (Err(e), Ok(w)) => {
                assert!(
                    matches!(e, Error::AlreadyExists { .. }),
                    "round {round}: {e}"
                );
                w
            }
            (Err(a), Err(b)) => panic!("round {round}: neither succeeded: {a}; {b}"),
        };
        assert!(
            reaches(&path.0, &winner),
            "round {round}: the path lost the winner"
        );
        drop(winner);
        assert!(
            !path.0.exists(),
            "round {round}: the winner's file outlived it"
        );
    }
}

/// A Ctrl-C handler that ends the process (the CLI's) cannot cut a bind
/// between the socket appearing and its private directory being removed:
/// the signal is held until the directory is gone, so none is left behind.
#[test]
fn terminated_right_after_the_socket_appears_leaves_no_private_directory() {
    use std::os::unix::process::ExitStatusExt;
    let dir = TmpPath::new("sigterm-dir");
    std::fs::create_dir(&dir.0).unwrap();
    struct RmDir(std::path::PathBuf);
    impl Drop for RmDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _clean = RmDir(dir.0.clone());
    let path = dir.0.join("s.sock");
    let mut c = KillOnDrop::spawn(support::child(
        "unix_bind::child",
        "bind-then-sigterm",
        path.to_str().unwrap(),
    ));
    let st = c.wait_for(HANG);
    assert_eq!(st.signal(), Some(libc::SIGTERM), "{st}");
    let left: Vec<String> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, vec!["s.sock".to_string()], "left behind: {left:?}");
}
