//! Output formats shared by all commands.

use clap::ValueEnum;
use serde::Serialize;

/// How a command prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable tables and lines.
    Table,
    /// One JSON document on stdout.
    Json,
    /// One YAML document on stdout.
    Yaml,
    /// A Markdown runbook (`upgrade plan`; other commands print their table).
    Markdown,
}

impl OutputFormat {
    /// True for the machine-readable formats, where stdout carries only the document.
    pub fn is_machine(self) -> bool {
        !matches!(self, OutputFormat::Table | OutputFormat::Markdown)
    }
}

/// Prints `value` as JSON or YAML; returns false for [`OutputFormat::Table`] so the caller prints a table.
pub fn print_machine<T: Serialize>(format: OutputFormat, value: &T) -> anyhow::Result<bool> {
    match format {
        OutputFormat::Table | OutputFormat::Markdown => Ok(false),
        OutputFormat::Json => {
            println!("{}", serde_json::to_string_pretty(value)?);
            Ok(true)
        }
        OutputFormat::Yaml => {
            print!("{}", serde_saphyr::to_string(value)?);
            Ok(true)
        }
    }
}
