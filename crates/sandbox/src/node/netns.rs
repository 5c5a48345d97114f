//! A real node's network namespace: held by a `tail -f` process started with `unshare --net` (no bind
//! mount in /var/run/netns), joined to the sandbox's own namespace by a veth pair. The node gets
//! `10.200.<cluster>.2/24` on its `eth0`, the sandbox side `10.200.<cluster>.1/24` on `ferry-n<cluster>`,
//! which is also the node's default route. Everything in the node runs under `nsenter --net=/proc/PID/ns/net`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::Addressing;
use crate::process::Supervised;
use crate::{Error, Result};

/// The namespace, its holder and the sandbox side of its veth pair.
#[derive(Debug)]
pub(crate) struct NodeNetwork {
    holder: Supervised,
    /// `/proc/<holder>/ns/net`.
    pub(crate) netns: PathBuf,
    /// The namespace's identity as `readlink` shows it (`net:[INODE]`), to find its processes later.
    pub(crate) netns_id: String,
    host_interface: String,
}

impl NodeNetwork {
    /// Creates the namespace and the veth pair, and addresses and routes both ends.
    pub(crate) fn create(addressing: &Addressing, log: &Path) -> Result<Self> {
        let ours = std::fs::read_link("/proc/self/ns/net").map_err(Error::io("reading /proc/self/ns/net"))?;
        // `tail -f` of a file in the node's directory: runs until killed, and its command line names the
        // directory, which is how a later teardown finds it (see cleanup.rs).
        let hold = log.with_file_name("netns.hold");
        std::fs::write(&hold, "").map_err(Error::io(format!("writing {}", hold.display())))?;
        let mut command = Command::new("unshare");
        command.args(["--net", "--", "tail", "-f"]).arg(&hold);
        let holder = Supervised::spawn("network namespace holder", command, log, false)?;
        let netns = PathBuf::from(format!("/proc/{}/ns/net", holder.pid()));
        let deadline = Instant::now() + Duration::from_secs(10);
        let netns_id = loop {
            match std::fs::read_link(&netns) {
                Ok(id) if id != ours => break id.to_string_lossy().into_owned(),
                _ if Instant::now() > deadline => {
                    return Err(Error::Sandbox(format!(
                        "unshare --net did not create a network namespace within 10s (see {})",
                        log.display()
                    )));
                }
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        let host_interface = format!("ferry-n{}", addressing.cluster);
        let network = Self {
            holder,
            netns,
            netns_id,
            host_interface,
        };
        network.wire(addressing)?;
        Ok(network)
    }

    fn wire(&self, addressing: &Addressing) -> Result<()> {
        let pid = self.holder.pid().to_string();
        let host = &self.host_interface;
        // A pair left by a crashed run of the same cluster number goes first.
        let _ = Command::new("ip").args(["link", "del", host]).output();
        let host_cidr = format!("{}/24", addressing.host_ip());
        let node_cidr = format!("{}/24", addressing.node_ip());
        let gateway = addressing.host_ip().to_string();
        run(Command::new("ip").args([
            "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", &pid,
        ]))?;
        run(Command::new("ip").args(["addr", "add", &host_cidr, "dev", host]))?;
        run(Command::new("ip").args(["link", "set", host, "up"]))?;
        run(self.command("ip").args(["link", "set", "lo", "up"]))?;
        run(self
            .command("ip")
            .args(["addr", "add", &node_cidr, "dev", "eth0"]))?;
        run(self.command("ip").args(["link", "set", "eth0", "up"]))?;
        run(self
            .command("ip")
            .args(["route", "add", "default", "via", &gateway]))?;
        Ok(())
    }

    /// `program` to run inside the namespace.
    pub(crate) fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net={}", self.netns.display()))
            .arg("--")
            .arg(program);
        command
    }

    /// The holder's process id (the namespace lives while it, or anything started in it, runs).
    pub(crate) fn holder_pid(&self) -> u32 {
        self.holder.pid()
    }
}

impl Drop for NodeNetwork {
    fn drop(&mut self) {
        // The pair would go with the namespace, but the kernel frees namespaces asynchronously: delete
        // it now, so the sandbox namespace has only `lo` again when the node is gone.
        self.holder.stop(Duration::from_secs(5));
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_interface])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// Runs `command`, failing with its stderr unless it exits 0.
pub(crate) fn run(command: &mut Command) -> Result<()> {
    let output = command
        .output()
        .map_err(|err| Error::Sandbox(format!("cannot run {command:?}: {err}")))?;
    if output.status.success() {
        return Ok(());
    }
    Err(Error::Sandbox(format!(
        "{command:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    )))
}
