//! The options of `zenoh:` endpoints, shared by `send`, `recv` and `relay`,
//! and what `recv`/`relay` say on stderr about a subscription.

use std::path::PathBuf;
use std::time::Duration;

use ipcworks::Error;
use ipcworks::endpoint::{Endpoint, ZenohOptions};

/// `--connect`, `--listen`, `--zenoh-config`.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Zenoh (zenoh: endpoints; a build with --features zenoh)")]
pub struct ZenohArgs {
    /// Connect to a Zenoh peer or router at ENDPOINT (tcp/HOST:PORT,
    /// tcp/[::1]:PORT); it must answer within 5 s. Repeatable.
    #[arg(long, value_name = "ENDPOINT")]
    connect: Vec<String>,
    /// Listen for Zenoh peers on ENDPOINT (tcp/127.0.0.1:7447; port 0: any
    /// free port, which stderr reports). Repeatable.
    #[arg(long, value_name = "ENDPOINT")]
    listen: Vec<String>,
    /// A Zenoh configuration file (JSON5) for routers, TLS, access control
    /// (default: the file $ZENOH_CONFIG names). Multicast scouting and
    /// gossip stay off unless it turns them on.
    #[arg(long, value_name = "FILE")]
    zenoh_config: Option<PathBuf>,
}

/// What the `after_help` of send, recv and relay says about `zenoh:` (a
/// macro, so it can be `concat!`ed into a help text).
macro_rules! help {
    () => {
        "zenoh:KEYEXPR — Zenoh publish/subscribe, across hosts (peer mode, no router
needed). Give it somewhere to talk: --listen tcp/HOST:PORT on one side,
--connect tcp/HOST:PORT on the other (or --zenoh-config FILE / ZENOH_CONFIG).
ipcworks talks only to those addresses: multicast scouting and gossip are off
unless the configuration file turns them on. send waits (up to -t, default 5 s)
until a subscriber matches, then publishes reliably; recv says on stderr when it
is subscribed and when peers connect. Priority and type travel in the sample's
attachment (see the README); plain Zenoh programs' samples are plain messages."
    };
}
pub(crate) use help;

impl ZenohArgs {
    /// The library's options, with `wait` (a `-t`) as the time to wait for
    /// a subscriber and for each connect endpoint. Refuses these options
    /// when none of `endpoints` is a `zenoh:` one (a usage error).
    pub fn options(
        &self,
        endpoints: &[&Endpoint],
        wait: Option<Duration>,
    ) -> anyhow::Result<ZenohOptions> {
        let given =
            !self.connect.is_empty() || !self.listen.is_empty() || self.zenoh_config.is_some();
        if given && !endpoints.iter().any(|e| matches!(e, Endpoint::Zenoh(_))) {
            return Err(Error::InvalidConfig {
                what: "options".into(),
                reason: "--connect, --listen and --zenoh-config apply to zenoh: endpoints only"
                    .into(),
            }
            .into());
        }
        let mut o = ZenohOptions {
            connect: self.connect.clone(),
            listen: self.listen.clone(),
            config_file: self.zenoh_config.clone(),
            ..ZenohOptions::default()
        };
        if let Some(t) = wait {
            o.subscriber_wait = Some(t);
            o.connect_timeout = t.max(Duration::from_millis(1));
        }
        Ok(o)
    }
}

/// Opens a `zenoh:` receiver, and says on stderr (as `who`) that it is
/// subscribed, where it listens, and — now and later — which peers
/// connect and go.
#[cfg(feature = "zenoh")]
pub fn open_receiver(
    key: &str,
    opts: &ipcworks::endpoint::Options,
    who: &'static str,
) -> ipcworks::Result<Box<dyn ipcworks::message::MessageReceiver>> {
    let (rx, session) = ipcworks::endpoint::zenoh::open_receiver(key, opts)?;
    session.watch_links(move |change| {
        let what = if change.up {
            "connected to"
        } else {
            "disconnected from"
        };
        eprintln!(
            "{who}: {what} Zenoh peer {} ({})",
            change.peer, change.remote
        );
    })?;
    let listening = session.listening();
    let listening = if listening.is_empty() {
        String::new()
    } else {
        format!(", listening on {}", listening.join(", "))
    };
    eprintln!(
        "{who}: subscribed to zenoh:{key} as Zenoh peer {}{listening}",
        session.zid()
    );
    Ok(Box::new(rx))
}
