//! The crate's one error type, so every failure has a name, a message a user can act on, and a
//! low-cardinality label for metrics.

/// Everything that can go wrong inside Ferry's library code. Binaries wrap it in `anyhow` at the edge.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to a Kubernetes API server failed. Shown as one line a person can act on (the server's
    /// message, reason and code, or the transport's cause chain), never as kube's `Debug` dump.
    #[error("kubernetes API: {}", kube_message(.0))]
    Kube(#[from] kube::Error),

    /// A kubeconfig or in-cluster configuration could not be loaded.
    #[error("kubernetes client configuration: {0}")]
    KubeConfig(String),

    /// Serialising or parsing JSON failed.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),

    /// A local file or socket operation failed; the context says which.
    #[error("{context}: {source}")]
    Io {
        /// What Ferry was doing, e.g. "writing manifests/crds/migplan.yaml".
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },

    /// A user-supplied spec is invalid; the message says what to change.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),

    /// A sandbox process (control plane, controller) could not be started or failed.
    #[error("sandbox: {0}")]
    Sandbox(String),

    /// Taking part in the controller's leader election failed.
    #[error("leader election: {0}")]
    LeaderElection(String),

    // --- dns ---
    /// The DNS server rejected Ferry's TSIG signature (wrong key name, secret or algorithm, or clock skew).
    #[error(
        "DNS server {server} rejected TSIG key {key:?}: {rcode}, TSIG error {tsig_error}; \
         check the key name, algorithm and secret (and the clock for BADTIME)"
    )]
    DnsTsigRejected {
        /// The server as configured.
        server: String,
        /// The key name (never the secret).
        key: String,
        /// The response code (NOTAUTH for TSIG failures).
        rcode: crate::dns::Rcode,
        /// The TSIG error: BADSIG, BADKEY or BADTIME.
        tsig_error: crate::dns::Rcode,
    },

    /// The server refused the update although the key is valid: it may not update this zone or name.
    #[error(
        "DNS server {server} refused the update of zone {zone}: {rcode}; allow the key to update the zone \
         (BIND: allow-update or update-policy)"
    )]
    DnsUpdateRefused {
        /// The server as configured.
        server: String,
        /// The zone.
        zone: String,
        /// REFUSED, NOTAUTH or NOTZONE.
        rcode: crate::dns::Rcode,
    },

    /// The server does not serve the zone (no authoritative SOA at the zone apex).
    #[error(
        "DNS server {server} does not serve zone {zone} (SOA lookup: {rcode}{}); check `zone` and `server`",
        update_rcode.map(|code| format!(", update: {code}")).unwrap_or_default()
    )]
    DnsZoneNotFound {
        /// The server as configured.
        server: String,
        /// The zone.
        zone: String,
        /// The SOA query's response code (NOERROR when the answer was not an authoritative apex SOA).
        rcode: crate::dns::Rcode,
        /// The update's response code, when an update was refused first (NOTAUTH, NOTZONE, REFUSED).
        update_rcode: Option<crate::dns::Rcode>,
    },

    /// The DNS server did not answer (timeout, connection refused, name not resolvable).
    #[error("DNS server {server} unreachable: {detail}")]
    DnsUnreachable {
        /// The server as configured.
        server: String,
        /// What failed.
        detail: String,
    },

    /// A CNAME would share its name with other records (or a record would be added beside a CNAME).
    #[error(
        "cannot write {wanted} at {fqdn}: the name already has {existing} records and a CNAME cannot coexist with other data"
    )]
    DnsCnameConflict {
        /// The record name.
        fqdn: String,
        /// The type Ferry would write.
        wanted: String,
        /// The conflicting types found at the name.
        existing: String,
    },

    /// An update prerequisite failed: the records changed between Ferry's read and its update.
    #[error(
        "DNS server {server}: records in zone {zone} changed while Ferry was updating them ({rcode}); retry"
    )]
    DnsRecordChanged {
        /// The server as configured.
        server: String,
        /// The zone.
        zone: String,
        /// YXRRSET, NXRRSET, YXDOMAIN or NXDOMAIN.
        rcode: crate::dns::Rcode,
    },

    /// The DNS server answered with an unexpected response code.
    #[error("DNS server {server}: {operation} failed: {rcode}")]
    DnsServerError {
        /// The server as configured.
        server: String,
        /// What Ferry asked.
        operation: String,
        /// The response code.
        rcode: crate::dns::Rcode,
    },

    /// The provider did not serve the new records within the wait.
    #[error(
        "DNS not serving the new records after {waited:?} ({server}): expected {expected}; last saw {last_seen}"
    )]
    DnsVerifyTimeout {
        /// The server or provider.
        server: String,
        /// What Ferry wrote.
        expected: String,
        /// What the last answer was.
        last_seen: String,
        /// How long Ferry waited.
        waited: std::time::Duration,
    },

    /// A DNS response was malformed or its TSIG signature did not verify.
    #[error("DNS protocol: {0}")]
    DnsProtocol(String),

    /// A record's target (Service or Ingress) has no address yet.
    #[error("DNS target not ready: {0}")]
    DnsTargetNotReady(String),

    /// The external-dns DNSEndpoint could not be used (CRD missing).
    #[error("external-dns: {0}")]
    DnsExternalDns(String),

    // --- git ---
    /// A libgit2 operation failed; the context says which (clone, fetch, commit, ...).
    #[error("git {context}: {source}")]
    Git {
        /// What Ferry was doing, e.g. "fetching main from https://git.example/app.git".
        context: String,
        /// The libgit2 error.
        source: git2::Error,
    },

    /// The Git server refused the credentials (or none were configured and it asked for some).
    #[error("git authentication failed for {0}: check the credentials Secret")]
    GitAuth(String),

    /// A push kept being rejected after the bounded number of re-fetch and retry attempts.
    #[error("git push rejected: {0}")]
    GitPushRejected(String),

    /// A manifest file is not valid YAML; names the file and the line.
    #[error("{file}:{line}: {message}")]
    Manifest {
        /// The file, relative to the manifest directory.
        file: String,
        /// 1-based line of the problem.
        line: usize,
        /// What is wrong.
        message: String,
    },

    /// A manifest edit could not be applied without reformatting the file; the message says where.
    #[error("manifest edit: {0}")]
    ManifestEdit(String),

    // --- mover ---
    /// The mover (TLS tunnel, certificates, proxy, receiver setup) failed; the message says where.
    #[error("mover: {0}")]
    Mover(String),

    /// rsync exited with a failure code; `message` is the tail of its stderr.
    #[error("rsync exited with code {code}: {message}")]
    Rsync {
        /// rsync's exit code (see rsync(1) "EXIT VALUES").
        code: i32,
        /// The last lines rsync wrote to stderr.
        message: String,
    },

    // --- gitops ---
    /// A blocking Git task of a Commit-mode step panicked or was cancelled.
    #[error("git task: {0}")]
    GitTask(String),
    // --- triggers ---
    /// A plan's `spec.schedule` or `spec.timeZone` cannot be used; the message names which and why.
    #[error("invalid schedule: {0}")]
    InvalidSchedule(String),
}

