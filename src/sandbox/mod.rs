//! Local sandbox: real control planes started as processes, for `make demo` and the e2e tests.
pub mod git_server;
