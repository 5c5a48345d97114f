//! The DNS flip at cutover: RFC 2136 with TSIG and external-dns `DNSEndpoint` providers (DESIGN.md §7).
//!
//! ```text
//!  DnsSpec ──choose()──▶ Rfc2136 (signed UPDATE to the zone's server)   ─┐
//!                     └▶ ExternalDns (DNSEndpoint in a cluster)          ├─ impl Provider
//!  read → record ─ lower TTL ─ replace(targets) ─ verify ─ (rollback: restore(recorded))
//! ```
//!
//! A cutover reads and records the current record sets, writes the target values, then waits until the
//! provider serves them. Rollback restores the recorded sets. Record sets are plain data
//! ([`RecordSet`]) so they can be stored in a migration's status.

use std::future::Future;
use std::time::Duration;

mod config;
mod external_dns;
mod message;
mod record;
mod response;
mod rfc2136;
mod targets;
mod transport;
mod tsig;

pub use config::{DnsRecordSpec, DnsSpec, ExternalDnsSpec, ObjectRef, Rfc2136Spec, TargetSource};
pub use external_dns::{DNS_ENDPOINT_CRD_NAME, ExternalDns};
pub use record::{DEFAULT_TTL, RecordSet, RecordType, canonical_name};
pub use response::Rcode;
pub use rfc2136::{DEFAULT_EXCHANGE_TIMEOUT, Rfc2136};
pub use targets::{
    Address, desired_record_set, desired_record_sets, ingress_addresses, resolve_values, service_addresses,
    values_for,
};
pub use tsig::{TsigAlgorithm, TsigKey};

use crate::{Error, Result};

/// Which record set: a name and a type.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RecordKey {
    /// Fully qualified name.
    pub fqdn: String,
    /// Record type.
    pub record_type: RecordType,
}

impl RecordKey {
    /// The key of a record set.
    pub fn of(set: &RecordSet) -> Self {
        Self {
            fqdn: set.fqdn.clone(),
            record_type: set.record_type,
        }
    }

    /// The keys of a spec's records.
    pub fn of_spec(spec: &DnsSpec) -> Vec<Self> {
        spec.records
            .iter()
            .map(|r| Self {
                fqdn: r.fqdn.clone(),
                record_type: r.record_type,
            })
            .collect()
    }
}

/// A place DNS records are written. Every operation is idempotent: replaying it after a crash is safe.
pub trait Provider {
    /// One line saying where records go (for logs and `ferry dns check`); never contains secrets.
    fn describe(&self) -> String;

    /// Checks, without changing anything, that Ferry may write records (key accepted, zone served, or
    /// DNSEndpoint writable).
    fn check_credentials(&self) -> impl Future<Output = Result<()>> + Send;

    /// The current record set for each key, in order (absent sets have no values).
    fn read(&self, keys: &[RecordKey]) -> impl Future<Output = Result<Vec<RecordSet>>> + Send;

    /// Makes each set exactly what is served (an absent set deletes the record set).
    fn replace(&self, desired: &[RecordSet]) -> impl Future<Output = Result<()>> + Send;

    /// Waits until `desired` is served, up to `timeout`; returns how long that took.
    fn verify(
        &self,
        desired: &[RecordSet],
        timeout: Duration,
    ) -> impl Future<Output = Result<Duration>> + Send;

    /// Puts back record sets recorded by `read` before the flip (rollback).
    fn restore(&self, recorded: &[RecordSet]) -> impl Future<Output = Result<()>> + Send {
        self.replace(recorded)
    }
}

/// The provider a plan's `dns` section names, without connecting to it.
#[derive(Clone, Copy, Debug)]
pub enum ProviderChoice<'a> {
    /// `rfc2136` is set.
    Rfc2136(&'a Rfc2136Spec),
    /// `externalDNS` is set.
    ExternalDns(&'a ExternalDnsSpec),
}

/// The one place the provider is chosen: exactly one of `rfc2136`, `externalDNS` must be set.
pub fn choose(spec: &DnsSpec) -> Result<ProviderChoice<'_>> {
    let configured: Vec<ProviderChoice<'_>> = [
        spec.rfc2136.as_ref().map(ProviderChoice::Rfc2136),
        spec.external_dns.as_ref().map(ProviderChoice::ExternalDns),
    ]
    .into_iter()
    .flatten()
    .collect();
    match configured.as_slice() {
        [one] => Ok(*one),
        [] => Err(Error::InvalidSpec(
            "dns: configure a provider, rfc2136 or externalDNS".into(),
        )),
        _ => Err(Error::InvalidSpec(
            "dns: configure only one provider, rfc2136 or externalDNS, not both".into(),
        )),
    }
}

/// A connected provider of either kind.
#[derive(Clone, Debug)]
pub enum Configured {
    /// RFC 2136.
    Rfc2136(Rfc2136),
    /// external-dns.
    ExternalDns(ExternalDns),
}

