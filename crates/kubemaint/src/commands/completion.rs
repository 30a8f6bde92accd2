//! `kubemaint completion bash|zsh|fish|...`: shell completion scripts, as `kubectl completion`.

use clap::Args;
use clap_complete::Shell;

/// Arguments of `completion`.
#[derive(Debug, Args)]
#[command(after_help = "Load completions in the current shell:
  bash:  source <(kubemaint completion bash)
  zsh:   source <(kubemaint completion zsh)
  fish:  kubemaint completion fish | source

Or install them for every session:
  bash:  kubemaint completion bash > /etc/bash_completion.d/kubemaint
  zsh:   kubemaint completion zsh > \"${fpath[1]}/_kubemaint\"
  fish:  kubemaint completion fish > ~/.config/fish/completions/kubemaint.fish")]
pub struct CompletionArgs {
    /// The shell to write the script for.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: Shell,
}

/// Writes the completion script for `command` (the whole CLI) to stdout.
pub fn run(args: &CompletionArgs, mut command: clap::Command) {
    let name = command.get_name().to_string();
    clap_complete::generate(args.shell, &mut command, name, &mut std::io::stdout());
}
