//! The SIGBUS handler ipcworks installs with its first segment takes only
//! faults on its own segments; every other SIGBUS goes where it would go
//! without ipcworks: to a handler the application installed before, or
//! to the default action (the process dies of SIGBUS).
//!
//! Each case runs in a child process (this test binary), which maps a
//! segment of its own and a file that is not ipcworks', truncates them
//! and reads, or sends itself SIGBUS; the test reads its exit status and
//! what it printed.

use std::ffi::c_void;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use ipcworks::shm::Segment;

use crate::support::{self, KillOnDrop, ShmCleanup};

const LIMIT: Duration = Duration::from_secs(30);
/// Exit code of the application's own handler in the child.
const APP_EXIT: i32 = 42;

/// A page of a file that is not an ipcworks segment, mapped shared, whose
/// file is then truncated to 0: reading it faults with SIGBUS. The file
/// is removed at once (the mapping stays).
fn foreign_truncated_page() -> *const u8 {
    let path = std::env::temp_dir().join(format!("ipcworks-sigbus-{}", std::process::id()));
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    file.set_len(4096).unwrap();
    // SAFETY: a fresh shared read-only mapping of our own file at an
    // address the kernel picks; it is never unmapped (the process ends).
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ,
            libc::MAP_SHARED,
            std::os::fd::AsRawFd::as_raw_fd(&file),
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    file.set_len(0).unwrap();
    p as *const u8
}

/// A named segment of two pages that this process cuts to 100 bytes (as
/// a hostile peer would), and the address of a byte in its lost page.
fn own_truncated_segment(name: &str) -> (Segment, *const u8) {
    let seg = Segment::create(name, 2 * 4096).unwrap();
    std::fs::File::options()
        .write(true)
        .open(format!("/dev/shm/{name}"))
        .unwrap()
        .set_len(100)
        .unwrap();
    // SAFETY: 4096 + 8 < the segment's length.
    let lost = unsafe { seg.as_ptr().add(4096 + 8) };
    (seg, lost)
}

fn read_byte(p: *const u8) -> u8 {
    // SAFETY: `p` points into a live mapping (it may fault with SIGBUS,
    // which is what these tests are about, but it is mapped).
    unsafe { p.read_volatile() }
}

/// Writes `text` and `n` in hex to stdout with write(2) only.
fn raw_print(text: &[u8], n: usize) {
    let mut buf = [0u8; 96];
    let mut len = 0;
    for &b in text {
        buf[len] = b;
        len += 1;
    }
    for shift in (0..16).rev() {
        buf[len] = b"0123456789abcdef"[(n >> (shift * 4)) & 15];
        len += 1;
    }
    buf[len] = b'\n';
    // SAFETY: write(2) of an initialized buffer to stdout.
    unsafe { libc::write(1, buf.as_ptr().cast(), len + 1) };
}

/// The application's own SIGBUS handler: says where the fault was and
/// exits with [`APP_EXIT`] (async-signal-safe calls only).
extern "C" fn app_handler(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut c_void) {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let (code, addr) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
    raw_print(b"app handler: code ", code as usize);
    raw_print(b"app handler: addr ", addr);
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(APP_EXIT) };
}

fn set_sigbus(handler: usize, flags: libc::c_int) {
    // SAFETY: a zeroed sigaction with an empty mask, then set up; the
    // handler (if any) only makes async-signal-safe calls.
    let rc = unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler;
        sa.sa_flags = flags;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut())
    };
    assert_eq!(rc, 0);
}

