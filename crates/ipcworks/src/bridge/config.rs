//! How a session reaches its peers: explicit endpoints and an optional
//! Zenoh configuration file, turned into a [`zenoh::Config`] that talks
//! only to the addresses it is given.
//!
//! Zenoh's own defaults suit a local network that wants discovery: a peer
//! listens on every interface (`tcp/[::]:0`), sends multicast scouting
//! datagrams to 224.0.0.224 and gossips the peers it knows. ipcworks
//! turns all of that off unless asked:
//!
//! - **Multicast scouting and gossip are off** unless the configuration
//!   file itself says `enabled: true` under `scouting.multicast` or
//!   `scouting.gossip`. The file is read twice: by Zenoh (which checks it
//!   and would fill in its defaults, both `true`) and by ipcworks as plain
//!   JSON5, to see which keys the user actually wrote.
//! - **Listening** happens only on the endpoints given ([`Config::listen`],
//!   or the file's `listen.endpoints`); none given means no listener at
//!   all, not Zenoh's `tcp/[::]:0`.
//! - **Connecting**: to the endpoints given ([`Config::connect`], or the
//!   file's `connect.endpoints`), each of which must answer within
//!   [`Config::connect_timeout`] (5 s by default) or opening fails,
//!   unless the file sets `connect.timeout_ms` or
//!   `connect.exit_on_failure` itself. Once connected, Zenoh reconnects
//!   on its own when a link drops.
//! - **Peer mode** (no router needed) unless the file sets `mode`.
//! - A blocked publisher keeps its link: Zenoh closes a link whose
//!   `CongestionControl::Block` sender waited 5 s for room
//!   (`transport.link.tx.queue.congestion_control.block.wait_before_close`),
//!   which would drop what a slow receiver had not taken yet; ipcworks
//!   raises that to a day unless the file sets it. (A peer that dies is
//!   still noticed at once, by its closed connection, or within the link
//!   lease, 10 s, when its host vanishes.)
//!
//! Endpoints on the command line replace the file's list of the same kind.
//! With neither an endpoint nor a file, there is nobody to talk to: that
//! is [`Error::InvalidConfig`], which says what to add.
//!
//! Only Zenoh's TCP transport is built in (`tcp/HOST:PORT`, `tcp/[::1]:PORT`);
//! an endpoint of another protocol is refused with the reason.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{Error, Result};

/// How long each connect endpoint may take to answer when a session
/// opens, by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// `wait_before_close` set by ipcworks (in microseconds): a day.
const BLOCK_WAIT_BEFORE_CLOSE_US: i64 = 24 * 3600 * 1_000_000;

/// Where a Zenoh session connects and listens, and the configuration file
/// it starts from. See the [module docs](self) for what is turned off.
///
/// ```
/// use ipcworks::bridge::Config;
///
/// let mut config = Config::new();
/// config.connect("tcp/127.0.0.1:7447");
/// let z = config.to_zenoh().unwrap();
/// assert_eq!(z.get_json("scouting/multicast/enabled").unwrap(), "false");
/// assert_eq!(z.get_json("listen/endpoints").unwrap(), "[]");
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    connect: Vec<String>,
    listen: Vec<String>,
    file: Option<PathBuf>,
    connect_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config::new()
    }
}

/// What the user's configuration file itself says, read as plain JSON5.
struct Written(serde_json::Value);

impl Written {
    fn none() -> Self {
        Written(serde_json::Value::Null)
    }

    /// Whether the file has a value at `path` (`/a/b/c`).
    fn has(&self, path: &str) -> bool {
        self.0.pointer(path).is_some_and(|v| !v.is_null())
    }

    /// Whether the file says exactly `true` at `path`.
    fn is_true(&self, path: &str) -> bool {
        self.0.pointer(path) == Some(&serde_json::Value::Bool(true))
    }
}

