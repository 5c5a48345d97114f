//! Reaching a `MigCluster`: the host cluster through the controller's own client, a remote one at
//! `spec.url` with the token from its Secret. Failures become a [`Problem`] with one of the documented
//! reasons (SecretNotFound, InvalidToken, Unreachable, TLSError, Forbidden, InvalidSpec).

use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::Secret;
use kube::api::PostParams;
use kube::config::AuthInfo;
use kube::{Api, Client, Config, ResourceExt};

use crate::api::MigCluster;
use crate::api::cluster::SA_TOKEN_KEY;

/// Why a cluster cannot be used, as the `reason` and `message` of its `Ready=False` condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// One of the documented reasons.
    pub reason: &'static str,
    /// What is wrong and what to do about it.
    pub message: String,
}

impl Problem {
    fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// The permissions Ferry checks for on every cluster: (API group, resource, verb).
const REQUIRED_ACCESS: &[(&str, &str, &str)] = &[
    ("", "namespaces", "get"),
    ("", "namespaces", "create"),
    ("", "persistentvolumeclaims", "list"),
    ("", "persistentvolumeclaims", "create"),
    ("", "pods", "list"),
    ("", "pods", "create"),
    ("", "secrets", "create"),
    ("", "services", "create"),
    ("apps", "deployments", "patch"),
    ("apps", "statefulsets", "patch"),
];

/// A client for `cluster`, without probing it (reads its Secret; see [`super::clients`] for the cache).
pub async fn client_for(host: &Client, cluster: &MigCluster) -> Result<Client, Problem> {
    if cluster.spec.is_host_cluster {
        return Ok(host.clone());
    }
    endpoint(cluster)?;
    let (token, _) = read_token(host, cluster).await?;
    client_for_token(cluster, token)
}

/// The API server URL of a remote `cluster`.
fn endpoint(cluster: &MigCluster) -> Result<http::Uri, Problem> {
    let url = cluster
        .spec
        .url
        .as_deref()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| Problem::new("InvalidSpec", "spec.url is required when isHostCluster is false"))?;
    url.parse()
        .map_err(|err| Problem::new("InvalidSpec", format!("spec.url {url:?} is not a URL: {err}")))
}

/// The token of a remote `cluster` from its Secret, with the Secret's resourceVersion (what a cached
/// client was built from).
pub(crate) async fn read_token(host: &Client, cluster: &MigCluster) -> Result<(String, String), Problem> {
    let spec = &cluster.spec;
    let secret_ref = spec.service_account_secret_ref.as_ref().ok_or_else(|| {
        Problem::new(
            "InvalidSpec",
            "spec.serviceAccountSecretRef is required when isHostCluster is false",
        )
    })?;
    let own_ns = cluster.namespace().unwrap_or_default();
    let secret_ns = secret_ref.namespace_or(&own_ns);
    let secrets: Api<Secret> = Api::namespaced(host.clone(), secret_ns);
    let secret = match secrets.get_opt(&secret_ref.name).await {
        Ok(Some(secret)) => secret,
        Ok(None) => {
            return Err(Problem::new(
                "SecretNotFound",
                format!("Secret {secret_ns}/{} does not exist", secret_ref.name),
            ));
        }
        Err(err) => {
            return Err(Problem::new(
                "SecretNotFound",
                format!("cannot read Secret {secret_ns}/{}: {err}", secret_ref.name),
            ));
        }
    };
    let token = secret
        .data
        .as_ref()
        .and_then(|data| data.get(SA_TOKEN_KEY))
        .map(|bytes| String::from_utf8_lossy(&bytes.0).trim().to_string())
        .filter(|token| !token.is_empty())
        .ok_or_else(|| {
            Problem::new(
                "SecretNotFound",
                format!(
                    "Secret {secret_ns}/{} has no non-empty key {SA_TOKEN_KEY:?}",
                    secret_ref.name
                ),
            )
        })?;
    Ok((token, secret.resource_version().unwrap_or_default()))
}

/// A client for a remote `cluster` authenticating with `token`.
pub(crate) fn client_for_token(cluster: &MigCluster, token: String) -> Result<Client, Problem> {
    let spec = &cluster.spec;
    let uri = endpoint(cluster)?;
    let mut config = Config::new(uri);
    config.accept_invalid_certs = spec.insecure;
    config.connect_timeout = Some(Duration::from_secs(5));
    config.read_timeout = Some(Duration::from_secs(20));
    config.auth_info = AuthInfo {
        token: Some(token.into()),
        ..AuthInfo::default()
    };
    if let Some(bundle) = spec.ca_bundle.as_deref().filter(|b| !b.is_empty()) {
        config.root_cert = Some(parse_ca_bundle(bundle).map_err(|why| Problem::new("TLSError", why))?);
    }
    Client::try_from(config).map_err(|err| classify(&err))
}

