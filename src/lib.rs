//! Ferry migrates the persistent state of applications between Kubernetes clusters, the GitOps way.
//!
//! The crate is organised by domain: [`api`] holds the custom resources, [`controller`] the reconcilers
//! that drive them, [`mover`] the rsync-over-mutual-TLS data plane, [`git`] manifest reading and
//! comment-preserving quiesce commits, [`dns`] the record flip at cutover, and [`cli`] the `ferry`
//! command line that ties them together, [`report`] the HTML migration report. [`sandbox`] runs real local control planes for `make demo`
//! and the e2e tests.

pub mod api;
pub mod cli;
pub mod controller;
pub mod dns;
mod error;
pub mod git;
pub mod mover;
pub mod pipeline;
pub mod report;
pub mod sandbox;
pub mod triggers;

pub use error::{Error, Result};
