//! `ipcworks completions SHELL`: shell completion scripts.

use std::process::ExitCode;

use clap_complete::Shell;

/// Arguments of `ipcworks completions`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  ipcworks completions bash > ~/.local/share/bash-completion/completions/ipcworks
  ipcworks completions zsh  > \"${fpath[1]}/_ipcworks\"
  ipcworks completions fish > ~/.config/fish/completions/ipcworks.fish")]
pub struct Args {
    /// The shell.
    shell: Shell,
}

/// Runs `ipcworks completions`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut cmd = crate::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "ipcworks", &mut script);
    crate::exit::write_stdout(&script)?;
    Ok(ExitCode::SUCCESS)
}
