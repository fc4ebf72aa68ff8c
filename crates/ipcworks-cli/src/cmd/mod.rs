//! One module per subcommand: its arguments and its `run`.

pub mod bench;
pub mod completions;
pub mod demo;
pub mod format;
pub mod lock;
pub mod ls;
pub mod recv;
pub mod regions;
pub mod relay;
pub mod rm;
pub mod sem;
pub mod send;
pub mod serve;
pub mod zenoh;

use std::time::Duration;

/// Parses a duration argument: plain seconds (`2`, `0.5`) or with a unit
/// (`200ms`, `2s`, `1m`, `1h 30m`), as humantime reads them.
pub fn duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if let Ok(secs) = t.parse::<f64>() {
        return Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("{s:?} is not a duration 0 or more (like 2, 0.5, 200ms, 1m)"));
    }
    humantime::parse_duration(t)
        .map_err(|e| format!("{s:?} is not a duration like 2, 0.5, 200ms, 2s or 1m ({e})"))
}
