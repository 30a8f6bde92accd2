//! S3-compatible buckets (`s3://bucket/prefix`) through the `object_store` crate.
//!
//! Endpoint, region and credentials come from the usual AWS variables (`AWS_ENDPOINT_URL`,
//! `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, ...) and,
//! when no key is set in the environment, from the shared profile files
//! (`~/.aws/credentials`, `~/.aws/config`; `AWS_PROFILE`, default `default`). Path-style
//! requests (what MinIO, Garage and Ceph expect) unless `AWS_VIRTUAL_HOSTED_STYLE_REQUEST` is
//! set; an `http://` endpoint is allowed. Large objects go up as a multipart upload
//! (8 MiB parts by default, 4 in flight), aborted when the stream does not end cleanly.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::{
    ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig, WriteMultipart,
};
use tokio::sync::mpsc;

use super::{Chunk, ObjectInfo, Store, StoreError, StoreFuture, StoreKind};

/// Default multipart part size.
pub const DEFAULT_PART_SIZE: usize = 8 << 20;
/// The smallest part S3 accepts (every part but the last).
pub const MIN_PART_SIZE: usize = 5 << 20;
/// Parts uploading at once.
const PARTS_IN_FLIGHT: usize = 4;

/// A bucket and prefix on an S3-compatible store.
#[derive(Debug)]
pub struct S3Store {
    store: Arc<dyn ObjectStore>,
    bucket: String,
    prefix: String,
    endpoint: String,
    part_size: usize,
}

/// Credentials and settings read from the shared AWS profile files.
///
/// Its `Debug` shows whether the secret key and session token are set, never their values.
#[derive(Default, PartialEq, Eq)]
pub struct Profile {
    /// `aws_access_key_id`.
    pub access_key_id: Option<String>,
    /// `aws_secret_access_key`.
    pub secret_access_key: Option<String>,
    /// `aws_session_token`.
    pub session_token: Option<String>,
    /// `region` (config file).
    pub region: Option<String>,
    /// `endpoint_url` (config file).
    pub endpoint_url: Option<String>,
}

/// Parses an INI-style AWS file and returns the `key = value` pairs of `section`.
pub fn ini_section(text: &str, section: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == section;
            continue;
        }
        if inside && let Some((k, v)) = line.split_once('=') {
            out.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    out
}

/// Reads profile `name` from a credentials file and a config file (`[name]` in credentials;
/// `[profile name]`, or `[default]`, in config).
pub fn read_profile(name: &str, credentials: Option<&str>, config: Option<&str>) -> Profile {
    let mut p = Profile::default();
    if let Some(text) = credentials {
        let s = ini_section(text, name);
        p.access_key_id = s.get("aws_access_key_id").cloned();
        p.secret_access_key = s.get("aws_secret_access_key").cloned();
        p.session_token = s.get("aws_session_token").cloned();
    }
    if let Some(text) = config {
        let section = if name == "default" {
            "default".to_string()
        } else {
            format!("profile {name}")
        };
        let s = ini_section(text, &section);
        p.region = s.get("region").cloned();
        p.endpoint_url = s.get("endpoint_url").cloned();
        if p.access_key_id.is_none() {
            p.access_key_id = s.get("aws_access_key_id").cloned();
            p.secret_access_key = s.get("aws_secret_access_key").cloned();
            p.session_token = s.get("aws_session_token").cloned();
        }
    }
    p
}

