//! Pure DNS message building for RFC 2136: the replace update (prerequisites, delete RRset, add), the
//! credentials probe (prerequisite only, changes nothing), queries, and reading record sets out of
//! answers. No I/O here.

use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, UpdateMessage};
use hickory_proto::rr::rdata::{A, AAAA, CNAME};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType as HickoryType};

use super::record::{RecordSet, RecordType};
use crate::{Error, Result};

/// The UDP payload size Ferry advertises (the DNS flag day 2020 value, avoids fragmentation).
pub(crate) const UDP_PAYLOAD: u16 = 1232;

/// Parses a name as an absolute hickory name.
pub(crate) fn absolute_name(name: &str) -> Result<Name> {
    let mut parsed = Name::from_ascii(name)
        .map_err(|err| Error::InvalidSpec(format!("{name:?} is not a DNS name: {err}")))?;
    parsed.set_fqdn(true);
    Ok(parsed)
}

/// A non-recursive query for `name`/`record_type`, advertising EDNS so answers up to 1232 bytes fit UDP.
pub(crate) fn query(name: &Name, record_type: HickoryType) -> Message {
    let mut message = Message::query();
    message.metadata.recursion_desired = false;
    message.add_query(Query::query(name.clone(), record_type));
    message
        .edns
        .get_or_insert_with(Edns::new)
        .set_max_payload(UDP_PAYLOAD)
        .set_version(0);
    message
}

/// An empty UPDATE for `zone` (zone section: the zone's SOA, class IN).
fn update_for(zone: &Name) -> Message {
    let mut message = Message::new(rand::random(), MessageType::Query, OpCode::Update);
    message.metadata.recursion_desired = false;
    let mut zone_section = Query::query(zone.clone(), HickoryType::SOA);
    zone_section.set_query_class(DNSClass::IN);
    message.add_zone(zone_section);
    message
}

/// The probe `ferry dns check` sends: only the prerequisite "the zone apex SOA RRset exists" (RFC 2136
/// §2.4.1), no update section. A server that accepts the key answers NOERROR and changes nothing.
pub(crate) fn credentials_probe(zone: &Name) -> Message {
    let mut message = update_for(zone);
    let mut prerequisite = Record::update0(zone.clone(), 0, HickoryType::SOA);
    prerequisite.dns_class = DNSClass::ANY;
    message.add_pre_requisite(prerequisite);
    message
}

/// One update message that makes every `desired` set what the zone serves, each guarded by a
/// prerequisite that the set is still what was read (`current`, same order): value-dependent "RRset
/// exists" (§2.4.2) or "RRset does not exist" (§2.4.3). Then per set: delete the RRset (§2.5.2) and
/// add the desired values (§2.5.1). A concurrent change makes the whole update fail (NXRRSET/YXRRSET).
pub(crate) fn replace_update(zone: &Name, current: &[RecordSet], desired: &[RecordSet]) -> Result<Message> {
    let mut message = update_for(zone);
    for (current, desired) in current.iter().zip(desired) {
        let name = absolute_name(&desired.fqdn)?;
        if !zone.zone_of(&name) {
            return Err(Error::InvalidSpec(format!(
                "{} is not in zone {zone}",
                desired.fqdn
            )));
        }
        let record_type = desired.record_type.to_hickory();
        if current.exists() {
            for value in &current.values {
                // Value-dependent prerequisite: class IN, TTL 0, the exact RDATA.
                message.add_pre_requisite(Record::from_rdata(
                    name.clone(),
                    0,
                    rdata(current.record_type, value)?,
                ));
            }
        } else {
            let mut prerequisite = Record::update0(name.clone(), 0, record_type);
            prerequisite.dns_class = DNSClass::NONE;
            message.add_pre_requisite(prerequisite);
        }
        let mut delete = Record::update0(name.clone(), 0, record_type);
        delete.dns_class = DNSClass::ANY;
        message.add_update(delete);
        for value in &desired.values {
            message.add_update(Record::from_rdata(
                name.clone(),
                desired.ttl,
                rdata(desired.record_type, value)?,
            ));
        }
    }
    Ok(message)
}

/// The RDATA of one canonical value.
fn rdata(record_type: RecordType, value: &str) -> Result<RData> {
    let invalid = || Error::InvalidSpec(format!("{value:?} is not a valid {record_type} value"));
    Ok(match record_type {
        RecordType::A => RData::A(A(value.parse::<Ipv4Addr>().map_err(|_| invalid())?)),
        RecordType::AAAA => RData::AAAA(AAAA(value.parse::<Ipv6Addr>().map_err(|_| invalid())?)),
        RecordType::CNAME => RData::CNAME(CNAME(absolute_name(value)?)),
    })
}

/// The record set of `fqdn`/`record_type` in a query response's answer section (absent if none).
pub(crate) fn record_set_from_answer(
    response: &Message,
    fqdn: &str,
    record_type: RecordType,
) -> Result<RecordSet> {
    let name = absolute_name(fqdn)?;
    let mut ttl = 0;
    let mut values = Vec::new();
    for record in response.answers.iter().filter(|r| r.name == name) {
        let value = match (&record.data, record_type) {
            (RData::A(a), RecordType::A) => a.0.to_string(),
            (RData::AAAA(aaaa), RecordType::AAAA) => aaaa.0.to_string(),
            (RData::CNAME(cname), RecordType::CNAME) => cname.0.to_ascii(),
            _ => continue,
        };
        ttl = record.ttl;
        values.push(value);
    }
    RecordSet::new(
        fqdn,
        record_type,
        if values.is_empty() { 0 } else { ttl },
        &values,
    )
}

