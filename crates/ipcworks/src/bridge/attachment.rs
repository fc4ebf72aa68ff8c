//! The metadata attachment: how a [`Meta`] (priority, System V type)
//! travels beside a Zenoh sample's payload.
//!
//! A Zenoh sample carries a payload and an optional *attachment* (bytes the
//! application defines). ipcworks puts the message in the payload, as is,
//! and its metadata in the attachment, in this format (version 1, 18
//! bytes, little-endian):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic: the ASCII bytes `IPCW` |
//! | 4 | 1 | version: `1` |
//! | 5 | 1 | flags: `0` (reserved; a reader ignores bits it does not know) |
//! | 6 | 4 | priority: `u32` |
//! | 10 | 8 | System V message type: `i64` |
//!
//! Rules, for a program of any language that reads or writes it:
//!
//! - A message whose [`Meta`] is the default (priority 0, type 0) is sent
//!   **without** an attachment: a plain sample.
//! - A sample without an attachment, or whose attachment does not start
//!   with `IPCW`, is a plain message: priority 0, type 0 (the attachment
//!   belongs to someone else and is ignored).
//! - A later version keeps these 18 bytes and only appends fields; a
//!   reader of version 1 reads the first 18 bytes of any version ≥ 1 and
//!   ignores the rest.
//! - An attachment that starts with `IPCW` but is shorter than 18 bytes, or
//!   says version 0, is malformed: the receiver reports an error for that
//!   sample.
//!
//! In Python (`struct` module): `struct.pack("<4sBBIq", b"IPCW", 1, 0,
//! priority, msg_type)` writes it, `struct.unpack_from("<4sBBIq",
//! attachment)` reads it.

use crate::message::Meta;

/// The first four bytes of an ipcworks attachment.
pub const MAGIC: [u8; 4] = *b"IPCW";
/// The version this code writes.
pub const VERSION: u8 = 1;
/// The length of a version-1 attachment.
pub const LEN: usize = 18;

/// What an attachment says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// Not ours (absent, or another application's): the default [`Meta`].
    Foreign,
    /// Ours: the metadata it carries.
    Meta(Meta),
    /// Ours but malformed; the text says how.
    Malformed(&'static str),
}

/// The attachment for `meta`: `None` for the default metadata (the sample
/// goes out plain), the 18 bytes of version 1 otherwise.
pub fn encode(meta: Meta) -> Option<[u8; LEN]> {
    if meta == Meta::default() {
        return None;
    }
    let mut a = [0u8; LEN];
    a[..4].copy_from_slice(&MAGIC);
    a[4] = VERSION;
    a[5] = 0;
    a[6..10].copy_from_slice(&meta.priority.to_le_bytes());
    a[10..18].copy_from_slice(&meta.msg_type.to_le_bytes());
    Some(a)
}

/// Reads an attachment (`None`: the sample had none).
pub fn decode(attachment: Option<&[u8]>) -> Decoded {
    let Some(a) = attachment else {
        return Decoded::Foreign;
    };
    if a.len() < MAGIC.len() || a[..4] != MAGIC {
        return Decoded::Foreign;
    }
    if a.len() < LEN {
        return Decoded::Malformed("shorter than the 18 bytes of version 1");
    }
    if a[4] == 0 {
        return Decoded::Malformed("version 0 does not exist");
    }
    let priority = u32::from_le_bytes(a[6..10].try_into().expect("4 bytes"));
    let msg_type = i64::from_le_bytes(a[10..18].try_into().expect("8 bytes"));
    Decoded::Meta(Meta { priority, msg_type })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_goes_plain_and_the_rest_round_trips() {
        assert_eq!(encode(Meta::default()), None);
        assert_eq!(decode(None), Decoded::Foreign);
        for meta in [
            Meta::with_priority(9),
            Meta::with_type(-3),
            Meta {
                priority: u32::MAX,
                msg_type: i64::MIN,
            },
        ] {
            let a = encode(meta).unwrap();
            assert_eq!(decode(Some(&a)), Decoded::Meta(meta));
        }
    }

    #[test]
    fn the_layout_is_the_documented_one() {
        let a = encode(Meta {
            priority: 0x0102_0304,
            msg_type: 5,
        })
        .unwrap();
        assert_eq!(
            a,
            [
                b'I', b'P', b'C', b'W', 1, 0, 4, 3, 2, 1, 5, 0, 0, 0, 0, 0, 0, 0
            ]
        );
    }

    #[test]
    fn foreign_later_and_malformed_attachments() {
        // Someone else's attachment: a plain message.
        assert_eq!(decode(Some(b"trace-id=42")), Decoded::Foreign);
        assert_eq!(decode(Some(b"IP")), Decoded::Foreign);
        // A later version with a field appended: the first 18 bytes count.
        let mut later = encode(Meta::with_priority(7)).unwrap().to_vec();
        later[4] = 2;
        later.extend_from_slice(b"more");
        assert_eq!(decode(Some(&later)), Decoded::Meta(Meta::with_priority(7)));
        // Ours, but cut short or version 0.
        assert!(matches!(decode(Some(b"IPCW\x01")), Decoded::Malformed(_)));
        let mut v0 = encode(Meta::with_priority(1)).unwrap();
        v0[4] = 0;
        assert!(matches!(decode(Some(&v0)), Decoded::Malformed(_)));
    }
}
