//! The `dns` section of a MigPlan (DESIGN.md §2), as serde + schemars types the API can embed
//! unchanged: which records to flip, where their target values come from, and which provider writes
//! them. Validation that needs no cluster lives here too.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::record::RecordType;
use crate::{Error, Result};

/// DNS records to flip at cutover and the provider that writes them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DnsSpec {
    /// The records to point at the target cluster.
    #[serde(default)]
    pub records: Vec<DnsRecordSpec>,
    /// Write the records with RFC 2136 dynamic updates signed with TSIG.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rfc2136: Option<Rfc2136Spec>,
    /// Write the records into an external-dns `DNSEndpoint` resource.
    #[serde(default, rename = "externalDNS", skip_serializing_if = "Option::is_none")]
    pub external_dns: Option<ExternalDnsSpec>,
    /// TTL (seconds) set on the records ahead of cutover so resolvers pick up the flip quickly; the
    /// recorded TTL is put back by rollback, and the target TTL comes from each record's `ttl`.
    #[serde(default, rename = "preCutoverTTL", skip_serializing_if = "Option::is_none")]
    pub pre_cutover_ttl: Option<u32>,
}

/// One record to flip.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DnsRecordSpec {
    /// Fully qualified name of the record, e.g. `app.example.com`.
    pub fqdn: String,
    /// Record type: A, AAAA or CNAME.
    #[serde(rename = "type")]
    pub record_type: RecordType,
    /// Literal target value (an address, or a name for CNAME); several addresses separated by commas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Take the target from this Service's load-balancer address in the target cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_service: Option<ObjectRef>,
    /// Take the target from this Ingress's address in the target cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_ingress: Option<ObjectRef>,
    /// TTL in seconds after the flip; when absent the record keeps its current TTL (300 if new).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u32>,
}

/// The name and namespace of a Kubernetes object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    /// Object name.
    pub name: String,
    /// Object namespace.
    pub namespace: String,
}

/// RFC 2136 provider settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rfc2136Spec {
    /// The zone's primary authoritative server, `host` or `host:port` (port 53 by default).
    pub server: String,
    /// The zone to update, e.g. `example.com`.
    pub zone: String,
    /// Secret with the TSIG key: data keys `keyName`, `algorithm` (hmac-sha256|384|512), `secret` (base64).
    pub tsig_secret_ref: ObjectRef,
}

/// external-dns provider settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalDnsSpec {
    /// The `DNSEndpoint` resource Ferry writes (created if missing) in the cluster external-dns watches.
    pub dns_endpoint_ref: ObjectRef,
}

/// Where a record's target values come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetSource<'a> {
    /// Literal values from the spec.
    Literal(Vec<String>),
    /// A Service's load-balancer ingress.
    Service(&'a ObjectRef),
    /// An Ingress's load-balancer ingress.
    Ingress(&'a ObjectRef),
}

impl DnsRecordSpec {
    /// The one source of target values: exactly one of `value`, `fromService`, `fromIngress`.
    pub fn target_source(&self) -> Result<TargetSource<'_>> {
        let literal = self.value.as_deref().map(|value| {
            TargetSource::Literal(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(String::from)
                    .collect(),
            )
        });
        let sources: Vec<TargetSource<'_>> = [
            literal,
            self.from_service.as_ref().map(TargetSource::Service),
            self.from_ingress.as_ref().map(TargetSource::Ingress),
        ]
        .into_iter()
        .flatten()
        .collect();
        match <[_; 1]>::try_from(sources) {
            Ok([source]) => Ok(source),
            Err(sources) => Err(Error::InvalidSpec(format!(
                "dns record {}: set exactly one of value, fromService, fromIngress (found {})",
                self.fqdn,
                sources.len()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_design_field_names() {
        let yaml = r#"{
          "records": [
            {"fqdn": "app.example.com", "type": "A", "fromService": {"name": "web", "namespace": "shop"}, "ttl": 60},
            {"fqdn": "www.example.com", "type": "CNAME", "value": "lb.example.net"}
          ],
          "rfc2136": {"server": "ns1.example.com:53", "zone": "example.com",
                      "tsigSecretRef": {"name": "tsig", "namespace": "ferry"}},
          "preCutoverTTL": 30
        }"#;
        let spec: DnsSpec = serde_json::from_str(yaml).unwrap();
        assert_eq!(spec.pre_cutover_ttl, Some(30));
        assert_eq!(spec.records[0].record_type, RecordType::A);
        assert!(
            matches!(spec.records[0].target_source().unwrap(), TargetSource::Service(r) if r.name == "web")
        );
        assert_eq!(
            spec.records[1].target_source().unwrap(),
            TargetSource::Literal(vec!["lb.example.net".into()])
        );
        let back = serde_json::to_value(&spec).unwrap();
        assert_eq!(back["preCutoverTTL"], 30);
        assert_eq!(back["rfc2136"]["tsigSecretRef"]["name"], "tsig");
        let external: DnsSpec =
            serde_json::from_str(r#"{"externalDNS": {"dnsEndpointRef": {"name": "e", "namespace": "n"}}}"#)
                .unwrap();
        assert_eq!(external.external_dns.unwrap().dns_endpoint_ref.name, "e");
    }

    #[test]
    fn exactly_one_target_source() {
        let mut record = DnsRecordSpec {
            fqdn: "a.test".into(),
            record_type: RecordType::A,
            value: Some("10.0.0.1, 10.0.0.2".into()),
            from_service: None,
            from_ingress: None,
            ttl: None,
        };
        assert_eq!(
            record.target_source().unwrap(),
            TargetSource::Literal(vec!["10.0.0.1".into(), "10.0.0.2".into()])
        );
        record.from_ingress = Some(ObjectRef {
            name: "i".into(),
            namespace: "n".into(),
        });
        assert!(
            record
                .target_source()
                .unwrap_err()
                .to_string()
                .contains("found 2")
        );
        record.value = None;
        record.from_ingress = None;
        assert!(
            record
                .target_source()
                .unwrap_err()
                .to_string()
                .contains("found 0")
        );
    }
}