/// One readable line for a Kubernetes client error: for an API error the server's own message with its
/// reason and code (`namespaces "x" not found (NotFound, 404)`), otherwise the error and its causes.
pub fn kube_message(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => {
            let message = if status.message.is_empty() {
                "the API server refused the request".to_string()
            } else {
                status.message.clone()
            };
            match (status.reason.is_empty(), status.code) {
                (true, 0) => message,
                (true, code) => format!("{message} (HTTP {code})"),
                (false, 0) => format!("{message} ({})", status.reason),
                (false, code) => format!("{message} ({}, {code})", status.reason),
            }
        }
        other => cause_chain(other),
    }
}

/// `error: cause: cause`, skipping a cause whose text its parent already shows.
fn cause_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A short, fixed label for the `reconcile_errors` metric (never contains user data).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::KubeConfig(_) => "kubeconfig",
            Error::Json(_) => "json",
            Error::Io { .. } => "io",
            Error::InvalidSpec(_) => "invalid_spec",
            Error::Sandbox(_) => "sandbox",
            Error::LeaderElection(_) => "leader_election",
            Error::DnsTsigRejected { .. } => "dns_tsig_rejected",
            Error::DnsUpdateRefused { .. } => "dns_update_refused",
            Error::DnsZoneNotFound { .. } => "dns_zone_not_found",
            Error::DnsUnreachable { .. } => "dns_unreachable",
            Error::DnsCnameConflict { .. } => "dns_cname_conflict",
            Error::DnsRecordChanged { .. } => "dns_record_changed",
            Error::DnsServerError { .. } => "dns_server_error",
            Error::DnsVerifyTimeout { .. } => "dns_verify_timeout",
            Error::DnsProtocol(_) => "dns_protocol",
            Error::DnsTargetNotReady(_) => "dns_target_not_ready",
            Error::DnsExternalDns(_) => "dns_external_dns",
            Error::Git { .. } => "git",
            Error::GitAuth(_) => "git_auth",
            Error::GitPushRejected(_) => "git_push_rejected",
            Error::Manifest { .. } => "manifest",
            Error::ManifestEdit(_) => "manifest_edit",
            Error::Mover(_) => "mover",
            Error::Rsync { .. } => "rsync",
            Error::GitTask(_) => "git_task",
            Error::InvalidSchedule(_) => "invalid_schedule",
        }
    }

    /// Wraps a libgit2 error with what Ferry was doing when it happened.
    pub fn git(context: impl Into<String>) -> impl FnOnce(git2::Error) -> Error {
        let context = context.into();
        move |source| Error::Git { context, source }
    }

    /// Wraps an I/O error with what Ferry was doing when it happened.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_error_reads_as_one_line_without_debug_output() {
        let status: kube::core::Status = serde_json::from_value(serde_json::json!({
            "status": "Failure", "message": "namespaces \"dest\" not found", "reason": "NotFound",
            "code": 404, "details": {"name": "dest", "kind": "namespaces"}
        }))
        .unwrap();
        let text = Error::Kube(kube::Error::Api(Box::new(status))).to_string();
        assert_eq!(
            text,
            "kubernetes API: namespaces \"dest\" not found (NotFound, 404)"
        );
        for debug in ["Some(", "Status {", "ApiError"] {
            assert!(!text.contains(debug), "{text}");
        }
    }
}
