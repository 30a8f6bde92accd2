//! What the operator gives the executor besides flags: the address map and the node script.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::SshError;

/// `node=host` lines: where to reach nodes whose InternalIP is not the ssh address.
///
/// Blank lines and lines starting with `#` are skipped; spaces around `=` are allowed; the host
/// may be anything `ssh` accepts as a destination host (a name from `~/.ssh/config`, an IP).
pub fn parse_address_map(text: &str) -> Result<BTreeMap<String, String>, SshError> {
    let mut map = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || SshError::AddressMapLine {
            line: i + 1,
            text: raw.to_string(),
        };
        let (node, host) = line.split_once('=').ok_or_else(bad)?;
        let (node, host) = (node.trim(), host.trim());
        if node.is_empty() || host.is_empty() || host.contains(char::is_whitespace) {
            return Err(bad());
        }
        if map.insert(node.to_string(), host.to_string()).is_some() {
            return Err(SshError::AddressMapDuplicate {
                line: i + 1,
                node: node.to_string(),
            });
        }
    }
    Ok(map)
}

/// The user's own script, run on each node instead of the built-in commands.
///
/// It runs as one command: with the interpreter of its `#!` line (else `sh`) as
/// `INTERPRETER -c SCRIPT kubemaint-node-script NODE VERSION MINOR ROLE FIRST`, under
/// `env KUBEMAINT_NODE=… KUBEMAINT_VERSION=… KUBEMAINT_MINOR=… KUBEMAINT_ROLE=…
/// KUBEMAINT_FIRST=…` (the `command` executor's names), with `sudo -n` when the login is not
/// root. Its exit status is the node's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeScript {
    /// Where it was read from (for reports).
    pub path: PathBuf,
    /// Its text.
    pub text: String,
}

impl NodeScript {
    /// Reads a script file.
    pub fn read(path: &Path) -> Result<Self, SshError> {
        let text = std::fs::read_to_string(path).map_err(|source| SshError::Script {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            text,
        })
    }

    /// The interpreter words from the `#!` line (`#!/usr/bin/env bash` → `/usr/bin/env bash`).
    pub(super) fn interpreter(&self) -> Vec<String> {
        self.text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("#!"))
            .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| vec!["sh".to_string()])
    }
}
