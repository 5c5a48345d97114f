//! Git credentials taken from a Kubernetes Secret's `data`, and the libgit2 callbacks that present
//! them. Key names (all optional; which ones are set decides the method):
//!
//! | key             | meaning                                                               |
//! |-----------------|-----------------------------------------------------------------------|
//! | `token`         | HTTPS token (sent as the password; user `username` or `x-access-token`) |
//! | `username`      | HTTPS user name (with `password`), or the SSH user (default `git`)     |
//! | `password`      | HTTPS password                                                        |
//! | `sshPrivateKey` | SSH private key (PEM / OpenSSH format)                                |
//! | `sshPassphrase` | passphrase of that key                                                |
//! | `knownHosts`    | known_hosts lines the SSH server key must match (plain host names)    |

use std::collections::BTreeMap;
use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use base64::Engine as _;

use crate::{Error, Result};

/// How to authenticate to the remote.
#[derive(Clone, Default)]
pub enum Credentials {
    /// No credentials (public repositories, file:// URLs).
    #[default]
    None,
    /// HTTPS basic authentication (a token is a password).
    UserPassword {
        /// The user name.
        username: String,
        /// The password or token.
        password: String,
    },
    /// SSH key authentication with host key pinning.
    Ssh {
        /// The SSH user; defaults to the one in the URL, then `git`.
        username: Option<String>,
        /// The private key text.
        private_key: String,
        /// Its passphrase, if any.
        passphrase: Option<String>,
        /// `known_hosts` content; the server's key must be listed for its host.
        known_hosts: String,
    },
}

impl std::fmt::Debug for Credentials {
    /// Never prints secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::None => f.write_str("Credentials::None"),
            Credentials::UserPassword { username, .. } => {
                write!(f, "Credentials::UserPassword({username}, ***)")
            }
            Credentials::Ssh { .. } => f.write_str("Credentials::Ssh(***)"),
        }
    }
}

impl Credentials {
    /// Reads the keys documented at the top of this file from a Secret's `data`.
    pub fn from_secret_data(data: &BTreeMap<String, Vec<u8>>) -> Result<Self> {
        let text = |key: &str| -> Result<Option<String>> {
            data.get(key)
                .map(|bytes| {
                    String::from_utf8(bytes.clone())
                        .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
                        .map_err(|_| Error::InvalidSpec(format!("git credentials key {key} is not UTF-8")))
                })
                .transpose()
        };
        if let Some(private_key) = text("sshPrivateKey")? {
            let known_hosts = text("knownHosts")?.ok_or_else(|| {
                Error::InvalidSpec(
                    "git credentials: sshPrivateKey needs knownHosts to verify the server".into(),
                )
            })?;
            return Ok(Credentials::Ssh {
                username: text("username")?,
                private_key: format!("{private_key}\n"),
                passphrase: text("sshPassphrase")?,
                known_hosts,
            });
        }
        if let Some(token) = text("token")? {
            let username = text("username")?.unwrap_or_else(|| "x-access-token".to_string());
            return Ok(Credentials::UserPassword {
                username,
                password: token,
            });
        }
        match (text("username")?, text("password")?) {
            (Some(username), Some(password)) => Ok(Credentials::UserPassword { username, password }),
            (None, None) => Ok(Credentials::None),
            _ => Err(Error::InvalidSpec(
                "git credentials need both username and password".into(),
            )),
        }
    }

