//! The etcd v3 gRPC client edge: etcdctl-compatible connection settings, kubeadm discovery,
//! connecting to one member, and choosing a healthy voting member.
//!
//! - [`config`]: flags + `ETCDCTL_*` + `--pki-dir`/`--kubeadm` → [`ConnectionConfig`] (pure).
//! - [`files`]: the TLS files a connection uses and read-only file access (shared by the two above).
//! - [`kubeadm`]: reading kubeadm's etcd static pod manifest (pure).
//! - [`connect`]: TCP/TLS dialling and error explanation.
//! - [`select`]: which member to snapshot from (pure).

pub mod config;
pub mod connect;
pub mod files;
pub mod kubeadm;
pub mod select;

pub use config::{ConnectionArgs, ConnectionConfig, Endpoint, resolve};
pub use connect::{ClientError, MemberClient, TlsMaterial, TlsNote};
pub use files::TlsFiles;
pub use select::{Choice, MemberInfo, MemberStatus, NoMember, Probe};

/// Asks one member for its status.
pub async fn member_status(client: &mut MemberClient) -> Result<MemberStatus, ClientError> {
    let resp = client
        .call("status", |mut c| async move { c.status().await })
        .await?;
    let header = resp.header();
    Ok(MemberStatus {
        member_id: header.map_or(0, |h| h.member_id()),
        cluster_id: header.map_or(0, |h| h.cluster_id()),
        version: resp.version().to_string(),
        leader: resp.leader(),
        is_learner: resp.is_learner(),
        raft_index: resp.raft_index(),
        db_size: resp.db_size(),
        revision: header.map_or(0, |h| h.revision()),
        errors: resp.errors().to_vec(),
    })
}

/// Lists the cluster's members.
pub async fn member_list(client: &mut MemberClient) -> Result<Vec<MemberInfo>, ClientError> {
    let resp = client
        .call("member list", |mut c| async move { c.member_list().await })
        .await?;
    Ok(resp
        .members()
        .iter()
        .map(|m| MemberInfo {
            id: m.id(),
            name: m.name().to_string(),
            peer_urls: m.peer_urls().to_vec(),
            client_urls: m.client_urls().to_vec(),
            is_learner: m.is_learner(),
        })
        .collect())
}

/// A member chosen to serve a snapshot, with what the cluster said about itself.
#[derive(Debug)]
pub struct Selected {
    /// The connection to the chosen member.
    pub client: MemberClient,
    /// Its status at selection time.
    pub status: MemberStatus,
    /// The member list (as the chosen member sees it).
    pub members: Vec<MemberInfo>,
    /// Why it was chosen and what was passed over.
    pub choice: Choice,
}

/// Why no member could be chosen.
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    /// Connecting or talking to the (only) endpoint failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Several endpoints, none usable.
    #[error(transparent)]
    NoMember(#[from] NoMember),
}

/// Connects to every endpoint, asks each for its Status (and the chosen one for the member
/// list), and picks one healthy voting member. With one endpoint, its own error is returned
/// as is.
pub async fn connect_and_choose(config: &ConnectionConfig) -> Result<Selected, SelectError> {
    let tls = if config.endpoints.iter().any(|e| e.tls) {
        Some(TlsMaterial::load(&config.tls)?)
    } else {
        None
    };
    let attempts = futures::future::join_all(config.endpoints.iter().map(|ep| {
        let tls = tls.as_ref();
        async move {
            let mut client = MemberClient::connect(config, tls, ep).await?;
            let status = member_status(&mut client).await?;
            Ok::<_, ClientError>((client, status))
        }
    }))
    .await;
    if attempts.len() == 1 && attempts[0].is_err() {
        let Some(Err(e)) = attempts.into_iter().next() else {
            unreachable!("checked above")
        };
        return Err(e.into());
    }
    let probes: Vec<Probe> = attempts
        .iter()
        .zip(&config.endpoints)
        .map(|(a, ep)| Probe {
            endpoint: ep.to_string(),
            status: a
                .as_ref()
                .map(|(_, s)| s.clone())
                .map_err(|e| e.to_string()),
        })
        .collect();
    // The member list comes from the first healthy-looking member, so learners can be spotted.
    let mut members = Vec::new();
    let mut clients: Vec<Option<(MemberClient, MemberStatus)>> =
        attempts.into_iter().map(Result::ok).collect();
    for (client, status) in clients.iter_mut().flatten() {
        if status.errors.is_empty()
            && let Ok(list) = member_list(client).await
        {
            members = list;
            break;
        }
    }
    let choice = select::choose(&probes, &members)?;
    let (mut client, status) = clients[choice.index]
        .take()
        .expect("the chosen endpoint answered");
    if members.is_empty() {
        members = member_list(&mut client).await?;
    }
    Ok(Selected {
        client,
        status,
        members,
        choice,
    })
}

/// One snapshot message, whose blob the writer takes without copying.
#[derive(Debug)]
pub struct SnapshotBlob(etcd_client::SnapshotResponse);

impl AsRef<[u8]> for SnapshotBlob {
    fn as_ref(&self) -> &[u8] {
        self.0.blob()
    }
}

/// `Maintenance.Snapshot` from one member, as a [`crate::save::ChunkSource`].
pub struct SnapshotStream {
    stream: etcd_client::SnapshotStreaming,
    endpoint: Endpoint,
    tls: TlsFiles,
    note: connect::TlsNote,
}

impl std::fmt::Debug for SnapshotStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotStream")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl MemberClient {
    /// Opens the snapshot stream (the server starts its read transaction now).
    pub async fn snapshot(&mut self) -> Result<SnapshotStream, ClientError> {
        let stream = self
            .call("snapshot", |mut c| async move { c.snapshot().await })
            .await?;
        Ok(SnapshotStream {
            stream,
            endpoint: self.endpoint.clone(),
            tls: self.tls_files().clone(),
            note: self.tls_note().clone(),
        })
    }
}

impl crate::save::ChunkSource for SnapshotStream {
    type Blob = SnapshotBlob;

    async fn next_chunk(&mut self) -> Result<Option<(u64, SnapshotBlob)>, String> {
        match self.stream.message().await {
            Ok(Some(msg)) => Ok(Some((msg.remaining_bytes(), SnapshotBlob(msg)))),
            Ok(None) => Ok(None),
            Err(e) => Err(connect::explain_error(
                &self.endpoint,
                &self.tls,
                Some(&self.note),
                "snapshot stream",
                &e,
            )
            .to_string()),
        }
    }
}
