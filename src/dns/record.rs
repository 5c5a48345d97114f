//! The records Ferry flips, as plain data: a record type, canonical values, and a record set
//! (name + type + TTL + values). Providers read and write these; cutover stores them in status so a
//! rollback can put back exactly what was there. Pure and unit-tested: no I/O here.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// TTL used for a record that does not exist yet and whose spec gives no TTL.
pub const DEFAULT_TTL: u32 = 300;

/// The record types Ferry can flip.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub enum RecordType {
    /// An IPv4 address.
    A,
    /// An IPv6 address.
    #[allow(clippy::upper_case_acronyms)]
    AAAA,
    /// An alias to another name (exactly one value).
    #[allow(clippy::upper_case_acronyms)]
    CNAME,
}

impl RecordType {
    /// Parses `A`, `AAAA` or `CNAME` (any case).
    pub fn parse(text: &str) -> Result<Self> {
        match text.to_ascii_uppercase().as_str() {
            "A" => Ok(Self::A),
            "AAAA" => Ok(Self::AAAA),
            "CNAME" => Ok(Self::CNAME),
            other => Err(Error::InvalidSpec(format!(
                "record type {other:?} is not one of A, AAAA, CNAME"
            ))),
        }
    }

    /// The canonical text of one value of this type: an address in standard notation, or a lower-case
    /// name with its trailing dot (so comparisons with what a server returns are exact).
    pub fn canonical_value(self, value: &str) -> Result<String> {
        let value = value.trim();
        let invalid = |what: &str| Error::InvalidSpec(format!("{value:?} is not {what} for a {self} record"));
        match self {
            Self::A => value
                .parse::<Ipv4Addr>()
                .map(|ip| ip.to_string())
                .map_err(|_| invalid("an IPv4 address")),
            Self::AAAA => value
                .parse::<Ipv6Addr>()
                .map(|ip| ip.to_string())
                .map_err(|_| invalid("an IPv6 address")),
            Self::CNAME => canonical_name(value).ok_or_else(|| invalid("a domain name")),
        }
    }

    /// The matching hickory record type.
    pub(crate) fn to_hickory(self) -> hickory_proto::rr::RecordType {
        use hickory_proto::rr::RecordType as H;
        match self {
            Self::A => H::A,
            Self::AAAA => H::AAAA,
            Self::CNAME => H::CNAME,
        }
    }

    /// Whether an address can be a value of this type (CNAME takes names, not addresses).
    pub fn accepts_ip(self, ip: IpAddr) -> bool {
        matches!((self, ip), (Self::A, IpAddr::V4(_)) | (Self::AAAA, IpAddr::V6(_)))
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::A => "A",
            Self::AAAA => "AAAA",
            Self::CNAME => "CNAME",
        })
    }
}

/// A domain name in canonical form: lower case, absolute (trailing dot), labels 1..=63 characters of
/// letters, digits, `-` and `_`. `None` if it is not a valid host-like name.
pub fn canonical_name(name: &str) -> Option<String> {
    let trimmed = name.trim().trim_end_matches('.');
    if trimmed.is_empty() || trimmed.len() > 253 {
        return None;
    }
    let valid_label = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    if !trimmed.split('.').all(valid_label) {
        return None;
    }
    Some(format!("{}.", trimmed.to_ascii_lowercase()))
}

/// One record set as Ferry sees it: every value of one type at one name, with its TTL.
/// An empty `values` means the record set does not exist (restoring it deletes what is there).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordSet {
    /// Fully qualified name, canonical (lower case, trailing dot).
    pub fqdn: String,
    /// Record type.
    #[serde(rename = "type")]
    pub record_type: RecordType,
    /// Time to live in seconds (0 when the record set does not exist).
    pub ttl: u32,
    /// Canonical values, sorted and without duplicates.
    pub values: Vec<String>,
}

