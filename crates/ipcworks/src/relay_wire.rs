//! What the two relays of a pair say to each other over Zenoh: the bytes
//! of a query's payload (near → far) and of its reply (far → near).
//! Everything a peer sends is untrusted: every length is checked against
//! what is left before it is used, and a bad payload is an error, never
//! a panic.
//!
//! ```text
//! every payload   "IPCR"  version (1, u8)  kind (u8: 1 hello, 2 batch)
//! hello query     via (u64): the near relay's source queue's origin id
//! hello reply     window (u32): entries of the far queue's table;
//!                 n (u32), n × id: what it remembers via that source
//! batch query     via (u64); deadline (u32, ms the far side may take);
//!                 n (u32), n × id to forget (left their source; at
//!                 most the far queue's table entries);
//!                 m (u32), m × message: id, priority (u32), type (i64),
//!                 length (u32), the bytes
//! batch reply     done (u32): the first `done` messages of the batch are
//!                 in the far queue now; dups (u32): how many of them it
//!                 had already
//! id              origin (u64), sequence (u64)
//! ```
//!
//! All numbers little-endian. A refused batch (a message over the far
//! side's maximum, a broken payload) is a Zenoh error reply whose payload
//! is the reason, in UTF-8.

use crate::message::Meta;
use crate::queue::MessageId;

const MAGIC: &[u8; 4] = b"IPCR";
const VERSION: u8 = 1;
const HELLO: u8 = 1;
const BATCH: u8 = 2;

/// A message in a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Item {
    pub id: MessageId,
    pub meta: Meta,
    pub bytes: Vec<u8>,
}

/// A query from the near relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Request {
    Hello {
        via: u64,
    },
    Batch {
        via: u64,
        deadline_ms: u32,
        forget: Vec<MessageId>,
        items: Vec<Item>,
    },
}

/// A reply from the far relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    Hello {
        window: u32,
        remembered: Vec<MessageId>,
    },
    Batch {
        done: u32,
        dups: u32,
    },
}

fn head(out: &mut Vec<u8>, kind: u8) {
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(kind);
}

fn id(out: &mut Vec<u8>, id: MessageId) {
    out.extend_from_slice(&id.origin.to_le_bytes());
    out.extend_from_slice(&id.seq.to_le_bytes());
}

fn ids(out: &mut Vec<u8>, list: &[MessageId]) {
    out.extend_from_slice(&(list.len() as u32).to_le_bytes());
    for &i in list {
        id(out, i);
    }
}

/// The near relay's batch query, encoded straight from its claims.
pub(crate) fn batch<'a>(
    via: u64,
    deadline_ms: u32,
    forget: &[MessageId],
    items: impl ExactSizeIterator<Item = (MessageId, Meta, &'a [u8])>,
) -> Vec<u8> {
    let mut out = Vec::new();
    head(&mut out, BATCH);
    out.extend_from_slice(&via.to_le_bytes());
    out.extend_from_slice(&deadline_ms.to_le_bytes());
    ids(&mut out, forget);
    out.extend_from_slice(&(items.len() as u32).to_le_bytes());
    for (i, meta, bytes) in items {
        id(&mut out, i);
        out.extend_from_slice(&meta.priority.to_le_bytes());
        out.extend_from_slice(&meta.msg_type.to_le_bytes());
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

impl Request {
    /// The payload of this query.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Request::Hello { via } => {
                let mut out = Vec::new();
                head(&mut out, HELLO);
                out.extend_from_slice(&via.to_le_bytes());
                out
            }
            Request::Batch {
                via,
                deadline_ms,
                forget,
                items,
            } => batch(
                *via,
                *deadline_ms,
                forget,
                items.iter().map(|i| (i.id, i.meta, &i.bytes[..])),
            ),
        }
    }

    /// A query's payload, checked; messages over `max` bytes refused, and
    /// a batch that asks to forget more than `max_forget` ids (the far
    /// queue's table: a near relay never has more to forget than the far
    /// side can remember, and each id costs a look under the table's
    /// lock).
    pub fn decode(b: &[u8], max: usize, max_forget: usize) -> Result<Request, String> {
        let mut r = Reader::new(b)?;
        let via = r.u64()?;
        let req = match r.kind {
            HELLO => Request::Hello { via },
            BATCH => {
                let deadline_ms = r.u32()?;
                let forget = r.ids()?;
                if forget.len() > max_forget {
                    return Err(format!(
                        "the batch asks to forget {} ids, more than the far queue's table \
                         holds ({max_forget})",
                        forget.len()
                    ));
                }
                let n = r.count(8 + 8 + 4 + 8 + 4)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    let id = r.id()?;
                    let priority = r.u32()?;
                    let msg_type = r.u64()? as i64;
                    let len = r.u32()? as usize;
                    if len > max {
                        return Err(format!(
                            "message of {len} bytes is larger than the maximum of {max} bytes"
                        ));
                    }
                    let bytes = r.take(len)?.to_vec();
                    items.push(Item {
                        id,
                        meta: Meta { priority, msg_type },
                        bytes,
                    });
                }
                Request::Batch {
                    via,
                    deadline_ms,
                    forget,
                    items,
                }
            }
            k => return Err(format!("unknown query kind {k}")),
        };
        r.end()?;
        Ok(req)
    }
}