    /// libgit2 callbacks presenting these credentials. Credentials are offered once: when the server
    /// asks again they were rejected, and the callback fails (otherwise libgit2 would loop).
    pub(crate) fn callbacks(&self, rejected: Arc<AtomicUsize>) -> git2::RemoteCallbacks<'static> {
        let mut callbacks = git2::RemoteCallbacks::new();
        let creds = self.clone();
        callbacks.credentials(move |url, username_from_url, allowed| {
            // For SSH libgit2 first asks for the user name alone; that is not an attempt to count.
            if let Credentials::Ssh { username, .. } = &creds
                && allowed.contains(git2::CredentialType::USERNAME)
            {
                return git2::Cred::username(username.as_deref().or(username_from_url).unwrap_or("git"));
            }
            if rejected.fetch_add(1, Ordering::SeqCst) > 0 {
                return Err(git2::Error::from_str(&format!(
                    "credentials for {} were rejected",
                    redact(url)
                )));
            }
            match &creds {
                Credentials::UserPassword { username, password } => {
                    git2::Cred::userpass_plaintext(username, password)
                }
                Credentials::Ssh {
                    username,
                    private_key,
                    passphrase,
                    ..
                } => {
                    let user = username.as_deref().or(username_from_url).unwrap_or("git");
                    git2::Cred::ssh_key_from_memory(user, None, private_key, passphrase.as_deref())
                }
                Credentials::None => Err(git2::Error::from_str(
                    "the server asks for credentials and none are configured",
                )),
            }
        });
        if let Credentials::Ssh { known_hosts, .. } = self {
            let known_hosts = known_hosts.clone();
            callbacks.certificate_check(move |cert, host| {
                let Some(hostkey) = cert.as_hostkey() else {
                    return Ok(git2::CertificateCheckStatus::CertificatePassthrough);
                };
                let key = hostkey
                    .hostkey()
                    .map(|key| base64::engine::general_purpose::STANDARD.encode(key));
                match key {
                    Some(key) if host_key_is_known(&known_hosts, host, &key) => {
                        Ok(git2::CertificateCheckStatus::CertificateOk)
                    }
                    _ => Err(git2::Error::from_str(&format!(
                        "host key of {host} is not in knownHosts"
                    ))),
                }
            });
        }
        callbacks
    }
}

/// Whether a `known_hosts` line lists `host` (plain names, comma-separated, `[host]:port` form
/// accepted) with the base64 key `key`.
pub(crate) fn host_key_is_known(known_hosts: &str, host: &str, key: &str) -> bool {
    known_hosts
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .any(|line| {
            let mut fields = line.split_whitespace();
            let (Some(hosts), Some(_key_type), Some(line_key)) =
                (fields.next(), fields.next(), fields.next())
            else {
                return false;
            };
            let host_matches = hosts.split(',').any(|pattern| {
                let bare = pattern
                    .strip_prefix('[')
                    .and_then(|p| p.split(']').next())
                    .unwrap_or(pattern);
                bare == host
            });
            host_matches && line_key == key
        })
}

/// A URL with any user information removed, for messages and logs.
pub(crate) fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn secret_keys_choose_the_method() {
        assert!(matches!(
            Credentials::from_secret_data(&data(&[])).unwrap(),
            Credentials::None
        ));
        match Credentials::from_secret_data(&data(&[("token", "t0k\n")])).unwrap() {
            Credentials::UserPassword { username, password } => {
                assert_eq!((username.as_str(), password.as_str()), ("x-access-token", "t0k"));
            }
            other => panic!("{other:?}"),
        }
        let basic = Credentials::from_secret_data(&data(&[("username", "u"), ("password", "p")])).unwrap();
        assert!(matches!(basic, Credentials::UserPassword { .. }));
        assert_eq!(format!("{basic:?}"), "Credentials::UserPassword(u, ***)");
        assert!(Credentials::from_secret_data(&data(&[("username", "u")])).is_err());
        assert!(Credentials::from_secret_data(&data(&[("sshPrivateKey", "k")])).is_err());
        let ssh = Credentials::from_secret_data(&data(&[
            ("sshPrivateKey", "k"),
            ("knownHosts", "h ssh-ed25519 AAA"),
        ]));
        assert!(matches!(ssh.unwrap(), Credentials::Ssh { .. }));
    }

    #[test]
    fn known_hosts_matching() {
        let hosts = "# comment\ngit.example.com,10.0.0.1 ssh-ed25519 AAAAkey\n[other]:2222 ssh-rsa BBBB\n";
        assert!(host_key_is_known(hosts, "git.example.com", "AAAAkey"));
        assert!(host_key_is_known(hosts, "10.0.0.1", "AAAAkey"));
        assert!(host_key_is_known(hosts, "other", "BBBB"));
        assert!(!host_key_is_known(hosts, "git.example.com", "BBBB"));
        assert!(!host_key_is_known(hosts, "evil.example.com", "AAAAkey"));
    }

    #[test]
    fn redact_removes_user_info() {
        assert_eq!(
            redact("https://user:secret@git.example/app.git"),
            "https://git.example/app.git"
        );
        assert_eq!(redact("file:///tmp/x"), "file:///tmp/x");
    }
}
