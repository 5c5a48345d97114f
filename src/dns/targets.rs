//! Where the flip points: literal values, or the load-balancer address of a Service or an Ingress in
//! the target cluster. Extraction from the objects is pure (unit-tested); fetching them takes a client.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;

use super::config::{DnsRecordSpec, DnsSpec, ObjectRef, TargetSource};
use super::record::{DEFAULT_TTL, RecordSet, RecordType};
use crate::{Error, Result};

/// One load-balancer address as Kubernetes reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    /// `ip`.
    Ip(IpAddr),
    /// `hostname` (cloud load balancers that have a name, not an address).
    Hostname(String),
}

/// Addresses of `status.loadBalancer.ingress[]` entries (`ip` preferred over `hostname`).
fn from_ingress_entries<'a>(
    entries: impl Iterator<Item = (Option<&'a String>, Option<&'a String>)>,
) -> Vec<Address> {
    entries
        .filter_map(
            |(ip, hostname)| match (ip.and_then(|ip| ip.parse().ok()), hostname) {
                (Some(ip), _) => Some(Address::Ip(ip)),
                (None, Some(hostname)) if !hostname.is_empty() => Some(Address::Hostname(hostname.clone())),
                _ => None,
            },
        )
        .collect()
}

/// A Service's load-balancer addresses.
pub fn service_addresses(service: &Service) -> Vec<Address> {
    let entries = service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref());
    from_ingress_entries(
        entries
            .into_iter()
            .flatten()
            .map(|e| (e.ip.as_ref(), e.hostname.as_ref())),
    )
}

/// An Ingress's load-balancer addresses.
pub fn ingress_addresses(ingress: &Ingress) -> Vec<Address> {
    let entries = ingress
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref());
    from_ingress_entries(
        entries
            .into_iter()
            .flatten()
            .map(|e| (e.ip.as_ref(), e.hostname.as_ref())),
    )
}

/// The values of a `record_type` record for these addresses: IPv4 for A, IPv6 for AAAA, the one
/// hostname for CNAME. `source` names the object in errors.
pub fn values_for(record_type: RecordType, addresses: &[Address], source: &str) -> Result<Vec<String>> {
    if addresses.is_empty() {
        return Err(Error::DnsTargetNotReady(format!(
            "{source} has no load-balancer address yet"
        )));
    }
    let values: Vec<String> = match record_type {
        RecordType::A | RecordType::AAAA => addresses
            .iter()
            .filter_map(|a| match a {
                Address::Ip(ip) if record_type.accepts_ip(*ip) => Some(ip.to_string()),
                _ => None,
            })
            .collect(),
        RecordType::CNAME => addresses
            .iter()
            .filter_map(|a| match a {
                Address::Hostname(name) => Some(name.clone()),
                Address::Ip(_) => None,
            })
            .take(1)
            .collect(),
    };
    if values.is_empty() {
        let hint = match record_type {
            RecordType::CNAME => "it has only IP addresses: use type A or AAAA",
            _ => "it has no address of that family (a hostname needs type CNAME)",
        };
        return Err(Error::InvalidSpec(format!(
            "{source} cannot be the target of a {record_type} record: {hint}"
        )));
    }
    Ok(values)
}

/// The target values of one record: literal, or fetched from the target cluster.
pub async fn resolve_values(record: &DnsRecordSpec, target: &kube::Client) -> Result<Vec<String>> {
    let fetch_failed = |kind: &str, obj: &ObjectRef| format!("{kind} {}/{}", obj.namespace, obj.name);
    match record.target_source()? {
        TargetSource::Literal(values) => Ok(values),
        TargetSource::Service(obj) => {
            let api: kube::Api<Service> = kube::Api::namespaced(target.clone(), &obj.namespace);
            let label = fetch_failed("Service", obj);
            let service = api.get_opt(&obj.name).await?.ok_or_else(|| not_found(&label))?;
            values_for(record.record_type, &service_addresses(&service), &label)
        }
        TargetSource::Ingress(obj) => {
            let api: kube::Api<Ingress> = kube::Api::namespaced(target.clone(), &obj.namespace);
            let label = fetch_failed("Ingress", obj);
            let ingress = api.get_opt(&obj.name).await?.ok_or_else(|| not_found(&label))?;
            values_for(record.record_type, &ingress_addresses(&ingress), &label)
        }
    }
}

