//! A real BIND9 `named` for tests and `make demo`: one dynamic zone on 127.0.0.1 with a free port
//! (UDP and TCP), updatable with a freshly generated TSIG key, in its own working directory. Started in
//! the foreground (`named -g`) and killed when the handle is dropped.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::dns::{Rfc2136, TsigAlgorithm, TsigKey};
use crate::{Error, Result};

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
            let port = free_port()?;
            match Self::start_on(dir, &zone, &keys, port).await {
                Ok(bind) => return Ok(bind),
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error.unwrap_or_else(|| Error::Sandbox("named did not start".into())))
    }

    async fn start_on(dir: &Path, zone: &str, keys: &[TsigKey; 2], port: u16) -> Result<Self> {
        let [key, no_update_key] = keys;
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
        };
        bind.wait_until_serving(&log_path).await?;
        Ok(bind)
    }

    /// Polls the zone's SOA until `named` answers it authoritatively.
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
            let last = match provider.check_zone().await {
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
        Rfc2136::new(&self.server(), &self.zone, self.key.clone()).await
    }

    /// The last lines `named` logged.
    pub fn log_tail(&self) -> String {
        log_tail(&self.dir.join("named.log"))
    }
}

impl Drop for Bind {
    fn drop(&mut self) {
        // kill_on_drop would also do it; killing here makes the stop immediate and explicit.
        let _ = self.child.start_kill();
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
