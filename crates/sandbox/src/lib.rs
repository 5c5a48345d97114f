//! Local sandbox: real control planes (kube-apiserver + etcd + kube-controller-manager, built from Go
//! modules by `e2e/controlplane`) and the Ferry controller, started as processes for `make demo` and the
//! e2e tests, real nodes (kubelet, containerd + runc, CNI, kube-proxy in a network namespace per
//! cluster) running every pod as a container, a BIND9 DNS server with a dynamic zone, a git server over
//! HTTP, and, for the few tests that need its stand-ins, a node agent that runs Ferry's mover pods as
//! local processes. Nothing here is a fake: it only starts and stops real components on this machine. `demo` is `make demo`'s whole migration.
//!
//! This crate is Ferry's test harness: the e2e tests (`e2e/*.rs`) and `ferry-sandbox demo` use it; the
//! `ferry` binary and image never contain it (README, "Workspace").

mod apply;
pub mod argocd;
pub mod argocd_real;
pub mod bind;
mod controlplane;
pub mod demo;
mod error;
pub mod git_server;
pub mod images;
pub mod node;
pub mod node_agent;
mod process;
pub mod world;

pub use apply::{apply_yaml, install_crds, wait_for_crds, wait_for_default_service_account};
pub use controlplane::{ControlPlane, controlplane_binary};
pub use error::{Error, Result};
pub use node::{Addressing, RealNode, RealNodeOptions};
pub use node_agent::{NodeAgent, NodeAgentOptions};
pub use process::ControllerProcess;
pub use world::{Nodes, Sandbox, SandboxOptions};