fn not_found(label: &str) -> Error {
    Error::DnsTargetNotReady(format!("{label} not found in the target cluster"))
}

/// The record sets a cutover writes: each record's target values, with its `ttl`, else the TTL it had
/// when recorded before the TTL was lowered (`recorded`, same order as `spec.records`), else
/// [`DEFAULT_TTL`]. Pass the sets `lower_ttl` returned, not a read made after lowering, so the flip
/// also puts the original TTL back.
pub async fn desired_record_sets(
    spec: &DnsSpec,
    recorded: &[RecordSet],
    target: &kube::Client,
) -> Result<Vec<RecordSet>> {
    let mut desired = Vec::with_capacity(spec.records.len());
    for (index, record) in spec.records.iter().enumerate() {
        let values = resolve_values(record, target).await?;
        desired.push(desired_record_set(record, &values, recorded.get(index))?);
    }
    Ok(desired)
}

/// One record's target set from resolved `values` (the TTL rule of [`desired_record_sets`]).
pub fn desired_record_set(
    record: &DnsRecordSpec,
    values: &[String],
    recorded: Option<&RecordSet>,
) -> Result<RecordSet> {
    let recorded_ttl = recorded.filter(|set| set.exists()).map(|set| set.ttl);
    let ttl = record.ttl.or(recorded_ttl).unwrap_or(DEFAULT_TTL);
    RecordSet::new(&record.fqdn, record.record_type, ttl, values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(status: serde_json::Value) -> Service {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "web"}, "status": status})).unwrap()
    }

    #[test]
    fn service_and_ingress_addresses() {
        let svc = service(serde_json::json!({"loadBalancer": {"ingress": [
            {"ip": "192.0.2.10"}, {"ip": "2001:db8::10"}, {"hostname": "lb-1.elb.example"}
        ]}}));
        let addresses = service_addresses(&svc);
        assert_eq!(addresses.len(), 3);
        assert_eq!(
            values_for(RecordType::A, &addresses, "svc").unwrap(),
            ["192.0.2.10"]
        );
        assert_eq!(
            values_for(RecordType::AAAA, &addresses, "svc").unwrap(),
            ["2001:db8::10"]
        );
        assert_eq!(
            values_for(RecordType::CNAME, &addresses, "svc").unwrap(),
            ["lb-1.elb.example"]
        );
        let ingress: Ingress = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web"},
            "status": {"loadBalancer": {"ingress": [{"hostname": "router.apps.example"}]}}
        }))
        .unwrap();
        assert_eq!(
            ingress_addresses(&ingress),
            [Address::Hostname("router.apps.example".into())]
        );
    }

    #[test]
    fn ttl_comes_from_the_spec_else_the_recorded_set_else_the_default() {
        let mut record = DnsRecordSpec {
            fqdn: "app.example.test".into(),
            record_type: RecordType::A,
            value: Some("192.0.2.1".into()),
            from_service: None,
            from_ingress: None,
            ttl: None,
        };
        let values = ["198.51.100.1".to_string()];
        let recorded =
            RecordSet::new("app.example.test", RecordType::A, 3600, &["192.0.2.1".into()]).unwrap();
        assert_eq!(
            desired_record_set(&record, &values, Some(&recorded)).unwrap().ttl,
            3600
        );
        assert_eq!(
            desired_record_set(&record, &values, None).unwrap().ttl,
            DEFAULT_TTL
        );
        record.ttl = Some(60);
        assert_eq!(
            desired_record_set(&record, &values, Some(&recorded)).unwrap().ttl,
            60
        );
    }

    #[test]
    fn pending_and_mismatched_targets_say_why() {
        let pending = service(serde_json::json!({"loadBalancer": {}}));
        assert!(matches!(
            values_for(RecordType::A, &service_addresses(&pending), "Service shop/web"),
            Err(Error::DnsTargetNotReady(_))
        ));
        let only_ip = [Address::Ip("192.0.2.1".parse().unwrap())];
        let err = values_for(RecordType::CNAME, &only_ip, "Service shop/web")
            .unwrap_err()
            .to_string();
        assert!(err.contains("use type A"), "{err}");
    }
}
