//! The harness's one error type: its own failures (a process that did not start, a service that never
//! answered) and, wrapped, everything Ferry's library reports while the harness drives it.

/// Everything that can go wrong while starting, driving or stopping the sandbox.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A sandbox process or service (control plane, node, BIND9, git server, controller) could not be
    /// started, did not become ready, or failed; the message says which and how.
    #[error("sandbox: {0}")]
    Sandbox(String),

    /// A call into Ferry's library failed (Kubernetes, git, files); worded by [`ferry::Error`].
    #[error(transparent)]
    Ferry(#[from] ferry::Error),
}

/// The harness's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with what the harness was doing.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let wrap = ferry::Error::io(context);
        move |err| Error::Ferry(wrap(err))
    }

    /// Wraps a git error with what the harness was doing.
    pub fn git(context: impl Into<String>) -> impl FnOnce(git2::Error) -> Error {
        let wrap = ferry::Error::git(context);
        move |err| Error::Ferry(wrap(err))
    }
}

impl From<kube::Error> for Error {
    fn from(err: kube::Error) -> Self {
        Error::Ferry(err.into())
    }
}

impl From<serde_json::Error> for Error {
    fn from(err: serde_json::Error) -> Self {
        Error::Ferry(err.into())
    }
}