/// Decodes a base64 PEM bundle (MTC's `caBundle`) into DER certificates.
pub(crate) fn parse_ca_bundle(bundle: &str) -> Result<Vec<Vec<u8>>, String> {
    let pem = base64::engine::general_purpose::STANDARD
        .decode(bundle.trim())
        .map_err(|err| format!("spec.caBundle is not valid base64: {err}"))?;
    let certs: Vec<Vec<u8>> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| format!("spec.caBundle is not a PEM certificate bundle: {err}"))?
        .into_iter()
        .map(|der| der.to_vec())
        .collect();
    if certs.is_empty() {
        return Err("spec.caBundle holds no PEM certificate".into());
    }
    Ok(certs)
}

/// Checks that `client` reaches an API server that accepts its credentials and grants what Ferry
/// needs. Returns the server's version.
pub async fn probe(client: &Client) -> Result<String, Problem> {
    let version = client.apiserver_version().await.map_err(|err| classify(&err))?;
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let mut missing = Vec::new();
    for (group, resource, verb) in REQUIRED_ACCESS {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    group: Some(group.to_string()),
                    resource: Some(resource.to_string()),
                    verb: Some(verb.to_string()),
                    ..ResourceAttributes::default()
                }),
                ..SelfSubjectAccessReviewSpec::default()
            },
            ..SelfSubjectAccessReview::default()
        };
        let answer = reviews
            .create(&PostParams::default(), &review)
            .await
            .map_err(|err| classify(&err))?;
        if !answer.status.is_some_and(|s| s.allowed) {
            let group = if group.is_empty() {
                String::new()
            } else {
                format!("{group}/")
            };
            missing.push(format!("{verb} {group}{resource}"));
        }
    }
    if !missing.is_empty() {
        return Err(Problem::new(
            "Forbidden",
            format!(
                "the credentials lack cluster-wide permissions: {}",
                missing.join(", ")
            ),
        ));
    }
    Ok(version.git_version)
}

/// Maps a client error to a documented reason.
pub(crate) fn classify(err: &kube::Error) -> Problem {
    if let kube::Error::Api(status) = err {
        return match status.code {
            401 => Problem::new(
                "InvalidToken",
                format!("the API server rejected the token: {}", status.message),
            ),
            403 => Problem::new(
                "Forbidden",
                format!("the API server denied access: {}", status.message),
            ),
            _ => Problem::new(
                "Unreachable",
                format!("the API server answered {}: {}", status.code, status.message),
            ),
        };
    }
    let chain = error_chain(err);
    let lower = chain.to_lowercase();
    if ["certificate", "tls", "handshake", "unknownissuer", "x509"]
        .iter()
        .any(|word| lower.contains(word))
    {
        Problem::new(
            "TLSError",
            format!("TLS verification failed: {chain}; set spec.caBundle or fix the URL"),
        )
    } else {
        Problem::new("Unreachable", format!("cannot reach the API server: {chain}"))
    }
}

/// An error and all its sources on one line.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_status_codes_map_to_reasons() {
        let status = |code| {
            kube::Error::Api(Box::new(kube::core::Status {
                code,
                message: "nope".into(),
                ..kube::core::Status::default()
            }))
        };
        assert_eq!(classify(&status(401)).reason, "InvalidToken");
        assert_eq!(classify(&status(403)).reason, "Forbidden");
        assert_eq!(classify(&status(500)).reason, "Unreachable");
    }

    #[test]
    fn transport_errors_map_to_tls_or_unreachable() {
        let io = |text: &str| kube::Error::ReadEvents(std::io::Error::other(text.to_string()));
        assert_eq!(
            classify(&io("invalid peer certificate: UnknownIssuer")).reason,
            "TLSError"
        );
        assert_eq!(
            classify(&io("Connection refused (os error 111)")).reason,
            "Unreachable"
        );
    }

    #[test]
    fn bad_ca_bundles_are_explained() {
        assert!(parse_ca_bundle("%%%").unwrap_err().contains("base64"));
        let not_pem = base64::engine::general_purpose::STANDARD.encode("hello");
        assert!(
            parse_ca_bundle(&not_pem)
                .unwrap_err()
                .contains("no PEM certificate")
        );
    }
}
