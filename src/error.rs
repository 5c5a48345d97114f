//! The crate's one error type, so every failure has a name, a message a user can act on, and a
//! low-cardinality label for metrics.

/// Everything that can go wrong inside Ferry's library code. Binaries wrap it in `anyhow` at the edge.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to a Kubernetes API server failed.
    #[error("kubernetes API: {0}")]
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
            Error::Mover(_) => "mover",
            Error::Rsync { .. } => "rsync",
        }
    }

    /// Wraps an I/O error with what Ferry was doing when it happened.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}