fn aws_file(var: &str, default: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(var) {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("HOME").map(|h| Path::new(&h).join(".aws").join(default))
}

impl S3Store {
    /// Configures the store from the environment and profile files.
    pub fn from_env(bucket: &str, prefix: &str) -> Result<S3Store, StoreError> {
        let location = format!("s3://{bucket}/{prefix}");
        let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
        if b.get_config_value(&AmazonS3ConfigKey::AccessKeyId)
            .is_none()
        {
            let name = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
            let read = |p: Option<PathBuf>| p.and_then(|p| std::fs::read_to_string(p).ok());
            let profile = read_profile(
                &name,
                read(aws_file("AWS_SHARED_CREDENTIALS_FILE", "credentials")).as_deref(),
                read(aws_file("AWS_CONFIG_FILE", "config")).as_deref(),
            );
            if let (Some(k), Some(s)) = (&profile.access_key_id, &profile.secret_access_key) {
                b = b.with_access_key_id(k).with_secret_access_key(s);
                if let Some(t) = &profile.session_token {
                    b = b.with_token(t);
                }
            }
            if b.get_config_value(&AmazonS3ConfigKey::Region).is_none()
                && let Some(r) = &profile.region
            {
                b = b.with_region(r);
            }
            if b.get_config_value(&AmazonS3ConfigKey::Endpoint).is_none()
                && let Some(e) = &profile.endpoint_url
            {
                b = b.with_endpoint(e);
            }
        }
        let endpoint = b
            .get_config_value(&AmazonS3ConfigKey::Endpoint)
            .unwrap_or_else(|| "AWS S3".to_string());
        // Fail in seconds, not minutes, when the store is down; a few retries for blips.
        let retry = RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(30),
            ..RetryConfig::default()
        };
        // The client options carry allow-http too, so it is set here (setting it on the builder
        // first would be overwritten by `with_client_options`).
        let client = ClientOptions::new()
            .with_allow_http(endpoint.starts_with("http://"))
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(300));
        let store = b
            .with_retry(retry)
            .with_client_options(client)
            .build()
            .map_err(|e| StoreError::BadLocation {
                location: location.clone(),
                detail: error_text(&e),
            })?;
        Ok(S3Store {
            store: Arc::new(store),
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            endpoint,
            part_size: DEFAULT_PART_SIZE,
        })
    }

    /// Uploads in parts of `bytes` (at least [`MIN_PART_SIZE`]; smaller values are raised to it).
    pub fn with_part_size(mut self, bytes: usize) -> S3Store {
        self.part_size = bytes.max(MIN_PART_SIZE);
        self
    }

    fn path(&self, name: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(name)
        } else {
            ObjectPath::from(format!("{}/{name}", self.prefix))
        }
    }

    fn classify(&self, op: &'static str, name: &str, e: object_store::Error) -> StoreError {
        let text = error_text(&e);
        let location = self.location();
        if text.contains("NoSuchBucket") {
            return StoreError::NoBucket {
                location,
                bucket: self.bucket.clone(),
            };
        }
        match e {
            object_store::Error::NotFound { .. } => StoreError::NotFound {
                location,
                name: name.to_string(),
            },
            object_store::Error::AlreadyExists { .. } => StoreError::Exists {
                location,
                name: name.to_string(),
            },
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => StoreError::Credentials {
                location,
                detail: text,
            },
            _ if [
                "InvalidAccessKeyId",
                "SignatureDoesNotMatch",
                "AccessDenied",
                "403 Forbidden",
                "401 Unauthorized",
            ]
            .iter()
            .any(|m| text.contains(m)) =>
            {
                StoreError::Credentials {
                    location,
                    detail: text,
                }
            }
            _ if [
                "error sending request",
                "Connection refused",
                "connection refused",
                "dns error",
                "timed out",
                "operation timed out",
                "tcp connect",
            ]
            .iter()
            .any(|m| text.contains(m)) =>
            {
                StoreError::Unreachable {
                    location: format!("{location} (endpoint {})", self.endpoint),
                    detail: text,
                }
            }
            _ => StoreError::Other {
                location,
                op,
                detail: text,
            },
        }
    }
}

/// An error and its causes on one line.
fn error_text(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cause = c.source();
    }
    out
}

