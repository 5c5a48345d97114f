//! TSIG keys (RFC 8945): parsed from a Kubernetes Secret's data, from a BIND/`tsig-keygen` key file,
//! or from parts, and turned into hickory's signer. The secret never appears in `Debug` output.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hickory_proto::rr::rdata::tsig::TsigAlgorithm as HickoryAlgorithm;
use hickory_proto::rr::{Name, TSigner};

use crate::{Error, Result};

/// Allowed clock difference between Ferry and the server when signing (RFC 8945 recommends 300 s).
const FUDGE_SECONDS: u16 = 300;

/// The HMAC algorithms Ferry signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TsigAlgorithm {
    /// hmac-sha256 (the default everywhere).
    HmacSha256,
    /// hmac-sha384.
    HmacSha384,
    /// hmac-sha512.
    HmacSha512,
}

impl TsigAlgorithm {
    /// Parses `hmac-sha256`, `hmac-sha384`, `hmac-sha512` (any case, trailing dot allowed).
    pub fn parse(text: &str) -> Result<Self> {
        match text.trim().trim_end_matches('.').to_ascii_lowercase().as_str() {
            "hmac-sha256" => Ok(Self::HmacSha256),
            "hmac-sha384" => Ok(Self::HmacSha384),
            "hmac-sha512" => Ok(Self::HmacSha512),
            other => Err(Error::InvalidSpec(format!(
                "TSIG algorithm {other:?} is not one of hmac-sha256, hmac-sha384, hmac-sha512"
            ))),
        }
    }

    /// The name BIND and RFC 8945 use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HmacSha256 => "hmac-sha256",
            Self::HmacSha384 => "hmac-sha384",
            Self::HmacSha512 => "hmac-sha512",
        }
    }

    fn to_hickory(self) -> HickoryAlgorithm {
        match self {
            Self::HmacSha256 => HickoryAlgorithm::HmacSha256,
            Self::HmacSha384 => HickoryAlgorithm::HmacSha384,
            Self::HmacSha512 => HickoryAlgorithm::HmacSha512,
        }
    }
}

/// A TSIG key: its name as the server knows it, the algorithm and the shared secret.
#[derive(Clone, PartialEq, Eq)]
pub struct TsigKey {
    /// Key name, e.g. `ferry-key`.
    pub name: String,
    /// HMAC algorithm.
    pub algorithm: TsigAlgorithm,
    /// The decoded shared secret.
    secret: Vec<u8>,
}

