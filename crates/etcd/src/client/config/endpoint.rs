//! One etcd client URL: parsing it as etcdctl accepts it, and Go's boolean syntax for `ETCDCTL_*` values.

use super::ConfigError;

/// One etcd client URL, normalised.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Endpoint {
    /// As the user wrote it (used in messages).
    pub original: String,
    /// Host name or IP address (without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Whether to speak TLS.
    pub tls: bool,
}

impl Endpoint {
    /// `https://host:port` or `http://host:port`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url())
    }
}

/// Parses a Go `strconv.ParseBool` value.
pub fn parse_go_bool(input: &str) -> Result<bool, String> {
    match input {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("{input:?} is not a boolean (use true or false)")),
    }
}

/// Parses one endpoint as etcdctl accepts it: `https://h:p`, `http://h:p`, or `h:p` (TLS if any
/// TLS setting is present, as etcd's client does for scheme-less endpoints).
pub fn parse_endpoint(raw: &str, tls_configured: bool) -> Result<Endpoint, ConfigError> {
    let bad = |why: &str| ConfigError::BadEndpoint {
        endpoint: raw.to_string(),
        why: why.to_string(),
    };
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(bad("empty"));
    }
    let (tls, rest) = if let Some(r) = trimmed.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = trimmed.strip_prefix("http://") {
        (false, r)
    } else if trimmed.contains("://") {
        return Err(bad("only http:// and https:// are supported"));
    } else {
        (tls_configured, trimmed)
    };
    let rest = rest.trim_end_matches('/');
    if rest.contains('/') {
        return Err(bad("a path is not allowed"));
    }
    let (host, port) = if let Some(r) = rest.strip_prefix('[') {
        let (h, p) = r.split_once("]:").ok_or_else(|| bad("missing port"))?;
        (h, p)
    } else {
        let (h, p) = rest.rsplit_once(':').ok_or_else(|| bad("missing port"))?;
        if h.contains(':') {
            return Err(bad(
                "write IPv6 addresses in brackets, e.g. https://[::1]:2379",
            ));
        }
        (h, p)
    };
    if host.is_empty() {
        return Err(bad("missing host"));
    }
    let port: u16 = port.parse().map_err(|_| bad("invalid port"))?;
    Ok(Endpoint {
        original: raw.trim().to_string(),
        host: host.to_string(),
        port,
        tls,
    })
}