impl Config {
    /// No endpoints and no file yet (opening it as is fails: nobody to
    /// talk to).
    pub fn new() -> Self {
        Config {
            connect: Vec::new(),
            listen: Vec::new(),
            file: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

    /// Adds a peer to connect to, as a Zenoh endpoint (`tcp/HOST:PORT`).
    pub fn connect(&mut self, endpoint: impl Into<String>) -> &mut Self {
        self.connect.push(endpoint.into());
        self
    }

    /// Adds an address to listen on (`tcp/127.0.0.1:7447`; port 0 lets
    /// the kernel choose: [`Session::listening`](super::Session::listening)
    /// tells which).
    pub fn listen(&mut self, endpoint: impl Into<String>) -> &mut Self {
        self.listen.push(endpoint.into());
        self
    }

    /// Starts from a Zenoh configuration file in JSON5 (`.json5` or
    /// `.json`): routers, TLS, access control … Endpoints given with
    /// [`connect`](Self::connect) and [`listen`](Self::listen) replace the
    /// file's.
    pub fn file(&mut self, path: impl Into<PathBuf>) -> &mut Self {
        self.file = Some(path.into());
        self
    }

    /// How long each connect endpoint may take to answer when the session
    /// opens (default [`DEFAULT_CONNECT_TIMEOUT`]); the file's
    /// `connect.timeout_ms` wins.
    pub fn connect_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.connect_timeout = timeout;
        self
    }

    /// The endpoints to connect to, as given.
    pub fn connect_endpoints(&self) -> &[String] {
        &self.connect
    }

    /// The configuration this makes: the file (if any) as Zenoh reads it,
    /// with the policy of the [module docs](self) applied.
    ///
    /// Errors: [`Error::InvalidConfig`] for a file that cannot be read or
    /// is not a valid Zenoh configuration, an endpoint that does not parse
    /// or is not `tcp/`, and for no endpoints and no file at all.
    pub fn to_zenoh(&self) -> Result<zenoh::Config> {
        let (mut z, written) = match &self.file {
            Some(path) => read_file(path)?,
            None => (zenoh::Config::default(), Written::none()),
        };
        let what = || match &self.file {
            Some(p) => format!("Zenoh configuration {}", p.display()),
            None => "Zenoh configuration".to_string(),
        };
        let set = |z: &mut zenoh::Config, key: &str, value: &str| {
            z.insert_json5(key, value)
                .map_err(|e| Error::InvalidConfig {
                    what: what(),
                    reason: format!("{key} = {value}: {e}"),
                })
        };
        for ep in self.connect.iter().chain(&self.listen) {
            check_endpoint(ep)?;
        }
        if self.file.is_none() && self.connect.is_empty() && self.listen.is_empty() {
            return Err(Error::InvalidConfig {
                what: what(),
                reason: "no endpoints: nobody to talk to. Add a peer to connect to \
                         (--connect tcp/HOST:PORT) or an address to listen on \
                         (--listen tcp/HOST:PORT), or a Zenoh configuration file \
                         (--zenoh-config FILE or ZENOH_CONFIG=FILE)"
                    .into(),
            });
        }
        if !written.has("/mode") {
            set(&mut z, "mode", "\"peer\"")?;
        }
        // Talk only to the addresses given: no multicast scouting, no
        // gossip, unless the file itself turns them on.
        if !written.is_true("/scouting/multicast/enabled") {
            set(&mut z, "scouting/multicast/enabled", "false")?;
        }
        if !written.is_true("/scouting/gossip/enabled") {
            set(&mut z, "scouting/gossip/enabled", "false")?;
        }
        if !self.listen.is_empty() || !written.has("/listen/endpoints") {
            set(&mut z, "listen/endpoints", &json_list(&self.listen))?;
        }
        if !self.connect.is_empty() {
            set(&mut z, "connect/endpoints", &json_list(&self.connect))?;
        }
        if !written.has("/connect/timeout_ms") {
            let ms = self.connect_timeout.as_millis().clamp(1, i64::MAX as u128);
            set(&mut z, "connect/timeout_ms", &ms.to_string())?;
        }
        if !written.has("/connect/exit_on_failure") {
            set(&mut z, "connect/exit_on_failure", "true")?;
        }
        let block = "/transport/link/tx/queue/congestion_control/block/wait_before_close";
        if !written.has(block) {
            set(&mut z, &block[1..], &BLOCK_WAIT_BEFORE_CLOSE_US.to_string())?;
        }
        Ok(z)
    }
}

/// A JSON list of strings.
fn json_list(items: &[String]) -> String {
    serde_json::Value::from(items.to_vec()).to_string()
}

/// Checks that `ep` is a Zenoh endpoint of a transport this build has.
fn check_endpoint(ep: &str) -> Result<()> {
    let bad = |reason: String| {
        Err(Error::InvalidConfig {
            what: format!("Zenoh endpoint {ep:?}"),
            reason,
        })
    };
    match ep.parse::<zenoh::config::EndPoint>() {
        Err(e) => bad(format!(
            "{e} (expected tcp/HOST:PORT, e.g. tcp/127.0.0.1:7447)"
        )),
        Ok(e) if e.protocol().as_str() != "tcp" => bad(format!(
            "protocol {:?} is not built in: ipcworks carries Zenoh's TCP transport only \
             (tcp/HOST:PORT, tcp/[::1]:PORT)",
            e.protocol().as_str()
        )),
        Ok(_) => Ok(()),
    }
}

/// Reads a configuration file: as Zenoh reads it (which checks it), and as
/// plain JSON5 (to see which keys it sets).
fn read_file(path: &Path) -> Result<(zenoh::Config, Written)> {
    let what = format!("Zenoh configuration file {}", path.display());
    let bad = |reason: String| Error::InvalidConfig {
        what: what.clone(),
        reason,
    };
    match path.extension().and_then(|e| e.to_str()) {
        Some("json5" | "json") => {}
        _ => {
            return Err(bad(
                "ipcworks reads Zenoh configuration files in JSON5, named *.json5 or *.json".into(),
            ));
        }
    }
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let z = zenoh::Config::from_file(path).map_err(|e| bad(one_line(&e.to_string())))?;
    let written = json5::from_str::<serde_json::Value>(&text).map_err(|e| bad(e.to_string()))?;
    Ok((z, Written(written)))
}

/// Maps a Zenoh error of the operation `op` to [`Error::Zenoh`], its
/// message on one line.
pub(crate) fn zenoh_error(op: &'static str) -> impl FnOnce(zenoh::Error) -> Error {
    move |e| Error::Zenoh {
        op,
        reason: one_line(&e.to_string()),
    }
}

/// A Zenoh error message on one line (its parse errors can span several),
/// without the source locations Zenoh appends (` at /…/file.rs:123.`).
pub(crate) fn one_line(s: &str) -> String {
    let words: Vec<&str> = s.split_whitespace().collect();
    let mut out: Vec<&str> = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        let is_location = |w: &str| {
            let w = w.trim_end_matches(['.', ',', ']', ')']);
            w.rsplit_once(".rs:").is_some_and(|(_, line)| {
                !line.is_empty() && line.bytes().all(|b| b.is_ascii_digit())
            })
        };
        if words[i] == "at" && words.get(i + 1).is_some_and(|w| is_location(w)) {
            i += 2;
            continue;
        }
        out.push(words[i]);
        i += 1;
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(z: &zenoh::Config, key: &str) -> String {
        z.get_json(key).unwrap()
    }

    /// A configuration file in a fresh directory, removed on drop.
    struct File(PathBuf);

    impl File {
        fn new(name: &str, text: &str) -> File {
            let dir = std::env::temp_dir().join(format!(
                "ipcworks-zconf-{}-{}",
                std::process::id(),
                name.replace('.', "-")
            ));
            std::fs::create_dir_all(&dir).unwrap();
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            File(p)
        }
    }

    impl Drop for File {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(self.0.parent().unwrap());
        }
    }

