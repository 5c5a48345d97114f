//! Ferry migrates the persistent state of applications between Kubernetes clusters, the GitOps way.
//!
//! The crate is organised by domain: [`api`] holds the custom resources, [`controller`] the reconcilers
//! that drive them, [`mover`] the rsync-over-mutual-TLS data plane, [`git`] manifest reading and
//! comment-preserving quiesce commits, [`dns`] the record flip at cutover, and [`cli`] the `ferry`
//! command line that ties them together, [`report`] the HTML migration report.
//! The test harness (local control planes, nodes, the demo) is the `ferry-sandbox` crate, not this one.

pub mod api;
pub mod cli;
pub mod controller;
pub mod dns;
mod error;
pub mod git;
pub mod mover;
pub mod pipeline;
pub mod report;
pub mod triggers;

pub use error::{Error, Result};
