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
            Error::Git { .. } => "git",
            Error::GitAuth(_) => "git_auth",
            Error::GitPushRejected(_) => "git_push_rejected",
            Error::Manifest { .. } => "manifest",
            Error::ManifestEdit(_) => "manifest_edit",
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
