//! `zenoh` (feature `zenoh`): the `zenoh:` endpoint's engine between two
//! processes over loopback TCP — two Zenoh peers (ipcworks' bridge: peer
//! mode, explicit `tcp/127.0.0.1` endpoints, multicast scouting and gossip
//! off), the parent listening on a port of the kernel's choice, the peer
//! connecting to it. Ping and pong are two keys, each a reliable publisher
//! (congestion control `Block`) and a subscriber. It is the cost of
//! reaching another host with the same tools, measured on one: beside
//! `tcp`, what Zenoh's protocol, routing and threads add.
//!
//! Block rows wait in the subscriber's channel; poll rows retry
//! `try_recv` (and a send that finds no subscriber yet).

use std::io;
use std::time::Instant;

use ipcworks::bridge::{Config, Receiver, Sender, Session};
use ipcworks::message::Deadline;

use super::message::Messages;
use crate::harness::{Case, Handoff, Link, Mechanism, Setup};

/// Zenoh publish/subscribe over loopback TCP.
pub struct Zenoh;

fn keys(base: &str) -> (String, String) {
    (
        format!("ipcworks-bench/{base}/ping"),
        format!("ipcworks-bench/{base}/pong"),
    )
}

fn session(config: &mut Config) -> io::Result<Session> {
    Ok(Session::open(config)?)
}

fn sender(s: &Session, key: &str, case: &Case, deadline: Instant) -> io::Result<Sender> {
    let tx = s
        .sender(key)
        .max_message(case.size.max(1))
        .wait_for_subscriber(None)
        .open()?;
    tx.wait_for_subscriber(Deadline::At(deadline))?;
    Ok(tx)
}

fn receiver(s: &Session, key: &str, case: &Case) -> io::Result<Receiver> {
    Ok(s.receiver(key).max_message(case.size.max(1)).open()?)
}

impl Mechanism for Zenoh {
    fn name(&self) -> &'static str {
        "zenoh"
    }

    fn setup(&self, case: &Case) -> io::Result<Setup> {
        let base = super::unique("zenoh");
        let (ping, pong) = keys(&base);
        let here = session(Config::new().listen("tcp/127.0.0.1:0"))?;
        let at = here
            .listening()
            .into_iter()
            .next()
            .ok_or_else(|| io::Error::other("zenoh: the session listens nowhere"))?;
        // Subscribed before the peer starts, so its pong sender matches.
        let rx = receiver(&here, &pong, case)?;
        let case = *case;
        let connect = Box::new(move |deadline: Instant| -> io::Result<Box<dyn Link>> {
            let tx = sender(&here, &ping, &case, deadline)?;
            Ok(Box::new(Messages::new(tx, rx, case.wait, here)) as Box<dyn Link>)
        });
        Ok(Setup {
            fds: vec![],
            args: vec![at, base],
            connect,
            keep: vec![],
        })
    }

    fn peer(&self, case: &Case, h: Handoff) -> io::Result<Box<dyn Link>> {
        let (ping, pong) = keys(h.arg(1)?);
        let there = session(Config::new().connect(h.arg(0)?))?;
        let rx = receiver(&there, &ping, case)?;
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        let tx = sender(&there, &pong, case, deadline)?;
        Ok(Box::new(Messages::new(tx, rx, case.wait, there)))
    }
}
