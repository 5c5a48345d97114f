//! A real BIND9 `named` for tests and `make demo`: one dynamic zone on 127.0.0.1 with a free port
//! (UDP and TCP), updatable with a freshly generated TSIG key, in its own working directory. Started in
//! the foreground (`named -g`) and killed when the handle is dropped.
//!
//! Port choice is guarded twice, because `named` binds its UDP socket with SO_REUSEADDR and so can share
//! a UDP port with another `named` without any error (queries then reach either server): every Ferry
//! process holds an exclusive lock file per port it hands to a `named` ([`PortLease`]), and a `named`
//! that finds its TCP port taken (`reuseport no`, so it logs "address in use") is killed and started
//! again on another port.

use std::fs::File;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::{Error, Result};
use ferry::dns::{Provider, Rfc2136, TsigAlgorithm, TsigKey};

/// The key name the sandbox zone allows to update it.
pub const KEY_NAME: &str = "ferry-key";
/// A second key the server knows but does not allow to update the zone (to exercise REFUSED).
pub const NO_UPDATE_KEY_NAME: &str = "ferry-no-update-key";
/// How long `named` may take to load the zone and answer.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// Attempts with a new port when another process grabbed the one picked.
const PORT_ATTEMPTS: u32 = 3;

/// A running `named` serving one zone.
#[derive(Debug)]
pub struct Bind {
    /// Where it listens (UDP and TCP).
    pub addr: SocketAddr,
    /// The zone it serves, without trailing dot.
    pub zone: String,
    /// The TSIG key allowed to update the zone.
    pub key: TsigKey,
    /// A TSIG key the server accepts but that may not update the zone.
    pub no_update_key: TsigKey,
    /// Its working directory (config, zone file, journal, log).
    pub dir: PathBuf,
    child: Child,
    /// Released after the process is gone (fields drop after [`Drop::drop`]).
    _port_lease: PortLease,
}

impl Bind {
    /// Starts `named` in `dir` serving `zone` with an hmac-sha256 key.
    pub async fn start(dir: &Path, zone: &str) -> Result<Self> {
        Self::start_with_algorithm(dir, zone, TsigAlgorithm::HmacSha256).await
    }

    /// Starts `named` with a key of the given algorithm.
    pub async fn start_with_algorithm(dir: &Path, zone: &str, algorithm: TsigAlgorithm) -> Result<Self> {
        let keys = [
            TsigKey::generate(KEY_NAME, algorithm),
            TsigKey::generate(NO_UPDATE_KEY_NAME, algorithm),
        ];
        let zone = zone.trim_end_matches('.').to_string();
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            let lease = PortLease::take()?;
            match Self::start_on(dir, &zone, &keys, lease).await {
                Ok(bind) => return Ok(bind),
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error.unwrap_or_else(|| Error::Sandbox("named did not start".into())))
    }

    async fn start_on(dir: &Path, zone: &str, keys: &[TsigKey; 2], lease: PortLease) -> Result<Self> {
        let [key, no_update_key] = keys;
        let port = lease.port;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let write = |name: &str, text: String| {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(Error::io(format!("writing {}", path.display())))
        };
        write("named.conf", named_conf(dir, zone, keys, port))?;
        write(&format!("{zone}.zone"), zone_file(zone))?;
        // A previous attempt's journal would not match the fresh zone file.
        let _ = std::fs::remove_file(dir.join(format!("{zone}.zone.jnl")));
        let log_path = dir.join("named.log");
        let log = std::fs::File::create(&log_path)
            .map_err(Error::io(format!("creating {}", log_path.display())))?;
        let log_err = log
            .try_clone()
            .map_err(Error::io("cloning the named log handle"))?;
        let mut command = Command::new(named_binary());
        command
            .arg("-g")
            .arg("-4")
            .arg("-c")
            .arg(dir.join("named.conf"))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .kill_on_drop(true);
        let child = command.spawn().map_err(|err| {
            Error::Sandbox(format!(
                "cannot run {}: {err} (install Debian package bind9)",
                named_binary()
            ))
        })?;
        let mut bind = Self {
            addr,
            zone: zone.to_string(),
            key: key.clone(),
            no_update_key: no_update_key.clone(),
            dir: dir.to_path_buf(),
            child,
            _port_lease: lease,
        };
        bind.wait_until_serving(&log_path).await?;
        Ok(bind)
    }

