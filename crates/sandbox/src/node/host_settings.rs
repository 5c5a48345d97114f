//! What a real node changes on the machine, recorded before it starts and restored when the last node
//! stops, or by the next start after a crash. The kubelet sets `kernel.panic`, `kernel.panic_on_oops`
//! and `vm.overcommit_memory`; the sandbox turns on IPv4 forwarding in its own namespace (the nodes route
//! through it); the kubelet, containerd and the CNI plugins create `/var/log/containers`,
//! `/var/log/pods`, `/var/lib/kubelet/device-plugins`, `/var/lib/cni` and `/run/containerd` whatever
//! their configuration says. Their iptables chains live in the node's namespace and go with it.
//!
//! The journal, `$FERRY_CACHE/real-nodes/host.json` (default `~/.cache/ferry`), holds the values found
//! before the first node started (`net.*` ones with the network namespace they were read in, and put
//! back only from that namespace), the directories that did not exist then, and every running node
//! (its owner's pid and what [`cleanup::teardown`] needs). It is read and written under an exclusive
//! file lock, so several sandboxes on one machine share it: the settings come back when the last node
//! of a live owner is gone, and nodes of owners that died are torn down first.

use std::fs::File;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::cleanup::{NodeRecord, teardown};
use crate::{Error, Result};

/// The sysctls (as paths under /proc/sys) the kubelet or the sandbox sets.
const SYSCTLS: [&str; 4] = [
    "kernel/panic",
    "kernel/panic_on_oops",
    "vm/overcommit_memory",
    "net/ipv4/ip_forward",
];

/// Directories created on the host whatever the configuration says.
const DIRECTORIES: [&str; 5] = [
    "/var/log/containers",
    "/var/log/pods",
    "/var/lib/kubelet",
    "/var/lib/cni",
    "/run/containerd",
];

fn journal_dir() -> PathBuf {
    let cache = std::env::var_os("FERRY_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache/ferry")
        });
    cache.join("real-nodes")
}

/// Runs `change` on the journal under its lock.
fn with_journal<T>(change: impl FnOnce(&mut Value) -> Result<T>) -> Result<T> {
    let dir = journal_dir();
    std::fs::create_dir_all(&dir).map_err(Error::io(format!("creating {}", dir.display())))?;
    let lock_path = dir.join("lock");
    let lock = File::create(&lock_path).map_err(Error::io(format!("opening {}", lock_path.display())))?;
    lock.lock()
        .map_err(Error::io(format!("locking {}", lock_path.display())))?;
    let path = dir.join("host.json");
    let mut journal = match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|_| json!({})),
        Err(_) => json!({}),
    };
    let result = change(&mut journal)?;
    if journal
        .get("nodes")
        .and_then(Value::as_array)
        .is_some_and(|n| !n.is_empty())
    {
        let tmp = dir.join("host.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&journal)?)
            .map_err(Error::io(format!("writing {}", tmp.display())))?;
        std::fs::rename(&tmp, &path).map_err(Error::io(format!("writing {}", path.display())))?;
    } else {
        let _ = std::fs::remove_file(&path);
    }
    Ok(result)
}

/// This process's network namespace (`net:[INODE]`), where `net.*` sysctls were read.
fn current_netns() -> Option<String> {
    std::fs::read_link("/proc/self/ns/net")
        .ok()
        .map(|l| l.to_string_lossy().into_owned())
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn nodes(journal: &Value) -> Vec<NodeRecord> {
    journal
        .get("nodes")
        .and_then(Value::as_array)
        .map(|n| n.iter().filter_map(NodeRecord::from_json).collect())
        .unwrap_or_default()
}

fn set_nodes(journal: &mut Value, nodes: &[NodeRecord]) {
    journal["nodes"] = Value::Array(nodes.iter().map(NodeRecord::to_json).collect());
}

/// Tears down nodes whose owner died; when no node is left, puts back what the journal recorded.
fn recover(journal: &mut Value) {
    let (live, dead): (Vec<_>, Vec<_>) = nodes(journal).into_iter().partition(|n| alive(n.owner));
    for node in &dead {
        tracing::warn!(dir = %node.dir.display(), owner = node.owner, "tearing down a real node left by a crashed sandbox");
        teardown(node);
    }
    set_nodes(journal, &live);
    if live.is_empty() {
        restore(journal);
    }
}

/// Writes the recorded sysctls back and removes the directories that did not exist before.
fn restore(journal: &mut Value) {
    if let Some(sysctls) = journal.get("sysctls").and_then(Value::as_object) {
        let here = current_netns();
        let recorded_in = journal.get("netns").and_then(Value::as_str).map(str::to_string);
        for (name, value) in sysctls {
            // Per-namespace settings go back only into the namespace they were read in.
            if name.starts_with("net/") && recorded_in != here {
                continue;
            }
            if let Some(value) = value.as_str() {
                let _ = std::fs::write(Path::new("/proc/sys").join(name), value);
            }
        }
    }
    if let Some(created) = journal.get("absent_directories").and_then(Value::as_array) {
        for dir in created.iter().filter_map(Value::as_str) {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    *journal = json!({});
}

/// Registers a node about to start: recovers after a crash, records the host's settings if no other
/// node runs, and adds `record`.
pub(crate) fn register(record: &NodeRecord) -> Result<()> {
    with_journal(|journal| {
        recover(journal);
        if nodes(journal).is_empty() {
            let mut sysctls = serde_json::Map::new();
            for name in SYSCTLS {
                if let Ok(value) = std::fs::read_to_string(Path::new("/proc/sys").join(name)) {
                    sysctls.insert(name.to_string(), Value::String(value.trim().to_string()));
                }
            }
            let absent: Vec<Value> = DIRECTORIES
                .iter()
                .filter(|d| !Path::new(d).exists())
                .map(|d| Value::String((*d).to_string()))
                .collect();
            *journal = json!({"sysctls": sysctls, "absent_directories": absent, "netns": current_netns()});
        }
        let mut all = nodes(journal);
        all.push(record.clone());
        set_nodes(journal, &all);
        Ok(())
    })
}

/// Updates a registered node's record (its network namespace, once known).
pub(crate) fn update(record: &NodeRecord) -> Result<()> {
    with_journal(|journal| {
        let mut all = nodes(journal);
        for node in all.iter_mut().filter(|n| n.dir == record.dir) {
            *node = record.clone();
        }
        set_nodes(journal, &all);
        Ok(())
    })
}

/// Removes a stopped node; the last one puts the host's settings back.
pub(crate) fn unregister(record: &NodeRecord) -> Result<()> {
    with_journal(|journal| {
        let mut all = nodes(journal);
        all.retain(|n| n.dir != record.dir);
        set_nodes(journal, &all);
        recover(journal);
        Ok(())
    })
}