impl Store for S3Store {
    fn location(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    fn kind(&self) -> StoreKind {
        StoreKind::Remote
    }

    fn check(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let prefix = (!self.prefix.is_empty()).then(|| ObjectPath::from(self.prefix.as_str()));
            self.store
                .list_with_delimiter(prefix.as_ref())
                .await
                .map(|_| ())
                .map_err(|e| self.classify("listing", "", e))
        })
    }

    fn put_stream<'a>(
        &'a self,
        name: &'a str,
        mut data: mpsc::Receiver<Chunk>,
    ) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let path = self.path(name);
            let upload = self
                .store
                .put_multipart(&path)
                .await
                .map_err(|e| self.classify("starting the upload of", name, e))?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, self.part_size);
            let mut size = 0u64;
            loop {
                match data.recv().await {
                    Some(Chunk::Data(bytes)) => {
                        if let Err(e) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                            let err = self.classify("uploading", name, e);
                            drop(data);
                            let _ = writer.abort().await;
                            return Err(err);
                        }
                        size += bytes.len() as u64;
                        writer.put(bytes);
                    }
                    Some(Chunk::End) => {
                        writer
                            .finish()
                            .await
                            .map_err(|e| self.classify("completing the upload of", name, e))?;
                        return Ok(size);
                    }
                    None => {
                        // The stream did not end cleanly: abort so no parts linger.
                        if let Err(e) = writer.abort().await {
                            tracing::warn!(error = %e, "aborting the multipart upload failed");
                        }
                        return Err(StoreError::Abandoned {
                            location: self.location(),
                            name: name.to_string(),
                        });
                    }
                }
            }
        })
    }

    fn put_small<'a>(&'a self, name: &'a str, bytes: Bytes) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.store
                .put(&self.path(name), PutPayload::from(bytes))
                .await
                .map(|_| ())
                .map_err(|e| self.classify("writing", name, e))
        })
    }

    fn get_stream<'a>(&'a self, name: &'a str, to: mpsc::Sender<Bytes>) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let result = self
                .store
                .get(&self.path(name))
                .await
                .map_err(|e| self.classify("reading", name, e))?;
            let mut stream = result.into_stream();
            let mut total = 0u64;
            while let Some(piece) = stream.next().await {
                let piece = piece.map_err(|e| self.classify("reading", name, e))?;
                total += piece.len() as u64;
                if to.send(piece).await.is_err() {
                    break;
                }
            }
            Ok(total)
        })
    }

    fn get_small<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Bytes> {
        Box::pin(async move {
            let result = self
                .store
                .get(&self.path(name))
                .await
                .map_err(|e| self.classify("reading", name, e))?;
            result
                .bytes()
                .await
                .map_err(|e| self.classify("reading", name, e))
        })
    }

    fn list(&self) -> StoreFuture<'_, Vec<ObjectInfo>> {
        Box::pin(async move {
            let prefix = (!self.prefix.is_empty()).then(|| ObjectPath::from(self.prefix.as_str()));
            let listing = self
                .store
                .list_with_delimiter(prefix.as_ref())
                .await
                .map_err(|e| self.classify("listing", "", e))?;
            let mut out: Vec<ObjectInfo> = listing
                .objects
                .into_iter()
                .filter_map(|o| {
                    let name = o.location.filename()?.to_string();
                    Some(ObjectInfo { name, size: o.size })
                })
                .collect();
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
    }

    fn delete<'a>(&'a self, name: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            match self.store.delete(&self.path(name)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(self.classify("deleting", name, e)),
            }
        })
    }
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("Profile")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &hidden(&self.secret_access_key))
            .field("session_token", &hidden(&self.session_token))
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_no_secret() {
        let creds = "[default]\naws_access_key_id = AKID\naws_secret_access_key = very-secret-key\naws_session_token = very-secret-token\n";
        let p = read_profile("default", Some(creds), None);
        let text = format!("{p:?} {p:#?}");
        assert!(text.contains("AKID"), "{text}");
        assert!(!text.contains("very-secret"), "{text}");
    }

    #[test]
    fn profiles_are_read() {
        let creds = "[default]\naws_access_key_id = AK\naws_secret_access_key=SK\n\n[ops]\naws_access_key_id = OK\naws_secret_access_key = OS\naws_session_token = T\n";
        let config = "[default]\nregion = eu-west-1\n[profile ops]\nregion = garage\nendpoint_url = http://127.0.0.1:3900\n";
        assert_eq!(
            read_profile("default", Some(creds), Some(config)),
            Profile {
                access_key_id: Some("AK".into()),
                secret_access_key: Some("SK".into()),
                session_token: None,
                region: Some("eu-west-1".into()),
                endpoint_url: None,
            }
        );
        let ops = read_profile("ops", Some(creds), Some(config));
        assert_eq!(ops.access_key_id.as_deref(), Some("OK"));
        assert_eq!(ops.session_token.as_deref(), Some("T"));
        assert_eq!(ops.region.as_deref(), Some("garage"));
        assert_eq!(ops.endpoint_url.as_deref(), Some("http://127.0.0.1:3900"));
        assert_eq!(read_profile("none", Some(creds), None), Profile::default());
    }
}