    /// Polls until this `named` (not another on the same port) serves the zone and accepts its key.
    async fn wait_until_serving(&mut self, log_path: &Path) -> Result<()> {
        let started = Instant::now();
        let provider = Rfc2136::with_timeout(
            &self.addr.to_string(),
            &self.zone,
            self.key.clone(),
            Duration::from_millis(300),
        )
        .await?;
        loop {
            if let Some(status) = self.child.try_wait().map_err(Error::io("waiting for named"))? {
                return Err(Error::Sandbox(format!(
                    "named exited with {status}: {}",
                    log_tail(log_path)
                )));
            }
            // A signed no-op update: only this server knows the freshly generated key, so an answer
            // from another `named` sharing the port does not count. named logs a port clash while it
            // opens its sockets, before it loads the zone, so once it answers the log tells.
            let answered = provider.check_credentials().await;
            if port_taken(log_path) {
                return Err(Error::Sandbox(format!(
                    "another process holds {}: {}",
                    self.addr,
                    log_tail(log_path)
                )));
            }
            let last = match answered {
                Ok(()) => return Ok(()),
                Err(err) => err,
            };
            if started.elapsed() > START_TIMEOUT {
                return Err(Error::Sandbox(format!(
                    "named did not serve {} on {} within {START_TIMEOUT:?} (last: {last}): {}",
                    self.zone,
                    self.addr,
                    log_tail(log_path)
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The server address as `ip:port` (what `rfc2136.server` takes).
    pub fn server(&self) -> String {
        self.addr.to_string()
    }

    /// An RFC 2136 provider for this server's zone with its key.
    pub async fn provider(&self) -> Result<Rfc2136> {
        Rfc2136::new(&self.server(), &self.zone, self.key.clone())
            .await
            .map_err(Into::into)
    }

    /// The last lines `named` logged.
    pub fn log_tail(&self) -> String {
        log_tail(&self.dir.join("named.log"))
    }
}

impl Drop for Bind {
    fn drop(&mut self) {
        // kill_on_drop would also do it; killing here makes the stop immediate and explicit, and waiting
        // (briefly) means the port is really free when the lease is released.
        let _ = self.child.start_kill();
        let deadline = Instant::now() + Duration::from_secs(2);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// `named` from `$FERRY_NAMED`, else Debian's path, else `named` on PATH.
fn named_binary() -> String {
    std::env::var("FERRY_NAMED").unwrap_or_else(|_| {
        if Path::new("/usr/sbin/named").exists() {
            "/usr/sbin/named".into()
        } else {
            "named".into()
        }
    })
}

/// A port this process may hand to a `named`: no other Ferry process (test, demo) holds it, for as long
/// as the lease lives. The lock is an exclusive `flock` on `$TMPDIR/ferry-sandbox-ports/<port>.lock`,
/// released by the kernel even when the holder is killed.
#[derive(Debug)]
struct PortLease {
    port: u16,
    _lock: File,
}

impl PortLease {
    fn take() -> Result<Self> {
        let dir = std::env::temp_dir().join("ferry-sandbox-ports");
        std::fs::create_dir_all(&dir).map_err(Error::io(format!("creating {}", dir.display())))?;
        for _ in 0..20 {
            let port = free_port()?;
            let path = dir.join(format!("{port}.lock"));
            let lock = File::create(&path).map_err(Error::io(format!("creating {}", path.display())))?;
            match lock.try_lock() {
                Ok(()) => return Ok(Self { port, _lock: lock }),
                Err(std::fs::TryLockError::WouldBlock) => continue,
                Err(std::fs::TryLockError::Error(err)) => {
                    return Err(Error::io(format!("locking {}", path.display()))(err));
                }
            }
        }
        Err(Error::Sandbox(
            "every free loopback port tried is leased to another named".into(),
        ))
    }
}

/// Whether `named` logged that its listening port belongs to someone else.
fn port_taken(log_path: &Path) -> bool {
    std::fs::read_to_string(log_path).is_ok_and(|log| log.contains("address in use"))
}

/// A loopback port free for both TCP and UDP right now.
fn free_port() -> Result<u16> {
    for _ in 0..20 {
        let tcp = TcpListener::bind("127.0.0.1:0").map_err(Error::io("binding a probe TCP port"))?;
        let port = tcp
            .local_addr()
            .map_err(Error::io("reading the probe port"))?
            .port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(Error::Sandbox(
        "no loopback port free for both TCP and UDP".into(),
    ))
}

fn named_conf(dir: &Path, zone: &str, keys: &[TsigKey; 2], port: u16) -> String {
    let dir = dir.display();
    format!(
        r#"{key_statements}
options {{
    directory "{dir}";
    pid-file "{dir}/named.pid";
    session-keyfile "{dir}/session.key";
    managed-keys-directory "{dir}";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    reuseport no;
    recursion no;
    allow-query {{ 127.0.0.1; }};
    allow-transfer {{ none; }};
    dnssec-validation no;
    notify no;
}};
controls {{ }};
zone "{zone}" {{
    type primary;
    file "{dir}/{zone}.zone";
    allow-update {{ key {key_name}; }};
}};
"#,
        key_statements = keys.iter().map(TsigKey::to_bind_statement).collect::<String>(),
        key_name = keys[0].name,
    )
}

fn zone_file(zone: &str) -> String {
    format!(
        "$ORIGIN {zone}.\n$TTL 300\n\
         @ IN SOA ns1.{zone}. hostmaster.{zone}. ( 1 3600 600 86400 60 )\n\
         @ IN NS ns1.{zone}.\n\
         ns1 IN A 127.0.0.1\n"
    )
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..].join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_held_at_once_are_distinct_ports() {
        let leases: Vec<PortLease> = (0..50).map(|_| PortLease::take().unwrap()).collect();
        let mut ports: Vec<u16> = leases.iter().map(|lease| lease.port).collect();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), leases.len());
    }

    #[test]
    fn a_leased_port_cannot_be_leased_again_until_released() {
        let held = PortLease::take().unwrap();
        let path = std::env::temp_dir()
            .join("ferry-sandbox-ports")
            .join(format!("{}.lock", held.port));
        let again = File::create(&path).unwrap();
        assert!(matches!(again.try_lock(), Err(std::fs::TryLockError::WouldBlock)));
        drop(held);
        assert!(again.try_lock().is_ok());
    }

    /// A second `named` on a port a running one holds (what two racing starts would do without the
    /// lease) must not count as started: it shares the UDP socket silently, so only its log tells.
    #[tokio::test]
    async fn a_named_on_a_taken_port_is_refused() {
        let first_dir = tempfile::tempdir().unwrap();
        let first = Bind::start(first_dir.path(), "example.test").await.unwrap();
        let second_dir = tempfile::tempdir().unwrap();
        let keys = [
            TsigKey::generate(KEY_NAME, TsigAlgorithm::HmacSha256),
            TsigKey::generate(NO_UPDATE_KEY_NAME, TsigAlgorithm::HmacSha256),
        ];
        let unguarded = PortLease {
            port: first.addr.port(),
            _lock: tempfile::tempfile().unwrap(),
        };
        let err = Bind::start_on(second_dir.path(), "example.test", &keys, unguarded)
            .await
            .expect_err("a named sharing a port is not a started server");
        assert!(err.to_string().contains("another process holds"), "{err}");
        // The first server still answers, with its own key.
        first.provider().await.unwrap().check_zone().await.unwrap();
    }
}
