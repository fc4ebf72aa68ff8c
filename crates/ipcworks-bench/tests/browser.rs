//! The HTML report in a real browser: a tiny real run (pipe and the
//! channel, with the floor, bare and memcpy baselines; round trips at two
//! sizes; the channel's fan-in) between real processes, its `index.html`
//! written as `ipcworks bench` writes it, then loaded by headless Chromium
//! (Debian's `chromium`, installed by `.ci/run`).
//!
//! Checked: the page loads (the DOM is dumped, no error page), the browser
//! parses all four charts (latency, throughput, round trip by size,
//! fan-in) with one drawn mark per figure or line (each mark laid out
//! with a non-zero size inside its chart), and the page fetches nothing and
//! references nothing outside itself.
//!
//! Without Chromium the test says so in one line and passes (with
//! `CI=true` it fails instead: `.ci/run` installs Chromium);
//! `IPCWORKS_CHROMIUM=/path/to/chrome` picks another Chromium-based browser.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ipcworks_bench::peer::Launcher;
use ipcworks_bench::{Metric, Options, Placement, Results, html, table};
use ipcworks_test_support::need;

/// How long one Chromium run may take before it is killed.
const BROWSER_LIMIT: Duration = Duration::from_secs(60);

/// The peer's side when the harness re-executes this binary; returns at
/// once in a normal test run.
#[test]
fn peer_entry() {
    if let Some(code) = ipcworks_bench::run_if_peer_status() {
        std::process::exit(code);
    }
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "ipcworks-browser-{what}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The browser to use: `IPCWORKS_CHROMIUM`, else Chromium on `PATH`;
/// `None` when the test is to be skipped (one line says so; with `CI=true`
/// a missing browser fails the test instead).
fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("IPCWORKS_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    if !ipcworks_test_support::have(&[need::CHROMIUM]) {
        return None;
    }
    need::CHROMIUM.program()
}

/// Runs headless Chromium on `url` with a fresh profile; returns what it
/// printed on stdout. Killed (its whole process group) after
/// [`BROWSER_LIMIT`], and its helpers are killed once it exits.
fn headless(browser: &Path, url: &str, extra: &[&str]) -> String {
    let profile = TempDir::new("profile");
    let errors = profile.0.join("stderr.txt");
    let mut cmd = Command::new(browser);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-crash-reporter",
        "--noerrdialogs",
    ])
    .arg(format!("--user-data-dir={}", profile.0.display()))
    .args(extra)
    .arg(url)
    .env("HOME", &profile.0)
    .env("XDG_CONFIG_HOME", &profile.0)
    .env("XDG_CACHE_HOME", &profile.0)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(std::fs::File::create(&errors).unwrap())
    .process_group(0);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", browser.display()));
    let group = rustix::process::Pid::from_child(&child);
    let mut out = child.stdout.take().unwrap();
    // Helpers inherit stdout: read it on a thread, EOF comes once the whole
    // group is gone.
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if start.elapsed() > BROWSER_LIMIT {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    let _ = child.wait();
    let stdout = reader.join().unwrap();
    let stderr = std::fs::read_to_string(&errors).unwrap_or_default();
    let Some(status) = status else {
        panic!(
            "{} hung for {BROWSER_LIMIT:?} on {url}; stderr:\n{stderr}",
            browser.display()
        );
    };
    assert!(
        status.success() && !stdout.is_empty(),
        "{} on {url}: {status}, {} bytes on stdout; stderr:\n{stderr}",
        browser.display(),
        stdout.len()
    );
    stdout
}

/// Captures load errors before anything else on the page.
const CATCH_ERRORS: &str = r#"<script>window.__errors=[];addEventListener("error",function(e){var t=e.target;__errors.push(t&&t!==window?(t.tagName+" "+(t.src||t.href||"")):String(e.message));},true);</script>"#;

/// Measures the laid-out page and writes the findings as JSON into
/// `<pre id="browser-check">`.
const MEASURE: &str = r#"<script>
(function(){
  var out={charts:[],errors:window.__errors,resources:[],refs:[]};
  document.querySelectorAll("svg.chart").forEach(function(svg){
    var r=svg.getBoundingClientRect();
    var c={id:svg.id,width:r.width,height:r.height,marks:[]};
    svg.querySelectorAll(".mark").forEach(function(g){
      var drawn=0,outside=0;
      g.querySelectorAll("circle,line,path,polyline,rect").forEach(function(el){
        var b=el.getBoundingClientRect();
        if(!(b.width>0||b.height>0))return;
        if(b.left<r.left-1||b.right>r.right+1||b.top<r.top-1||b.bottom>r.bottom+1)outside++;
        else drawn++;
      });
      c.marks.push({drawn:drawn,outside:outside});
    });
    out.charts.push(c);
  });
  performance.getEntriesByType("resource").forEach(function(e){out.resources.push(e.name);});
  document.querySelectorAll("[src],[href],[srcset],[data],[action],[poster]").forEach(function(el){
    out.refs.push(el.tagName);
  });
  var pre=document.createElement("pre");
  pre.id="browser-check";
  pre.textContent=JSON.stringify(out).replace(/[<>&]/g,"?");
  document.body.appendChild(pre);
})();
</script>"#;

#[derive(Debug, serde::Deserialize)]
struct Check {
    charts: Vec<Chart>,
    errors: Vec<String>,
    resources: Vec<String>,
    refs: Vec<String>,
}

#[derive(Debug, serde::Deserialize)]
struct Chart {
    id: String,
    width: f64,
    height: f64,
    marks: Vec<Mark>,
}

#[derive(Debug, serde::Deserialize)]
struct Mark {
    drawn: usize,
    outside: usize,
}

