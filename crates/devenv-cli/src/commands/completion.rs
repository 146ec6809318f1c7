//! `devenv completion bash|zsh|fish`.

use clap::CommandFactory as _;
use clap_complete::Shell as Target;

use crate::cli::{Cli, Shell};

pub fn run(shell: Shell) {
    let target = match shell {
        Shell::Bash => Target::Bash,
        Shell::Zsh => Target::Zsh,
        Shell::Fish => Target::Fish,
    };
    clap_complete::generate(
        target,
        &mut Cli::command(),
        "devenv",
        &mut std::io::stdout(),
    );
}
