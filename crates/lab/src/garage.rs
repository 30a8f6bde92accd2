//! A real Garage S3-compatible object store (crates.io `garage`, built once by
//! `scripts/build-garage.sh` into `~/.cache/kubemaint-garage/<version>/bin/garage`) started on
//! loopback for tests: one node, layout assigned and applied, one bucket and one key with
//! read/write/owner rights on it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The Garage version the project builds and tests against.
pub const GARAGE_VERSION: &str = "2.5.0";

/// The S3 region the test store answers for.
pub const REGION: &str = "garage";

/// Why Garage could not be started.
#[derive(Debug, thiserror::Error)]
pub enum GarageError {
    /// The binary is missing.
    #[error("the Garage binary {} is missing: run scripts/build-garage.sh (builds crates.io garage {GARAGE_VERSION} once and caches it), or set KUBEMAINT_GARAGE_BIN", path.display())]
    Missing {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// I/O while preparing or starting.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A `garage` admin command failed.
    #[error("`garage {args}` failed: {detail}")]
    Command {
        /// The arguments.
        args: String,
        /// Its output.
        detail: String,
    },
    /// The server did not come up.
    #[error("garage did not answer within {0:?}; see its log {1}")]
    Timeout(Duration, String),
}

/// The Garage binary: `$KUBEMAINT_GARAGE_BIN`, else the cache.
pub fn binary() -> Result<PathBuf, GarageError> {
    let path = match std::env::var_os("KUBEMAINT_GARAGE_BIN") {
        Some(p) => PathBuf::from(p),
        None => {
            let cache = std::env::var_os("KUBEMAINT_GARAGE_CACHE")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    Path::new(&std::env::var_os("HOME").unwrap_or_default())
                        .join(".cache/kubemaint-garage")
                });
            cache.join(GARAGE_VERSION).join("bin/garage")
        }
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(GarageError::Missing { path })
    }
}

/// A running single-node Garage.
#[derive(Debug)]
pub struct Garage {
    /// `http://127.0.0.1:PORT` (S3 API).
    pub endpoint: String,
    /// The admin API (`http://127.0.0.1:PORT`).
    pub admin_endpoint: String,
    /// The bucket created for the test.
    pub bucket: String,
    /// Access key ID with read/write/owner rights on the bucket.
    pub key_id: String,
    /// Its secret.
    pub secret: String,
    /// The working directory (config, data, log).
    pub dir: PathBuf,
    config: PathBuf,
    program: PathBuf,
    child: Child,
}

impl Garage {
    /// Starts Garage under `dir` with a bucket named `bucket`, and waits until it serves it.
    pub fn start(dir: &Path, bucket: &str) -> Result<Garage, GarageError> {
        let program = binary()?;
        let io = |what: &str| {
            let what = what.to_string();
            move |source| GarageError::Io { what, source }
        };
        std::fs::create_dir_all(dir).map_err(io("creating the Garage dir"))?;
        let ports = crate::process::free_ports(4).map_err(io("finding free ports"))?;
        let secret: String = (0..32)
            .map(|i| format!("{:02x}", (i * 37 + ports[0] as usize) as u8))
            .collect();
        let config = dir.join("garage.toml");
        let text = format!(
            "metadata_dir = \"{meta}\"\ndata_dir = \"{data}\"\ndb_engine = \"lmdb\"\nreplication_factor = 1\n\
             rpc_bind_addr = \"127.0.0.1:{rpc}\"\nrpc_public_addr = \"127.0.0.1:{rpc}\"\nrpc_secret = \"{secret}\"\n\n\
             [s3_api]\ns3_region = \"{REGION}\"\napi_bind_addr = \"127.0.0.1:{s3}\"\nroot_domain = \".s3.garage.localhost\"\n\n\
             [admin]\napi_bind_addr = \"127.0.0.1:{admin}\"\nadmin_token = \"kubemaint-test-admin-token\"\n",
            meta = dir.join("meta").display(),
            data = dir.join("data").display(),
            rpc = ports[0],
            s3 = ports[1],
            admin = ports[2],
        );
        std::fs::write(&config, text).map_err(io("writing garage.toml"))?;
        let log = dir.join("garage.log");
        let logf = std::fs::File::create(&log).map_err(io("creating the Garage log"))?;
        let child = Command::new(&program)
            .arg("-c")
            .arg(&config)
            .arg("server")
            .env("RUST_LOG", "garage=info")
            .stdin(Stdio::null())
            .stdout(logf.try_clone().map_err(io("opening the log"))?)
            .stderr(logf)
            .spawn()
            .map_err(io("starting garage"))?;
        let mut g = Garage {
            endpoint: format!("http://127.0.0.1:{}", ports[1]),
            admin_endpoint: format!("http://127.0.0.1:{}", ports[2]),
            bucket: bucket.to_string(),
            key_id: String::new(),
            secret: String::new(),
            dir: dir.to_path_buf(),
            config,
            program,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if g.cli(&["status"]).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                return Err(GarageError::Timeout(
                    Duration::from_secs(60),
                    log.display().to_string(),
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let id = g.cli(&["node", "id", "-q"])?;
        let id = id.trim().split('@').next().unwrap_or("").to_string();
        g.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &id])?;
        g.cli(&["layout", "apply", "--version", "1"])?;
        g.cli(&["bucket", "create", bucket])?;
        let key = g.cli(&["key", "create", "kubemaint-test"])?;
        let field = |name: &str| {
            key.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        g.key_id = field("Key ID:");
        g.secret = field("Secret key:");
        if g.key_id.is_empty() || g.secret.is_empty() {
            return Err(GarageError::Command {
                args: "key create".into(),
                detail: format!("no key ID / secret in its output:\n{key}"),
            });
        }
        g.cli(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            bucket,
            "--key",
            &g.key_id.clone(),
        ])?;
        Ok(g)
    }

    /// Runs a `garage` admin command against this node; its stdout.
    pub fn cli(&self, args: &[&str]) -> Result<String, GarageError> {
        let out: Output = Command::new(&self.program)
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| GarageError::Io {
                what: format!("running garage {}", args.join(" ")),
                source,
            })?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(GarageError::Command {
                args: args.join(" "),
                detail: format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            })
        }
    }

    /// The environment a client needs (`AWS_ENDPOINT_URL`, `AWS_REGION`, keys).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", REGION.to_string()),
            ("AWS_ACCESS_KEY_ID", self.key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret.clone()),
        ]
    }

    /// Stops the server (it is also killed on drop).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        self.stop();
    }
}
