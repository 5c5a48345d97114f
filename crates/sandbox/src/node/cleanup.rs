//! Tearing a real node down to nothing, also for a node whose sandbox crashed: every process of its
//! pods (its cgroup subtree), of the node itself (a command line naming its directory: the namespace
//! holder, containerd and its shims, the kubelet, kube-proxy), then every mount under its directories (overlay rootfs, shm,
//! volumes, pod network namespaces), then its cgroup directories. Processes are ended by their ids.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// What identifies a node's leftovers (recorded in the host-settings journal before it starts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NodeRecord {
    /// The sandbox process that owns the node.
    pub(crate) owner: u32,
    /// The node's directory.
    pub(crate) dir: PathBuf,
    /// The shim socket directory (outside `dir`: its path must be short).
    pub(crate) shim_sockets: PathBuf,
    /// The kubelet's cgroup root (a directory name under each cgroup v1 hierarchy).
    pub(crate) cgroup_root: String,
    /// `net:[INODE]` of its network namespace, once created (for the record: inode numbers are reused,
    /// so it identifies nothing after the namespace is gone).
    pub(crate) netns_id: Option<String>,
}

impl NodeRecord {
    pub(crate) fn to_json(&self) -> Value {
        serde_json::json!({
            "owner": self.owner, "dir": self.dir, "shim_sockets": self.shim_sockets,
            "cgroup_root": self.cgroup_root, "netns_id": self.netns_id,
        })
    }

    pub(crate) fn from_json(value: &Value) -> Option<Self> {
        Some(Self {
            owner: u32::try_from(value.get("owner")?.as_u64()?).ok()?,
            dir: PathBuf::from(value.get("dir")?.as_str()?),
            shim_sockets: PathBuf::from(value.get("shim_sockets")?.as_str()?),
            cgroup_root: value.get("cgroup_root")?.as_str()?.to_string(),
            netns_id: value.get("netns_id").and_then(Value::as_str).map(str::to_string),
        })
    }
}

const CGROUP_FS: &str = "/sys/fs/cgroup";

/// The cgroup v1 hierarchies (`/sys/fs/cgroup/<name>`), without the cgroup v2 `unified` one and
/// without the links (`cpu,cpuacct` style names).
pub(crate) fn hierarchies() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(CGROUP_FS) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n != "unified"))
        .collect();
    found.sort();
    found
}

/// Creates the kubelet's cgroup root in every hierarchy (the kubelet refuses a missing one), with the
/// parent's cpus and memory nodes for cpuset.
pub(crate) fn create_cgroup_root(name: &str) -> crate::Result<()> {
    for hierarchy in hierarchies() {
        let dir = hierarchy.join(name);
        std::fs::create_dir_all(&dir).map_err(crate::Error::io(format!("creating {}", dir.display())))?;
        for file in ["cpuset.cpus", "cpuset.mems"] {
            if let Ok(parent) = std::fs::read_to_string(hierarchy.join(file)) {
                let _ = std::fs::write(dir.join(file), parent.trim());
            }
        }
    }
    Ok(())
}

/// Removes everything the node left: processes, mounts, cgroups, the shim socket directory. Safe to
/// call on a node that is already gone.
pub(crate) fn teardown(record: &NodeRecord) {
    let me = std::process::id();
    for _ in 0..3 {
        let mut victims = cgroup_processes(&record.cgroup_root);
        victims.extend(node_processes(record));
        victims.retain(|pid| *pid != me);
        victims.sort_unstable();
        victims.dedup();
        if victims.is_empty() {
            break;
        }
        for pid in &victims {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while victims
            .iter()
            .any(|pid| Path::new(&format!("/proc/{pid}")).exists())
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    unmount_under(&[&record.dir, &record.shim_sockets]);
    // runc also mirrors the tree into the cgroup v2 `unified` hierarchy of this hybrid layout.
    let unified = Path::new(CGROUP_FS).join("unified");
    for hierarchy in hierarchies().into_iter().chain([unified]) {
        remove_cgroup_tree(&hierarchy.join(&record.cgroup_root));
    }
    let _ = std::fs::remove_dir_all(&record.shim_sockets);
}

/// Processes in the node's cgroup subtree (its pods' containers), read from every hierarchy.
fn cgroup_processes(root: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for hierarchy in hierarchies() {
        let mut stack = vec![hierarchy.join(root)];
        while let Some(dir) = stack.pop() {
            if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
                pids.extend(procs.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
            }
            if let Ok(entries) = std::fs::read_dir(&dir) {
                stack.extend(entries.flatten().filter(|e| e.path().is_dir()).map(|e| e.path()));
            }
        }
    }
    pids
}

/// Processes whose command line names the node's directory: the namespace holder, containerd, its shims,
/// the kubelet and kube-proxy. Not "every process in the recorded network namespace": a namespace's
/// inode number is reused once it is freed, so a crashed node's record could name a live node's
/// namespace.
fn node_processes(record: &NodeRecord) -> Vec<u32> {
    let dir = record.dir.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            // NUL-separated arguments: the directory itself, or a path below it.
            String::from_utf8_lossy(&cmdline)
                .split('\0')
                .any(|arg| arg == dir || arg.contains(&format!("{dir}/")))
        })
        .collect()
}

/// Lazily unmounts every mount point under `dirs`, deepest first.
fn unmount_under(dirs: &[&Path]) {
    for _ in 0..3 {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut points: Vec<String> = mountinfo
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .map(|p| p.replace("\\040", " "))
            .filter(|p| dirs.iter().any(|d| Path::new(p).starts_with(d)))
            .collect();
        if points.is_empty() {
            return;
        }
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for point in points {
            let _ = Command::new("umount")
                .args(["-l", &point])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Removes a cgroup directory and its children (cgroupfs removes a cgroup with `rmdir`, children first).
fn remove_cgroup_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_cgroup_tree(&entry.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}
