//! age encryption settings: x25519 recipients or a passphrase, and the identities that open a
//! backup again. Secrets never appear in `Debug` output or errors.

use std::path::{Path, PathBuf};

use age::secrecy::SecretString;

/// Why an encryption or decryption setting is unusable.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A recipient is not an age x25519 public key.
    #[error("{what} is not an age recipient (age1...): {detail}")]
    BadRecipient {
        /// Where it came from (the value or the file and line).
        what: String,
        /// The parser's complaint.
        detail: String,
    },
    /// An identity file holds no usable key.
    #[error("{} holds no usable age identity: {detail}; give a file with AGE-SECRET-KEY-1... lines (age-keygen output)", path.display())]
    BadIdentity {
        /// The file.
        path: PathBuf,
        /// The cause.
        detail: String,
    },
    /// The passphrase file is empty.
    #[error("{} is empty: a passphrase file holds the passphrase on its first line", path.display())]
    EmptyPassphrase {
        /// The file.
        path: PathBuf,
    },
    /// Recipients and a passphrase together.
    #[error(
        "age cannot encrypt one file to both recipients and a passphrase (a passphrase stanza must be alone); choose --recipient/--recipients-file or --passphrase-file"
    )]
    Mixed,
}

/// How to encrypt a new backup.
pub enum Encrypt {
    /// To these x25519 public keys (any one of their identities opens it).
    Recipients(Vec<age::x25519::Recipient>),
    /// To a passphrase (scrypt).
    Passphrase(SecretString),
}

impl std::fmt::Debug for Encrypt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Encrypt::Recipients(r) => f
                .debug_tuple("Recipients")
                .field(&r.iter().map(|r| r.to_string()).collect::<Vec<_>>())
                .finish(),
            Encrypt::Passphrase(_) => f.write_str("Passphrase(<redacted>)"),
        }
    }
}

impl Encrypt {
    /// From command-line values: recipients given directly, recipients files (one `age1...`
    /// per line, `#` comments), and a passphrase file (first line). `None` when none is given.
    pub fn from_args(
        recipients: &[String],
        recipients_files: &[PathBuf],
        passphrase_file: Option<&Path>,
    ) -> Result<Option<Encrypt>, CryptoError> {
        let mut keys = Vec::new();
        for r in recipients {
            keys.push(parse_recipient(r, r)?);
        }
        for path in recipients_files {
            let text = read(path)?;
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                keys.push(parse_recipient(
                    line,
                    &format!("{} line {}", path.display(), n + 1),
                )?);
            }
        }
        match (keys.is_empty(), passphrase_file) {
            (true, None) => Ok(None),
            (false, None) => Ok(Some(Encrypt::Recipients(keys))),
            (true, Some(p)) => Ok(Some(Encrypt::Passphrase(read_passphrase(p)?))),
            (false, Some(_)) => Err(CryptoError::Mixed),
        }
    }

    /// The age encryptor for one object.
    pub fn encryptor(&self) -> age::Encryptor {
        match self {
            Encrypt::Recipients(keys) => {
                age::Encryptor::with_recipients(keys.iter().map(|k| k as &dyn age::Recipient))
                    .expect("x25519 recipients always combine")
            }
            Encrypt::Passphrase(p) => age::Encryptor::with_user_passphrase(p.clone()),
        }
    }

    /// What the manifest records.
    pub fn describe(&self) -> crate::manifest::Encryption {
        crate::manifest::Encryption {
            format: "age".into(),
            recipients: match self {
                Encrypt::Recipients(keys) => keys.iter().map(|k| k.to_string()).collect(),
                Encrypt::Passphrase(_) => Vec::new(),
            },
            passphrase: matches!(self, Encrypt::Passphrase(_)),
        }
    }
}

fn parse_recipient(value: &str, what: &str) -> Result<age::x25519::Recipient, CryptoError> {
    value
        .parse::<age::x25519::Recipient>()
        .map_err(|detail| CryptoError::BadRecipient {
            what: what.to_string(),
            detail: detail.to_string(),
        })
}

fn read(path: &Path) -> Result<String, CryptoError> {
    std::fs::read_to_string(path).map_err(|source| CryptoError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn read_passphrase(path: &Path) -> Result<SecretString, CryptoError> {
    let text = read(path)?;
    let first = text.lines().next().unwrap_or("").to_string();
    if first.is_empty() {
        return Err(CryptoError::EmptyPassphrase {
            path: path.to_path_buf(),
        });
    }
    Ok(SecretString::from(first))
}

/// The keys that may open an encrypted backup.
#[derive(Default)]
pub struct Decrypt {
    identities: Vec<Box<dyn age::Identity + Send + Sync>>,
    sources: Vec<String>,
}

impl std::fmt::Debug for Decrypt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decrypt")
            .field("sources", &self.sources)
            .finish_non_exhaustive()
    }
}

impl Decrypt {
    /// From identity files (age-keygen output) and a passphrase file.
    pub fn from_args(
        identity_files: &[PathBuf],
        passphrase_file: Option<&Path>,
    ) -> Result<Decrypt, CryptoError> {
        let mut d = Decrypt::default();
        for path in identity_files {
            let file =
                age::IdentityFile::from_file(path.display().to_string()).map_err(|source| {
                    CryptoError::Read {
                        path: path.clone(),
                        source,
                    }
                })?;
            let ids = file
                .into_identities()
                .map_err(|e| CryptoError::BadIdentity {
                    path: path.clone(),
                    detail: e.to_string(),
                })?;
            if ids.is_empty() {
                return Err(CryptoError::BadIdentity {
                    path: path.clone(),
                    detail: "no keys found".into(),
                });
            }
            d.identities.extend(ids);
            d.sources.push(format!("identity file {}", path.display()));
        }
        if let Some(p) = passphrase_file {
            let pass = read_passphrase(p)?;
            d.identities
                .push(Box::new(age::scrypt::Identity::new(pass)));
            d.sources.push(format!("passphrase file {}", p.display()));
        }
        Ok(d)
    }

    /// True when no key was given.
    pub fn is_empty(&self) -> bool {
        self.identities.is_empty()
    }

    /// What was given, for messages ("identity file k.txt, passphrase file p").
    pub fn describe(&self) -> String {
        self.sources.join(", ")
    }

    /// The identities, for age's decryptor.
    pub fn identities(&self) -> impl Iterator<Item = &dyn age::Identity> {
        self.identities
            .iter()
            .map(|i| i.as_ref() as &dyn age::Identity)
    }
}