/// The record types at `fqdn` in an ANY response that a record of `wanted` type cannot live beside:
/// anything but DNSSEC metadata next to a CNAME, and a CNAME next to anything else.
pub(crate) fn cname_conflicts(response: &Message, fqdn: &str, wanted: RecordType) -> Result<Vec<String>> {
    let name = absolute_name(fqdn)?;
    let mut types: Vec<String> = response
        .answers
        .iter()
        .filter(|r| r.name == name)
        .map(|r| r.record_type())
        .filter(|t| {
            let dnssec = matches!(t, HickoryType::RRSIG | HickoryType::NSEC | HickoryType::NSEC3);
            match wanted {
                RecordType::CNAME => *t != HickoryType::CNAME && !dnssec,
                RecordType::A | RecordType::AAAA => *t == HickoryType::CNAME,
            }
        })
        .map(|t| t.to_string())
        .collect();
    types.sort();
    types.dedup();
    Ok(types)
}

#[cfg(test)]
mod tests {
    use hickory_proto::op::ResponseCode;

    use super::*;

    fn response(code: ResponseCode) -> Message {
        let mut message = Message::error_msg(1, OpCode::Update, code);
        message.metadata.authoritative = true;
        message
    }

    fn set(fqdn: &str, record_type: RecordType, ttl: u32, values: &[&str]) -> RecordSet {
        RecordSet::new(
            fqdn,
            record_type,
            ttl,
            &values.iter().map(|v| v.to_string()).collect::<Vec<_>>(),
        )
        .unwrap()
    }

    #[test]
    fn replace_guards_with_current_values_then_deletes_and_adds() {
        let zone = absolute_name("example.test").unwrap();
        let current = [set("app.example.test", RecordType::A, 300, &["10.0.0.1"])];
        let desired = [set(
            "app.example.test",
            RecordType::A,
            60,
            &["10.0.1.1", "10.0.1.2"],
        )];
        let message = replace_update(&zone, &current, &desired).unwrap();
        assert_eq!(message.metadata.op_code, OpCode::Update);
        assert_eq!(message.zones()[0].name(), &zone);
        let prereq = &message.prerequisites()[0];
        assert_eq!((prereq.dns_class, prereq.ttl), (DNSClass::IN, 0));
        assert_eq!(prereq.data, RData::A(A("10.0.0.1".parse().unwrap())));
        let updates = message.updates();
        assert_eq!(updates.len(), 3);
        assert_eq!(
            (updates[0].dns_class, updates[0].data.clone()),
            (DNSClass::ANY, RData::Update0(HickoryType::A))
        );
        assert!(
            updates[1..]
                .iter()
                .all(|r| r.dns_class == DNSClass::IN && r.ttl == 60)
        );
        // It encodes (what goes on the wire).
        assert!(message.to_vec().unwrap().len() > 12);
    }

    #[test]
    fn absent_current_requires_nonexistence_and_absent_desired_only_deletes() {
        let zone = absolute_name("example.test").unwrap();
        let absent = [RecordSet::absent("new.example.test", RecordType::CNAME).unwrap()];
        let desired = [set(
            "new.example.test",
            RecordType::CNAME,
            60,
            &["lb.example.net"],
        )];
        let message = replace_update(&zone, &absent, &desired).unwrap();
        assert_eq!(message.prerequisites()[0].dns_class, DNSClass::NONE);
        let message = replace_update(&zone, &desired, &absent).unwrap();
        assert_eq!(message.updates().len(), 1);
        let outside = [set("app.other.test", RecordType::A, 60, &["10.0.0.1"])];
        assert!(replace_update(&zone, &outside, &outside).is_err());
    }

    #[test]
    fn probe_has_one_prerequisite_and_no_update() {
        let zone = absolute_name("example.test").unwrap();
        let probe = credentials_probe(&zone);
        assert!(probe.updates().is_empty());
        assert_eq!(probe.prerequisites()[0].dns_class, DNSClass::ANY);
        assert_eq!(probe.prerequisites()[0].data, RData::Update0(HickoryType::SOA));
    }

    #[test]
    fn reads_answers_and_finds_cname_conflicts() {
        let name = absolute_name("app.example.test").unwrap();
        let mut answer = response(ResponseCode::NoError);
        answer.add_answer(Record::from_rdata(
            name.clone(),
            120,
            RData::A(A("10.0.0.2".parse().unwrap())),
        ));
        answer.add_answer(Record::from_rdata(
            name.clone(),
            120,
            RData::A(A("10.0.0.1".parse().unwrap())),
        ));
        let read = record_set_from_answer(&answer, "app.example.test", RecordType::A).unwrap();
        assert_eq!(
            read,
            set("app.example.test", RecordType::A, 120, &["10.0.0.1", "10.0.0.2"])
        );
        assert_eq!(
            cname_conflicts(&answer, "app.example.test", RecordType::CNAME).unwrap(),
            ["A"]
        );
        assert!(
            cname_conflicts(&answer, "app.example.test", RecordType::A)
                .unwrap()
                .is_empty()
        );
        assert!(
            !record_set_from_answer(&answer, "app.example.test", RecordType::AAAA)
                .unwrap()
                .exists()
        );
    }
}