/// Connects the chosen provider: the TSIG Secret is read with `secrets` (the cluster holding the plan);
/// the DNSEndpoint is written with `endpoints` (the cluster external-dns watches).
pub async fn connect(spec: &DnsSpec, secrets: kube::Client, endpoints: kube::Client) -> Result<Configured> {
    match choose(spec)? {
        ProviderChoice::Rfc2136(rfc) => {
            let key = read_tsig_secret(secrets, &rfc.tsig_secret_ref).await?;
            Ok(Configured::Rfc2136(
                Rfc2136::new(&rfc.server, &rfc.zone, key).await?,
            ))
        }
        ProviderChoice::ExternalDns(external) => Ok(Configured::ExternalDns(ExternalDns::new(
            endpoints,
            &external.dns_endpoint_ref,
        ))),
    }
}

/// Reads a TSIG key from a Secret (`keyName`, `algorithm`, `secret`).
pub async fn read_tsig_secret(client: kube::Client, secret_ref: &ObjectRef) -> Result<TsigKey> {
    use k8s_openapi::api::core::v1::Secret;
    let api: kube::Api<Secret> = kube::Api::namespaced(client, &secret_ref.namespace);
    let label = format!("{}/{}", secret_ref.namespace, secret_ref.name);
    let secret = api
        .get_opt(&secret_ref.name)
        .await?
        .ok_or_else(|| Error::InvalidSpec(format!("TSIG Secret {label} not found")))?;
    let data = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    TsigKey::from_secret_data(&label, &data)
}

impl Provider for Configured {
    fn describe(&self) -> String {
        match self {
            Self::Rfc2136(p) => p.describe(),
            Self::ExternalDns(p) => p.describe(),
        }
    }

    async fn check_credentials(&self) -> Result<()> {
        match self {
            Self::Rfc2136(p) => p.check_credentials().await,
            Self::ExternalDns(p) => p.check_credentials().await,
        }
    }

    async fn read(&self, keys: &[RecordKey]) -> Result<Vec<RecordSet>> {
        match self {
            Self::Rfc2136(p) => p.read(keys).await,
            Self::ExternalDns(p) => p.read(keys).await,
        }
    }

    async fn replace(&self, desired: &[RecordSet]) -> Result<()> {
        match self {
            Self::Rfc2136(p) => p.replace(desired).await,
            Self::ExternalDns(p) => p.replace(desired).await,
        }
    }

    async fn verify(&self, desired: &[RecordSet], timeout: Duration) -> Result<Duration> {
        match self {
            Self::Rfc2136(p) => p.verify(desired, timeout).await,
            Self::ExternalDns(p) => p.verify(desired, timeout).await,
        }
    }
}

/// Lowers the TTL of the existing record sets to `ttl` (`preCutoverTTL`), leaving values alone, and
/// returns what was there before so the original TTL can be put back with [`Provider::restore`].
pub async fn lower_ttl<P: Provider>(provider: &P, keys: &[RecordKey], ttl: u32) -> Result<Vec<RecordSet>> {
    let recorded = provider.read(keys).await?;
    let lowered = lowered_ttl_sets(&recorded, ttl);
    if !lowered.is_empty() {
        provider.replace(&lowered).await?;
    }
    Ok(recorded)
}

/// The record sets whose TTL is above `ttl`, with `ttl` (absent sets and lower TTLs are left alone).
pub fn lowered_ttl_sets(recorded: &[RecordSet], ttl: u32) -> Vec<RecordSet> {
    recorded
        .iter()
        .filter(|set| set.exists() && set.ttl > ttl)
        .map(|set| set.with_ttl(ttl))
        .collect()
}

/// Record sets joined for messages.
pub(crate) fn describe_sets(sets: &[RecordSet]) -> String {
    sets.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_provider_is_chosen() {
        let mut spec = DnsSpec::default();
        assert!(
            choose(&spec)
                .unwrap_err()
                .to_string()
                .contains("configure a provider")
        );
        let target = ObjectRef {
            name: "n".into(),
            namespace: "ns".into(),
        };
        spec.rfc2136 = Some(Rfc2136Spec {
            server: "s".into(),
            zone: "z".into(),
            tsig_secret_ref: target.clone(),
        });
        assert!(matches!(choose(&spec).unwrap(), ProviderChoice::Rfc2136(_)));
        spec.external_dns = Some(ExternalDnsSpec {
            dns_endpoint_ref: target,
        });
        assert!(choose(&spec).unwrap_err().to_string().contains("only one"));
        spec.rfc2136 = None;
        assert!(matches!(choose(&spec).unwrap(), ProviderChoice::ExternalDns(_)));
    }

    #[test]
    fn only_higher_ttls_of_existing_sets_are_lowered() {
        let high = RecordSet::new("a.test", RecordType::A, 3600, &["10.0.0.1".into()]).unwrap();
        let low = RecordSet::new("b.test", RecordType::A, 10, &["10.0.0.1".into()]).unwrap();
        let absent = RecordSet::absent("c.test", RecordType::A).unwrap();
        assert_eq!(
            lowered_ttl_sets(&[high.clone(), low, absent], 30),
            [high.with_ttl(30)]
        );
    }
}