impl Reply {
    /// The payload of this reply.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Reply::Hello { window, remembered } => {
                head(&mut out, HELLO);
                out.extend_from_slice(&window.to_le_bytes());
                ids(&mut out, remembered);
            }
            Reply::Batch { done, dups } => {
                head(&mut out, BATCH);
                out.extend_from_slice(&done.to_le_bytes());
                out.extend_from_slice(&dups.to_le_bytes());
            }
        }
        out
    }

    /// A reply's payload, checked.
    pub fn decode(b: &[u8]) -> Result<Reply, String> {
        let mut r = Reader::new(b)?;
        let reply = match r.kind {
            HELLO => Reply::Hello {
                window: r.u32()?,
                remembered: r.ids()?,
            },
            BATCH => Reply::Batch {
                done: r.u32()?,
                dups: r.u32()?,
            },
            k => return Err(format!("unknown reply kind {k}")),
        };
        r.end()?;
        Ok(reply)
    }
}

/// Reads a payload front to back, every read checked.
struct Reader<'a> {
    b: &'a [u8],
    kind: u8,
}

impl<'a> Reader<'a> {
    fn new(b: &'a [u8]) -> Result<Reader<'a>, String> {
        if b.len() < 6 || &b[..4] != MAGIC {
            return Err("not an ipcworks relay payload".into());
        }
        if b[4] != VERSION {
            return Err(format!(
                "relay protocol version {} (this relay speaks {VERSION}): run the same \
                 ipcworks on both sides",
                b[4]
            ));
        }
        Ok(Reader {
            kind: b[5],
            b: &b[6..],
        })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.b.len() < n {
            return Err("relay payload cut short".into());
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, String> {
        let mut a = [0; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }

    fn u64(&mut self) -> Result<u64, String> {
        let mut a = [0; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }

    fn id(&mut self) -> Result<MessageId, String> {
        Ok(MessageId {
            origin: self.u64()?,
            seq: self.u64()?,
        })
    }

    /// A count of records of at least `each` bytes, no more than what is
    /// left could hold.
    fn count(&mut self, each: usize) -> Result<usize, String> {
        let n = self.u32()? as usize;
        if n > self.b.len() / each {
            return Err("relay payload counts more records than it holds".into());
        }
        Ok(n)
    }

    fn ids(&mut self) -> Result<Vec<MessageId>, String> {
        let n = self.count(16)?;
        (0..n).map(|_| self.id()).collect()
    }

    fn end(&self) -> Result<(), String> {
        if self.b.is_empty() {
            Ok(())
        } else {
            Err("relay payload has bytes after its end".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mid(seq: u64) -> MessageId {
        MessageId { origin: 7, seq }
    }

    #[test]
    fn requests_and_replies_round_trip() {
        let reqs = [
            Request::Hello { via: 42 },
            Request::Batch {
                via: 42,
                deadline_ms: 3000,
                forget: vec![mid(1), mid(2)],
                items: vec![
                    Item {
                        id: mid(3),
                        meta: Meta::with_priority(9),
                        bytes: b"hello".to_vec(),
                    },
                    Item {
                        id: mid(4),
                        meta: Meta::with_type(3),
                        bytes: vec![],
                    },
                ],
            },
        ];
        for r in reqs {
            assert_eq!(Request::decode(&r.encode(), 5, 2).unwrap(), r);
        }
        let replies = [
            Reply::Hello {
                window: 256,
                remembered: vec![mid(9)],
            },
            Reply::Batch { done: 2, dups: 1 },
        ];
        for r in replies {
            assert_eq!(Reply::decode(&r.encode()).unwrap(), r);
        }
    }

    /// Cut, padded, oversized or garbage payloads are errors, never a
    /// panic or a huge allocation.
    #[test]
    fn bad_payloads_are_errors() {
        let r = Request::Batch {
            via: 1,
            deadline_ms: 1,
            forget: vec![mid(1)],
            items: vec![Item {
                id: mid(2),
                meta: Meta::default(),
                bytes: vec![1; 10],
            }],
        };
        let b = r.encode();
        for cut in 0..b.len() {
            assert!(Request::decode(&b[..cut], 100, 8).is_err(), "cut at {cut}");
        }
        let mut long = b.clone();
        long.push(0);
        assert!(Request::decode(&long, 100, 8).is_err());
        assert!(
            Request::decode(&b, 9, 8)
                .unwrap_err()
                .contains("larger than")
        );
        let mut huge = Request::Hello { via: 1 }.encode();
        huge[5] = BATCH;
        huge.extend_from_slice(&0u32.to_le_bytes());
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(Request::decode(&huge, 100, 8).is_err());
        let mut v2 = b.clone();
        v2[4] = 2;
        assert!(
            Request::decode(&v2, 100, 8)
                .unwrap_err()
                .contains("version")
        );
        // A forget list longer than the far table is refused whole: as
        // long as the table, accepted.
        let forget = |n: u64| Request::Batch {
            via: 1,
            deadline_ms: 1,
            forget: (0..n).map(mid).collect(),
            items: vec![],
        };
        assert!(Request::decode(&forget(8).encode(), 100, 8).is_ok());
        let why = Request::decode(&forget(9).encode(), 100, 8).unwrap_err();
        assert!(why.contains("forget 9 ids") && why.contains("(8)"), "{why}");
        assert!(Reply::decode(b"IPCR\x01\x09").is_err());
        assert!(Reply::decode(b"nope").is_err());
    }
}