#[test]
fn child() {
    support::as_child!(|role, name| {
        match role {
            // Our own segment, cut to 5000 bytes by "a peer": the first page
            // and the start of the second stay, the third is gone.
            "own" => {
                let seg = Segment::create(&name, 3 * 4096).unwrap();
                let p = seg.as_ptr();
                // SAFETY: in bounds; nobody else writes the segment yet.
                unsafe { p.add(100).write_volatile(7) };
                std::fs::File::options()
                    .write(true)
                    .open(format!("/dev/shm/{name}"))
                    .unwrap()
                    .set_len(5000)
                    .unwrap();
                // SAFETY: in bounds of the mapping.
                let (kept, zeroed) = unsafe { (p.add(100), p.add(4096 + 1000)) };
                println!("kept {} zeroed {}", read_byte(kept), read_byte(zeroed));
                println!("before any fault: {:?}", seg.check_intact());
                // SAFETY: in bounds of the mapping (its third page is gone).
                let lost = unsafe { p.add(2 * 4096 + 8) };
                println!("lost page reads {}", read_byte(lost));
                // SAFETY: as above; the write goes to a private zero page.
                unsafe { lost.write_volatile(9) };
                println!("lost page after a write {}", read_byte(lost));
                match seg.check_intact() {
                    Err(e) => {
                        println!("after the fault: {e:?}");
                        println!("message: {e}");
                        println!("io kind: {:?}", std::io::Error::from(e).kind());
                    }
                    Ok(()) => println!("after the fault: Ok"),
                }
            }
            // A fault on a file that is not ours, with our handler installed:
            // std's handler (installed at start-up) and then the default action.
            "foreign" => {
                let _seg = Segment::create(&name, 4096).unwrap();
                let p = foreign_truncated_page();
                println!("reading the foreign page");
                read_byte(p);
                println!("survived a foreign fault");
            }
            // The application's handler was there first: ours takes the fault
            // on our segment, the application's the foreign one.
            "app-first" => {
                set_sigbus(
                    app_handler as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut c_void)
                        as usize,
                    libc::SA_SIGINFO,
                );
                let (seg, lost) = own_truncated_segment(&name);
                read_byte(lost);
                println!("own fault handled: {:?}", seg.check_intact());
                let p = foreign_truncated_page();
                raw_print(b"foreign at ", p as usize);
                read_byte(p);
                println!("survived a foreign fault");
            }
            // SIGBUS sent by a process goes to std's handler, which resets the
            // disposition and returns, as without ipcworks; our handler comes
            // back for our own faults, and a foreign fault still kills.
            "sent-then-own" => {
                let (seg, lost) = own_truncated_segment(&name);
                // SAFETY: raise(3): tgkill(2) to this thread, delivered before
                // it returns (kill(2) to the process could be taken by another
                // thread, after this one printed).
                unsafe { libc::raise(libc::SIGBUS) };
                println!("survived a sent SIGBUS");
                read_byte(lost);
                println!("own fault handled: {:?}", seg.check_intact());
                let p = foreign_truncated_page();
                read_byte(p);
                println!("survived a foreign fault");
            }
            // With the default disposition before ours, a sent SIGBUS kills.
            "sent-default" => {
                set_sigbus(libc::SIG_DFL, 0);
                let _seg = Segment::create(&name, 4096).unwrap();
                // SAFETY: raise(3): tgkill(2) to this thread, delivered before
                // it returns (kill(2) to the process could be taken by another
                // thread, after this one printed).
                unsafe { libc::raise(libc::SIGBUS) };
                println!("survived a sent SIGBUS");
            }
            other => support::unknown_role(other),
        }
    });
}

/// Runs `role` in a child; its exit status and everything it printed.
fn run(role: &str) -> (ExitStatus, String) {
    let name = support::unique_name(role);
    let _clean = ShmCleanup(vec![name.clone()]);
    let mut cmd = support::child("sigbus::child", role, &name);
    cmd.stdout(Stdio::piped());
    let mut child = KillOnDrop::spawn(cmd);
    let mut out = child.0.as_mut().unwrap().stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let st = child.wait_for(LIMIT);
    (st, reader.join().unwrap())
}

#[test]
fn a_fault_on_a_truncated_page_of_our_segment_reads_zeros_and_marks_it_broken() {
    let (st, out) = run("own");
    assert!(st.success(), "{st}: {out}");
    assert!(out.contains("kept 7 zeroed 0"), "{out}");
    assert!(out.contains("before any fault: Ok(())"), "{out}");
    assert!(out.contains("lost page reads 0"), "{out}");
    // Our own zero page now: writes stay here, reach nobody.
    assert!(out.contains("lost page after a write 9"), "{out}");
    assert!(out.contains("after the fault: Truncated {"), "{out}");
    assert!(
        out.contains(
            "was truncated by another process; it is unusable: remove it and create it again"
        ),
        "{out}"
    );
    assert!(out.contains("io kind: InvalidData"), "{out}");
}

#[test]
fn a_fault_outside_our_segments_still_kills_with_sigbus() {
    let (st, out) = run("foreign");
    assert!(out.contains("reading the foreign page"), "{out}");
    assert!(!out.contains("survived"), "{out}");
    assert_eq!(st.signal(), Some(libc::SIGBUS), "{st}: {out}");
}

#[test]
fn an_application_handler_installed_first_gets_the_faults_that_are_not_ours() {
    let (st, out) = run("app-first");
    assert!(
        out.contains("own fault handled: Err(Truncated"),
        "our own fault must be ours, not the application's: {st}: {out}"
    );
    let foreign = out
        .lines()
        .find_map(|l| l.strip_prefix("foreign at "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        out.contains(&format!("app handler: addr {foreign}")),
        "the application's handler gets the foreign fault's address: {out}"
    );
    // BUS_ADRERR: a fault, not a signal someone sent.
    assert!(out.contains("app handler: code 0000000000000002"), "{out}");
    assert!(!out.contains("survived a foreign fault"), "{out}");
    assert_eq!(st.code(), Some(APP_EXIT), "{st}: {out}");
}

#[test]
fn a_sigbus_sent_by_a_process_is_passed_on_and_our_handler_stays() {
    let (st, out) = run("sent-then-own");
    assert!(out.contains("survived a sent SIGBUS"), "{st}: {out}");
    assert!(
        out.contains("own fault handled: Err(Truncated"),
        "{st}: {out}"
    );
    assert!(!out.contains("survived a foreign fault"), "{out}");
    assert_eq!(st.signal(), Some(libc::SIGBUS), "{st}: {out}");
}

#[test]
fn a_sigbus_sent_by_a_process_takes_the_default_action_when_that_was_the_disposition() {
    let (st, out) = run("sent-default");
    assert!(!out.contains("survived"), "{out}");
    assert_eq!(st.signal(), Some(libc::SIGBUS), "{st}: {out}");
}
