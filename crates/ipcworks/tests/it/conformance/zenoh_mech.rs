//! `zenoh`: a Zenoh publisher and subscriber on two sessions linked over
//! loopback TCP (explicit `tcp/127.0.0.1` endpoints, scouting off), the
//! way two hosts would be. Publish/subscribe has no disconnect and no
//! priority order, so its line lists neither.

use ipcworks::Error;
use ipcworks::bridge::zenoh::Wait;
use ipcworks::bridge::{Config, Session};
use ipcworks::message::{MessageReceiver, MessageSender};

use super::{LIMIT, Mechanism, Pair, Shared};
use crate::support;

/// Largest message of the pairs.
const MAX: usize = 4096;

/// A session listening on a port of the kernel's choice, and a key of
/// this test's own.
fn listening() -> (Session, String, String) {
    let mut c = Config::new();
    c.listen("tcp/127.0.0.1:0");
    let s = Session::open(&c).unwrap();
    let at = s
        .listening()
        .into_iter()
        .next()
        .expect("a listening locator");
    assert!(at.starts_with("tcp/127.0.0.1:"), "{at}");
    (s, at, format!("it/{}", support::unique_name("conf-zenoh")))
}

fn connected(to: &str) -> Session {
    let mut c = Config::new();
    c.connect(to);
    Session::open(&c).unwrap()
}

/// The receiving session, the publishing one, and the key.
type Keep = (Session, Session, String);

pub struct Zenoh;

impl Mechanism for Zenoh {
    fn name(&self) -> &'static str {
        "zenoh"
    }
    fn max_message(&self) -> usize {
        MAX
    }
    fn pair(&self) -> Pair {
        let (here, at, key) = listening();
        let rx = here.receiver(&key).max_message(MAX).open().unwrap();
        let there = connected(&at);
        let tx = there
            .sender(&key)
            .max_message(MAX)
            .wait_for_subscriber(Some(LIMIT))
            .open()
            .unwrap();
        Pair {
            tx: Box::new(tx),
            rx: Box::new(rx),
            keep: Box::new((here, there, key)),
        }
    }
    fn shared(&self) -> Shared {
        let (here, at, key) = listening();
        // Subscribed before the children start, so their senders match.
        let rx = here.receiver(&key).max_message(MAX).open().unwrap();
        Shared {
            addr: format!("{key}#{at}"),
            pass: None,
            open: Box::new(move || (Box::new(rx) as Box<dyn MessageReceiver>, None)),
            select: None,
            keep: Box::new(here),
        }
    }
    fn child_sender(&self, addr: &str) -> Box<dyn MessageSender> {
        let (key, at) = addr.split_once('#').expect("KEY#ENDPOINT");
        let tx = connected(at)
            .sender(key)
            .max_message(MAX)
            .wait_for_subscriber(Some(LIMIT))
            .open()
            .unwrap();
        Box::new(tx)
    }
    /// A foreign publisher puts a sample whose attachment claims to be
    /// ours but is cut short.
    fn break_it(&self, pair: &mut Pair) -> fn(&Error) -> bool {
        let (_, there, key) = pair.keep.downcast_ref::<Keep>().unwrap();
        there
            .zenoh()
            .put(key.as_str(), "bad")
            .attachment(&b"IPCW\x01"[..])
            .wait()
            .unwrap();
        |e| matches!(e, Error::Zenoh { reason, .. } if reason.contains("malformed"))
    }
}
