//! The relay pair's wire format (`crates/ipcworks/src/relay_wire.rs`) over arbitrary
//! bytes, as a hostile near relay's query reaches the far relay and a
//! hostile far relay's reply reaches the near relay: decoding must give
//! an error or a value, never a panic, a hang or a huge allocation; and a
//! payload that decodes is canonical — encoding what it decoded to gives
//! back the same bytes (every length and count is exact, nothing is
//! skipped or padded).
//!
//! The first two bytes pick the far side's limits (message maximum up to
//! 255 bytes, forget list up to 255 ids), so both refusals are reached.
//!
//! `cargo +nightly fuzz run relay_wire -- -max_total_time=600`
#![no_main]

use ipcworks::__fuzz::{relay_reply, relay_request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (max, max_forget, payload) = match data {
        [a, b, rest @ ..] => (usize::from(*a), usize::from(*b), rest),
        _ => (0, 0, data),
    };
    if let Ok(again) = relay_request(payload, max, max_forget) {
        assert_eq!(again, payload, "a query that decodes re-encodes to itself");
    }
    if let Ok(again) = relay_reply(payload) {
        assert_eq!(again, payload, "a reply that decodes re-encodes to itself");
    }
});
