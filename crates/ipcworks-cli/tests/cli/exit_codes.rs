//! Exit codes across the CLI: every `--help` lists them all, and an
//! endpoint that does not parse is a usage error (2) wherever one is given.

use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_ipcworks");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The subcommand names listed under "Commands:" in a help text.
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        // "  name  what it does"; wrapped descriptions are indented further.
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

#[test]
fn every_help_lists_every_exit_code() {
    let top = String::from_utf8(run(&["--help"]).stdout).unwrap();
    let mut paths: Vec<Vec<String>> = vec![vec![]];
    for sub in subcommands(&top) {
        let help = String::from_utf8(run(&[&sub, "--help"]).stdout).unwrap();
        for subsub in subcommands(&help) {
            paths.push(vec![sub.clone(), subsub]);
        }
        paths.push(vec![sub]);
    }
    assert!(paths.len() > 15, "found the subcommands: {paths:?}");
    for path in &paths {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let out = run(&args);
        assert!(out.status.success(), "{args:?}");
        let help = String::from_utf8(out.stdout).unwrap();
        let codes = help
            .split_once("Exit codes:")
            .unwrap_or_else(|| panic!("{args:?} --help lists no exit codes"))
            .1;
        for code in ["0 ", "1 ", "2 ", "124 ", "126 ", "127 "] {
            assert!(
                codes.lines().any(|l| l.trim_start().starts_with(code)),
                "{args:?} --help does not list exit code {code}"
            );
        }
        assert!(codes.contains("COMMAND's own code"), "{args:?}");
    }
}

#[test]
fn an_endpoint_that_does_not_parse_is_a_usage_error() {
    for args in [
        vec!["send", "foo:bar", "hi"],
        vec!["recv", "foo:bar"],
        vec!["serve", "foo:bar"],
        vec!["relay", "foo:bar", "-"],
        vec!["relay", "-", "tcp:nohost"],
        vec!["recv", "shm:a/b"],
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.contains("invalid endpoint"), "{err}");
    }
}

/// A build without the `zenoh` feature refuses `zenoh:` endpoints as a
/// usage error that says how to build one with it, before it looks at
/// anything else (here: no endpoints given at all).
#[cfg(not(feature = "zenoh"))]
#[test]
fn a_zenoh_endpoint_without_the_feature_says_how_to_build_it() {
    for args in [
        vec!["send", "zenoh:demo/x", "hi"],
        vec!["recv", "zenoh:demo/**", "--listen", "tcp/127.0.0.1:0"],
        vec!["relay", "-", "zenoh:demo/x"],
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(
            err.contains("no Zenoh") && err.contains("--features zenoh"),
            "{err}"
        );
    }
}