    #[test]
    fn zenoh_messages_lose_their_source_locations() {
        assert_eq!(
            one_line(
                "Invalid Key Expr `a//b`: empty chunks\n are forbidden at /x/y/borrowed.rs:777."
            ),
            "Invalid Key Expr `a//b`: empty chunks are forbidden"
        );
        assert_eq!(one_line("look at the sky"), "look at the sky");
    }

    #[test]
    fn explicit_endpoints_and_nothing_else() {
        let mut c = Config::new();
        c.connect("tcp/127.0.0.1:7447").listen("tcp/[::1]:0");
        let z = c.to_zenoh().unwrap();
        assert_eq!(get(&z, "mode"), "\"peer\"");
        assert_eq!(get(&z, "scouting/multicast/enabled"), "false");
        assert_eq!(get(&z, "scouting/gossip/enabled"), "false");
        assert_eq!(get(&z, "listen/endpoints"), "[\"tcp/[::1]:0\"]");
        assert_eq!(get(&z, "connect/endpoints"), "[\"tcp/127.0.0.1:7447\"]");
        assert_eq!(get(&z, "connect/timeout_ms"), "5000");
        assert_eq!(get(&z, "connect/exit_on_failure"), "true");
        // Connect only: no listener at all (Zenoh's default is tcp/[::]:0).
        let mut c = Config::new();
        c.connect("tcp/127.0.0.1:7447");
        assert_eq!(get(&c.to_zenoh().unwrap(), "listen/endpoints"), "[]");
    }