impl fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TsigKey")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl TsigKey {
    /// Builds a key from its name, algorithm name and base64 secret.
    pub fn new(name: &str, algorithm: &str, secret_base64: &str) -> Result<Self> {
        let name = name.trim().trim_end_matches('.');
        if name.is_empty() {
            return Err(Error::InvalidSpec("TSIG key name is empty".into()));
        }
        let secret = BASE64.decode(secret_base64.trim()).map_err(|err| {
            Error::InvalidSpec(format!("TSIG key {name}: secret is not valid base64: {err}"))
        })?;
        if secret.is_empty() {
            return Err(Error::InvalidSpec(format!("TSIG key {name}: secret is empty")));
        }
        Ok(Self {
            name: name.to_string(),
            algorithm: TsigAlgorithm::parse(algorithm)?,
            secret,
        })
    }

    /// A fresh key with a random 32-byte secret (for the sandbox's BIND).
    pub fn generate(name: &str, algorithm: TsigAlgorithm) -> Self {
        let secret: [u8; 32] = rand::random();
        Self {
            name: name.to_string(),
            algorithm,
            secret: secret.to_vec(),
        }
    }

    /// Reads the key from a Secret's data: `keyName`, `algorithm` (default hmac-sha256), `secret`.
    pub fn from_secret_data(secret_name: &str, data: &BTreeMap<String, Vec<u8>>) -> Result<Self> {
        let field = |key: &str| -> Result<Option<String>> {
            data.get(key)
                .map(|bytes| {
                    String::from_utf8(bytes.clone()).map_err(|_| {
                        Error::InvalidSpec(format!("Secret {secret_name}: key {key} is not UTF-8 text"))
                    })
                })
                .transpose()
        };
        let missing = |key: &str| Error::InvalidSpec(format!("Secret {secret_name} has no data key {key:?}"));
        let name = field("keyName")?.ok_or_else(|| missing("keyName"))?;
        let secret = field("secret")?.ok_or_else(|| missing("secret"))?;
        let algorithm = field("algorithm")?.unwrap_or_else(|| "hmac-sha256".into());
        Self::new(&name, &algorithm, &secret)
    }

    /// Parses the first `key "name" { algorithm ...; secret "..."; };` block of a BIND key file (what
    /// `tsig-keygen` prints).
    pub fn from_bind_key_file(text: &str) -> Result<Self> {
        let invalid = |what: &str| Error::InvalidSpec(format!("key file: {what}"));
        let after_key = text
            .split_once("key")
            .map(|(_, rest)| rest)
            .ok_or_else(|| invalid("no `key \"name\" { ... };` block"))?;
        let (name, body) = after_key
            .split_once('{')
            .ok_or_else(|| invalid("no `{` after the key name"))?;
        let body = body
            .split_once('}')
            .map(|(body, _)| body)
            .ok_or_else(|| invalid("no closing `}`"))?;
        let mut algorithm = None;
        let mut secret = None;
        for statement in body.split(';') {
            let mut words = statement.split_whitespace();
            match (words.next(), words.next()) {
                (Some("algorithm"), Some(value)) => algorithm = Some(value.trim_matches('"').to_string()),
                (Some("secret"), Some(value)) => secret = Some(value.trim_matches('"').to_string()),
                _ => {}
            }
        }
        let algorithm = algorithm.ok_or_else(|| invalid("no `algorithm` statement"))?;
        let secret = secret.ok_or_else(|| invalid("no `secret` statement"))?;
        Self::new(name.trim().trim_matches('"'), &algorithm, &secret)
    }

    /// The key as a BIND `key` statement (for a server configuration; contains the secret).
    pub fn to_bind_statement(&self) -> String {
        format!(
            "key \"{}\" {{\n    algorithm {};\n    secret \"{}\";\n}};\n",
            self.name,
            self.algorithm.as_str(),
            self.secret_base64()
        )
    }

    /// The secret in base64, for writing it into a Secret or a server configuration. Never log it.
    pub fn secret_base64(&self) -> String {
        BASE64.encode(&self.secret)
    }

    /// The same key with another secret of the same length (tests: a key the server will reject).
    pub fn with_secret(&self, secret: Vec<u8>) -> Self {
        Self {
            secret,
            ..self.clone()
        }
    }

    /// hickory's signer for this key.
    pub(crate) fn signer(&self) -> Result<TSigner> {
        let name = Name::from_ascii(&self.name)
            .map_err(|err| Error::InvalidSpec(format!("TSIG key name {:?}: {err}", self.name)))?;
        TSigner::new(
            self.secret.clone(),
            self.algorithm.to_hickory(),
            name,
            FUDGE_SECONDS,
        )
        .map_err(|err| Error::InvalidSpec(format!("TSIG key {}: {err}", self.name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_tsig_keygen_file() {
        let file = "key \"ferry-key\" {\n\talgorithm hmac-sha512;\n\tsecret \"c2VjcmV0IGJ5dGVz\";\n};\n";
        let key = TsigKey::from_bind_key_file(file).unwrap();
        assert_eq!(key.name, "ferry-key");
        assert_eq!(key.algorithm, TsigAlgorithm::HmacSha512);
        assert_eq!(key.secret, b"secret bytes");
        assert_eq!(
            TsigKey::from_bind_key_file(&key.to_bind_statement()).unwrap(),
            key
        );
    }

    #[test]
    fn reads_secret_data_and_names_what_is_missing() {
        let mut data = BTreeMap::new();
        data.insert("keyName".to_string(), b"k1".to_vec());
        let err = TsigKey::from_secret_data("tsig", &data).unwrap_err().to_string();
        assert!(err.contains("\"secret\""), "{err}");
        data.insert("secret".to_string(), b"c2VjcmV0".to_vec());
        let key = TsigKey::from_secret_data("tsig", &data).unwrap();
        assert_eq!(key.algorithm, TsigAlgorithm::HmacSha256);
        data.insert("algorithm".to_string(), b"hmac-md5".to_vec());
        assert!(TsigKey::from_secret_data("tsig", &data).is_err());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let key = TsigKey::new("k", "hmac-sha256", "c2VjcmV0").unwrap();
        let shown = format!("{key:?}");
        assert!(
            !shown.contains("c2VjcmV0") && !shown.contains("secret\","),
            "{shown}"
        );
        assert!(key.signer().is_ok());
        assert!(TsigKey::new("k", "hmac-sha256", "not base64!").is_err());
    }
}
