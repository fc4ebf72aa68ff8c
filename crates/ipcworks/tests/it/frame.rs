//! Framing over a real pipe from a child process: whole frames, typed
//! values, and a stream that ends mid-frame.

use std::time::Duration;

use ipcworks::Error;
use ipcworks::frame::{FrameReader, FrameWriter, Framing, MAX_LIMIT};
use ipcworks::pipe::{self, PipeReader, PipeWriter};

use crate::support::{self, KillOnDrop};

const VAR: &str = "IPCWORKS_TEST_FRAME_FD";

#[test]
fn child() {
    support::as_child!(|role, _arg| {
        match role {
            // Three frames, a typed value, then half of a frame, then exits.
            "frames-then-cut" => {
                // SAFETY: the parent passed this pipe end for this role to own;
                // nothing else takes VAR.
                let fd = unsafe { pipe::take_inherited(VAR) }.unwrap();
                let mut w = FrameWriter::new(PipeWriter::from(fd), Framing::Frames);
                for m in [&b"one"[..], b"", b"three"] {
                    w.write_frame(m).unwrap();
                }
                w.send_value(&("typed".to_string(), 42u64)).unwrap();
                let raw = w.get_mut();
                use std::io::Write;
                raw.write_all(&100u32.to_le_bytes()).unwrap();
                raw.write_all(&[7u8; 40]).unwrap();
            }
            other => support::unknown_role(other),
        }
    });
}

#[test]
fn frames_from_a_child_then_a_truncated_one_is_an_error_naming_missing_bytes() {
    let (r, w) = pipe::pipe().unwrap();
    let mut cmd = support::child("frame::child", "frames-then-cut", "");
    pipe::pass_fd_env(&mut cmd, w, VAR).unwrap();
    let mut c = KillOnDrop::spawn(cmd);
    let mut fr: FrameReader<PipeReader> = FrameReader::with_max(r, Framing::Frames, 1000);
    assert_eq!(fr.read_frame().unwrap().unwrap(), b"one");
    assert_eq!(fr.read_frame().unwrap().unwrap(), b"");
    assert_eq!(fr.read_frame().unwrap().unwrap(), b"three");
    assert_eq!(
        fr.recv_value::<(String, u64)>().unwrap().unwrap(),
        ("typed".to_string(), 42)
    );
    let e = fr.read_frame().unwrap_err();
    assert!(e.to_string().contains("60 of 104 bytes missing"), "{e}");
    assert!(c.wait_for(Duration::from_secs(30)).success());
}

#[test]
fn an_over_long_frame_is_refused_before_reading_its_body() {
    let (r, w) = pipe::pipe().unwrap();
    let mut fw = FrameWriter::new(w, Framing::Frames);
    fw.write_frame(&[1u8; 2000]).unwrap();
    let mut fr = FrameReader::with_max(r, Framing::Frames, 1000);
    match fr.read_frame() {
        Err(Error::MessageTooLarge {
            len: 2000,
            max: 1000,
        }) => {}
        other => panic!("{other:?}"),
    }
}

/// `with_max(usize::MAX)` ("no limit of mine") is capped, not an overflow:
/// lines and frames still arrive over a real pipe, and `max()` says what
/// the cap is.
#[test]
fn with_max_usize_max_is_capped_not_an_overflow() {
    for framing in [Framing::Lines, Framing::Frames] {
        let (r, w) = pipe::pipe().unwrap();
        let mut fw = FrameWriter::with_max(w, framing, usize::MAX);
        fw.write_frame(b"first").unwrap();
        fw.write_frame(b"second").unwrap();
        drop(fw);
        let mut fr = FrameReader::with_max(r, framing, usize::MAX);
        assert_eq!(fr.read_frame().unwrap().unwrap(), b"first");
        assert_eq!(fr.read_frame().unwrap().unwrap(), b"second");
        assert_eq!(fr.read_frame().unwrap(), None);
        assert_eq!(fr.max(), MAX_LIMIT, "{framing:?}");
    }
}