    #[test]
    fn nothing_to_talk_to_says_what_to_add() {
        let e = Config::new().to_zenoh().unwrap_err();
        assert!(matches!(e, Error::InvalidConfig { .. }), "{e:?}");
        let e = e.to_string();
        for needle in ["--connect", "--listen", "--zenoh-config", "ZENOH_CONFIG"] {
            assert!(e.contains(needle), "{e}");
        }
    }

    #[test]
    fn bad_and_foreign_endpoints_are_refused() {
        for (ep, needle) in [
            ("127.0.0.1:7447", "tcp/HOST:PORT"),
            ("udp/127.0.0.1:7447", "TCP transport only"),
            ("quic/127.0.0.1:7447", "TCP transport only"),
        ] {
            let mut c = Config::new();
            c.connect(ep);
            let e = c.to_zenoh().unwrap_err().to_string();
            assert!(e.contains(needle), "{ep}: {e}");
        }
    }

    #[test]
    fn a_file_turns_scouting_on_only_by_saying_so() {
        // Silent about scouting: off, although Zenoh's default is on.
        let quiet = File::new("quiet.json5", "{ mode: 'peer', /* c */ }");
        let mut c = Config::new();
        c.file(&quiet.0);
        let z = c.to_zenoh().unwrap();
        assert_eq!(get(&z, "scouting/multicast/enabled"), "false");
        assert_eq!(get(&z, "scouting/gossip/enabled"), "false");
        assert_eq!(get(&z, "listen/endpoints"), "[]");
        // Says so: on, as written; its endpoints and timeouts kept.
        let loud = File::new(
            "loud.json5",
            r#"{ scouting: { multicast: { enabled: true }, gossip: { enabled: true } },
                 listen: { endpoints: ["tcp/127.0.0.1:0"] },
                 connect: { timeout_ms: 100 } }"#,
        );
        let mut c = Config::new();
        c.file(&loud.0);
        let z = c.to_zenoh().unwrap();
        assert_eq!(get(&z, "scouting/multicast/enabled"), "true");
        assert_eq!(get(&z, "scouting/gossip/enabled"), "true");
        assert_eq!(get(&z, "listen/endpoints"), "[\"tcp/127.0.0.1:0\"]");
        assert_eq!(get(&z, "connect/timeout_ms"), "100");
        // The command line's endpoints replace the file's.
        c.listen("tcp/127.0.0.1:9");
        let z = c.to_zenoh().unwrap();
        assert_eq!(get(&z, "listen/endpoints"), "[\"tcp/127.0.0.1:9\"]");
    }

    #[test]
    fn a_bad_file_is_one_clear_line() {
        let broken = File::new("broken.json5", "{ mode: 'peer', listen: ");
        let wrong = File::new("wrong.json5", "{ mode: 'boss' }");
        let yaml = File::new("c.yaml", "mode: peer\n");
        for (f, needle) in [
            (&broken.0, "broken.json5"),
            (&wrong.0, "wrong.json5"),
            (&yaml.0, "JSON5"),
        ] {
            let mut c = Config::new();
            c.file(f);
            let e = c.to_zenoh().unwrap_err();
            assert!(matches!(e, Error::InvalidConfig { .. }), "{e:?}");
            let e = e.to_string();
            assert!(e.contains(needle) && !e.contains('\n'), "{e}");
        }
        let mut c = Config::new();
        c.file("/nonexistent/ipcworks.json5");
        let e = c.to_zenoh().unwrap_err().to_string();
        assert!(e.contains("No such file"), "{e}");
    }
}