impl RecordSet {
    /// Builds a record set, checking and canonicalising the name and every value.
    pub fn new(fqdn: &str, record_type: RecordType, ttl: u32, values: &[String]) -> Result<Self> {
        let fqdn = canonical_name(fqdn)
            .ok_or_else(|| Error::InvalidSpec(format!("{fqdn:?} is not a valid domain name")))?;
        let mut canonical = values
            .iter()
            .map(|value| record_type.canonical_value(value))
            .collect::<Result<Vec<_>>>()?;
        canonical.sort();
        canonical.dedup();
        if record_type == RecordType::CNAME && canonical.len() > 1 {
            return Err(Error::InvalidSpec(format!(
                "{fqdn} CNAME can have only one value, got {canonical:?}"
            )));
        }
        Ok(Self {
            fqdn,
            record_type,
            ttl,
            values: canonical,
        })
    }

    /// The record set as absent (what `read` returns for a name/type with no records).
    pub fn absent(fqdn: &str, record_type: RecordType) -> Result<Self> {
        Self::new(fqdn, record_type, 0, &[])
    }

    /// Whether this record set exists.
    pub fn exists(&self) -> bool {
        !self.values.is_empty()
    }

    /// Whether `served` is this record set: the same values and, when it exists, the same TTL.
    pub fn is_served_by(&self, served: &RecordSet) -> bool {
        self.fqdn == served.fqdn
            && self.record_type == served.record_type
            && self.values == served.values
            && (!self.exists() || self.ttl == served.ttl)
    }

    /// The same record set with another TTL (for `preCutoverTTL`).
    pub fn with_ttl(&self, ttl: u32) -> Self {
        Self { ttl, ..self.clone() }
    }
}

impl fmt::Display for RecordSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.exists() {
            write!(
                f,
                "{} {} {} [{}]",
                self.fqdn,
                self.ttl,
                self.record_type,
                self.values.join(", ")
            )
        } else {
            write!(f, "{} {} (absent)", self.fqdn, self.record_type)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_canonicalised_sorted_and_deduplicated() {
        let values = ["10.0.0.2".to_string(), " 10.0.0.1".into(), "10.0.0.2".into()];
        let set = RecordSet::new("App.Example.TEST", RecordType::A, 60, &values).unwrap();
        assert_eq!(set.fqdn, "app.example.test.");
        assert_eq!(set.values, ["10.0.0.1", "10.0.0.2"]);
        let v6 = RecordSet::new("a.test.", RecordType::AAAA, 60, &["2001:DB8:0:0::1".into()]).unwrap();
        assert_eq!(v6.values, ["2001:db8::1"]);
        let alias = RecordSet::new("a.test", RecordType::CNAME, 60, &["LB.Cloud.example".into()]).unwrap();
        assert_eq!(alias.values, ["lb.cloud.example."]);
    }

    #[test]
    fn wrong_values_are_rejected_with_the_value_named() {
        let err = RecordSet::new("a.test", RecordType::A, 60, &["2001:db8::1".into()]).unwrap_err();
        assert!(err.to_string().contains("2001:db8::1"), "{err}");
        assert!(
            RecordSet::new(
                "a.test",
                RecordType::CNAME,
                60,
                &["x.test".into(), "y.test".into()]
            )
            .is_err()
        );
        assert!(RecordSet::new("bad name.test", RecordType::A, 60, &[]).is_err());
        assert!(RecordType::parse("MX").is_err());
        assert_eq!(RecordType::parse("aaaa").unwrap(), RecordType::AAAA);
    }

    #[test]
    fn served_compares_values_and_ttl_but_not_ttl_of_absent_sets() {
        let want = RecordSet::new("a.test", RecordType::A, 60, &["10.0.0.1".into()]).unwrap();
        assert!(want.is_served_by(&want.clone()));
        assert!(!want.is_served_by(&want.with_ttl(300)));
        let absent = RecordSet::absent("a.test", RecordType::A).unwrap();
        assert!(absent.is_served_by(&absent.with_ttl(0)));
        assert!(!absent.is_served_by(&want));
    }
}
