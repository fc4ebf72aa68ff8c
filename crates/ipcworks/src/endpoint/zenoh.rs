//! `zenoh:KEYEXPR`: publish/subscribe across hosts over Zenoh (the
//! library's `bridge` module, feature `zenoh`).
//!
//! Policy:
//! - Each open makes its own Zenoh session in **peer
//!   mode** (no router needed), from [`ZenohOptions`]: the endpoints to
//!   connect to and listen on (`tcp/HOST:PORT`, `tcp/[::1]:PORT`) and a
//!   Zenoh configuration file ([`ZenohOptions::config_file`], else the
//!   file named by `ZENOH_CONFIG`, Zenoh's usual variable). Multicast
//!   scouting and gossip stay off unless that file turns them on; with
//!   neither an endpoint nor a file the open fails
//!   ([`Error::InvalidConfig`](crate::Error::InvalidConfig), a usage
//!   error) saying what to add. Each connect endpoint must answer within
//!   [`ZenohOptions::connect_timeout`].
//! - A **sender** waits up to [`ZenohOptions::subscriber_wait`] (5 s by
//!   default) for a subscriber on the key, then publishes reliably; if
//!   none appears it fails with
//!   [`Error::NoSubscriber`](crate::Error::NoSubscriber) and nothing was
//!   sent. A **receiver** subscribes; it has no end of stream.
//! - [`Options::max_message`](super::Options::max_message) bounds the message size on both ends;
//!   [`Options::capacity`](super::Options::capacity) is the receiver's queue of samples.
//! - [`Meta`](crate::message::Meta) (priority, System V type) travels in
//!   the sample's attachment; plain Zenoh programs' samples are messages
//!   with the default metadata (see the `bridge` module).

use std::path::PathBuf;
use std::time::Duration;

#[cfg(feature = "zenoh")]
use super::Options;
#[cfg(feature = "zenoh")]
use crate::Result;

/// The variable naming a Zenoh configuration file when
/// [`ZenohOptions::config_file`] is not set (Zenoh's own convention).
pub const CONFIG_ENV: &str = "ZENOH_CONFIG";

/// How a `zenoh:` endpoint reaches its peers ([`Options::zenoh`](super::Options::zenoh)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZenohOptions {
    /// Peers to connect to (`tcp/HOST:PORT`); they replace the
    /// configuration file's `connect.endpoints`.
    pub connect: Vec<String>,
    /// Addresses to listen on (`tcp/127.0.0.1:7447`; port 0: any free
    /// port); they replace the file's `listen.endpoints`. None and none in
    /// the file: no listener.
    pub listen: Vec<String>,
    /// A Zenoh configuration file in JSON5; `None` reads the file named by
    /// `ZENOH_CONFIG`, if that is set.
    pub config_file: Option<PathBuf>,
    /// How long a sender waits for a subscriber when it opens (and, once
    /// open, sends wait while none matches); `None` publishes
    /// fire-and-forget. Default 5 s.
    pub subscriber_wait: Option<Duration>,
    /// How long each connect endpoint may take to answer. Default 5 s.
    pub connect_timeout: Duration,
}

impl Default for ZenohOptions {
    fn default() -> Self {
        ZenohOptions {
            connect: Vec::new(),
            listen: Vec::new(),
            config_file: None,
            subscriber_wait: Some(Duration::from_secs(5)),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

impl ZenohOptions {
    /// The configuration file to use: [`config_file`](Self::config_file),
    /// else `$ZENOH_CONFIG` when set and not empty.
    pub fn effective_config_file(&self) -> Option<PathBuf> {
        self.config_file.clone().or_else(|| {
            std::env::var_os(CONFIG_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
    }
}

/// Checks a `zenoh:` key expression for the parser: `Err(reason)` when it
/// is invalid, or when this build has no Zenoh.
pub(super) fn check_key(key: &str) -> std::result::Result<(), String> {
    #[cfg(feature = "zenoh")]
    {
        crate::bridge::check_key(key)
            .map_err(|why| format!("{why} (a key expression: site/jobs, site/*, site/**)"))
    }
    #[cfg(not(feature = "zenoh"))]
    {
        let _ = key;
        Err(
            "this build of ipcworks has no Zenoh: build it with the `zenoh` feature \
             (cargo build --release --features zenoh)"
                .to_string(),
        )
    }
}

/// The session `opts.zenoh` describes.
#[cfg(feature = "zenoh")]
pub fn session(opts: &Options) -> Result<crate::bridge::Session> {
    let z = &opts.zenoh;
    let mut config = crate::bridge::Config::new();
    for ep in &z.connect {
        config.connect(ep.clone());
    }
    for ep in &z.listen {
        config.listen(ep.clone());
    }
    if let Some(file) = z.effective_config_file() {
        config.file(file);
    }
    config.connect_timeout(z.connect_timeout);
    crate::bridge::Session::open(&config)
}

/// `zenoh:KEY` for sending: a session as `opts.zenoh` says, a publisher on
/// `key` that waited for a subscriber.
#[cfg(feature = "zenoh")]
pub fn open_sender(key: &str, opts: &Options) -> Result<crate::bridge::Sender> {
    let mut b = session(opts)?
        .sender(key)
        .wait_for_subscriber(opts.zenoh.subscriber_wait);
    if let Some(max) = opts.max_message {
        b = b.max_message(max);
    }
    b.open()
}

/// `zenoh:KEY` for receiving: a session as `opts.zenoh` says, and a
/// subscriber on `key`; with the session, for its state
/// ([`Session::listening`](crate::bridge::Session::listening),
/// [`peers`](crate::bridge::Session::peers)).
#[cfg(feature = "zenoh")]
pub fn open_receiver(
    key: &str,
    opts: &Options,
) -> Result<(crate::bridge::Receiver, crate::bridge::Session)> {
    let session = session(opts)?;
    let mut b = session.receiver(key);
    if let Some(max) = opts.max_message {
        b = b.max_message(max);
    }
    if let Some(c) = opts.capacity {
        b = b.capacity(c);
    }
    Ok((b.open()?, session))
}