/// A tiny real run: pipe between two processes, with the baselines;
/// pipe's round trips at two sizes (the round-trip-size chart) and the
/// channel's fan-in with 1, 2 and 4 producers (the fan-in chart).
fn tiny_run() -> Results {
    let opts = Options {
        only: Some(vec!["pipe".into(), "shm".into()]),
        sizes: vec![64, 4096],
        rtt_sizes: vec![64, 4096],
        fan_in: true,
        clients: false,
        time: Duration::from_millis(600),
        placement: Placement::Cross,
        peers: false,
        launcher: Launcher::current_exe(&["--exact", "peer_entry", "--nocapture"]).unwrap(),
        rounds: 1,
    };
    ipcworks_bench::run(&opts, &mut |_| {}).unwrap()
}

#[test]
fn report_loads_in_headless_chromium_and_draws_every_chart() {
    let Some(browser) = chromium() else { return };
    let r = tiny_run();
    let rtts = r
        .figures
        .iter()
        .filter(|f| f.metric == Metric::Rtt && f.size_bytes == 64)
        .count();
    let lines: std::collections::BTreeSet<&str> = r
        .figures
        .iter()
        .filter(|f| f.metric == Metric::Throughput && f.is_plain())
        .map(|f| f.mechanism.as_str())
        .collect();
    // floor poll; bare poll; pipe block and poll; shm block. Throughput:
    // bare, shm, pipe and memcpy.
    assert_eq!((rtts, lines.len()), (5, 4), "{r:?}");
    // Round trips at 64 B and 4 KiB: bare poll, pipe block and poll (shm
    // has its 64 B; the floor skips 4 KiB).
    let size_rows = table::rtt_size_rows(&r);
    assert_eq!(size_rows.len(), 4, "{size_rows:?}");
    // Fan-in: shm at 64 B and 4 KiB, three points each.
    let fan_lines = table::fan_in_lines(&r);
    assert_eq!(fan_lines.len(), 2, "{:?}", r.skipped);

    // Written as `ipcworks bench` writes it.
    let out = TempDir::new("report");
    let page = out.0.join("index.html");
    let text = html::render(&r);
    std::fs::write(out.0.join("results.json"), r.to_json()).unwrap();
    std::fs::write(&page, &text).unwrap();

    // 1. The page itself: loads, and the browser's DOM has both charts.
    let url = format!("file://{}", page.display());
    let dom = headless(&browser, &url, &["--dump-dom"]);
    assert!(
        dom.contains("<h1>ipcworks bench</h1>") && dom.contains("Round-trip latency"),
        "not the report:\n{dom}"
    );
    assert!(
        !dom.contains("chrome-error://") && !dom.contains("ERR_"),
        "{dom}"
    );
    assert_eq!(dom.matches("<svg").count(), 4, "{dom}");
    for id in [
        "latency-chart",
        "throughput-chart",
        "rtt-size-chart",
        "fan-in-chart",
    ] {
        assert!(dom.contains(&format!("id=\"{id}\"")), "{id}");
    }
    assert_eq!(
        dom.matches("class=\"mark\"").count(),
        rtts + lines.len() + size_rows.len() + fan_lines.len()
    );
    // Nothing remote: the only URL is the SVG namespace.
    let lower = dom.to_ascii_lowercase();
    assert_eq!(
        lower.matches("http").count(),
        lower.matches("http://www.w3.org/2000/svg").count(),
        "{dom}"
    );
    for bad in [
        "<script", "<link", "<img", "<iframe", "src=", "href=", "url(", "@import",
    ] {
        assert!(!lower.contains(bad), "the report contains {bad:?}");
    }

    // 2. A copy with a measuring script: what the browser laid out.
    let probe = out.0.join("probe.html");
    let instrumented = text
        .replacen("<head>", &format!("<head>\n{CATCH_ERRORS}"), 1)
        .replacen("</body>", &format!("{MEASURE}\n</body>"), 1);
    std::fs::write(&probe, instrumented).unwrap();
    let dom = headless(
        &browser,
        &format!("file://{}", probe.display()),
        &["--dump-dom", "--window-size=1280,2400"],
    );
    let json = dom
        .split_once("<pre id=\"browser-check\">")
        .and_then(|(_, rest)| rest.split_once("</pre>"))
        .map(|(j, _)| j.replace("&quot;", "\""))
        .unwrap_or_else(|| panic!("the measuring script did not run:\n{dom}"));
    let check: Check = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    eprintln!("browser check: {check:?}");
    assert_eq!(check.errors, Vec::<String>::new(), "errors while loading");
    assert_eq!(
        check.resources,
        Vec::<String>::new(),
        "the page fetched something"
    );
    assert_eq!(
        check.refs,
        Vec::<String>::new(),
        "elements referring elsewhere"
    );
    let ids: Vec<&str> = check.charts.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "latency-chart",
            "throughput-chart",
            "rtt-size-chart",
            "fan-in-chart"
        ]
    );
    for c in &check.charts {
        assert!(c.width >= 600.0 && c.height >= 100.0, "{c:?}");
        let (want, drawn) = match c.id.as_str() {
            "latency-chart" => (rtts, 3..=5),
            // The line and one dot per size (of two).
            "throughput-chart" => (lines.len(), 3..=3),
            "rtt-size-chart" => (size_rows.len(), 3..=3),
            // The line and one dot per producer count (of three).
            _ => (fan_lines.len(), 4..=4),
        };
        assert_eq!(c.marks.len(), want, "{c:?}");
        for m in &c.marks {
            // Latency: median dot, p99.9 tick and max cross always have a
            // size; the whisker and the p99 bar have none when p99.9 or p99
            // equals the median.
            assert!(drawn.contains(&m.drawn) && m.outside == 0, "{c:?}");
        }
    }
}
