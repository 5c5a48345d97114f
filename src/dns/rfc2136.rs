//! `dns::Rfc2136`: the provider for any authoritative server that takes RFC 2136 dynamic updates
//! signed with TSIG (BIND, Knot, PowerDNS). Reads and verification query the same server directly,
//! without recursion, so the answer is the zone's own and not a cache's.

use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use hickory_proto::rr::{Name, RecordType as HickoryType, TSigner};

use super::message::{self, absolute_name};
use super::response::{Rcode, check_soa_response, check_update_response};
use super::transport::Server;
use super::{Provider, RecordKey, RecordSet, TsigKey, describe_sets};
use crate::{Error, Result};

/// How long one exchange with the server may take (all UDP attempts, or one TCP exchange).
pub const DEFAULT_EXCHANGE_TIMEOUT: Duration = Duration::from_secs(3);
/// Pause between queries while waiting for the server to serve a new answer.
const VERIFY_POLL: Duration = Duration::from_millis(50);

/// An RFC 2136 provider bound to one server, one zone and one TSIG key.
#[derive(Clone)]
pub struct Rfc2136 {
    server: Server,
    zone: Name,
    key: TsigKey,
    signer: TSigner,
}

impl std::fmt::Debug for Rfc2136 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The signer holds the secret: show the key's (redacting) Debug instead.
        f.debug_struct("Rfc2136")
            .field("server", &self.server)
            .field("zone", &self.zone)
            .field("key", &self.key)
            .finish()
    }
}

impl Rfc2136 {
    /// A provider for `zone` on `server` (`host[:port]`, port 53 by default), signing with `key`.
    pub async fn new(server: &str, zone: &str, key: TsigKey) -> Result<Self> {
        Self::with_timeout(server, zone, key, DEFAULT_EXCHANGE_TIMEOUT).await
    }

    /// Like [`Rfc2136::new`] with another per-exchange timeout.
    pub async fn with_timeout(server: &str, zone: &str, key: TsigKey, timeout: Duration) -> Result<Self> {
        let signer = key.signer()?;
        Ok(Self {
            server: Server::resolve(server, timeout).await?,
            zone: absolute_name(zone)?,
            key,
            signer,
        })
    }

    /// The zone, as an absolute name with a trailing dot.
    pub fn zone(&self) -> String {
        self.zone.to_ascii()
    }

    /// Checks that the server serves the zone: an authoritative SOA answer at the apex.
    pub async fn check_zone(&self) -> Result<()> {
        let response = self
            .server
            .exchange(&message::query(&self.zone, HickoryType::SOA), None)
            .await?;
        check_soa_response(&response, &self.server.label, &self.zone)
    }

    /// Sends a signed update and maps the answer to an error a user can act on. A refused update is
    /// reported as "zone not found" when the server turns out not to serve the zone at all.
    pub(crate) async fn send_update(&self, update: &Message) -> Result<()> {
        let response = self.server.exchange(update, Some(&self.signer)).await?;
        let checked = check_update_response(&response, &self.server.label, &self.zone(), &self.key.name);
        if let Err(Error::DnsUpdateRefused { rcode, .. }) = &checked {
            match self.check_zone().await {
                Err(Error::DnsZoneNotFound {
                    server,
                    zone,
                    rcode: soa_rcode,
                    ..
                }) => {
                    return Err(Error::DnsZoneNotFound {
                        server,
                        zone,
                        rcode: soa_rcode,
                        update_rcode: Some(*rcode),
                    });
                }
                Err(other) => return Err(other),
                Ok(()) => {}
            }
        }
        checked
    }

    /// Queries the server (no recursion) and rejects answers that are not the zone's own.
    async fn query(&self, name: &Name, record_type: HickoryType) -> Result<Message> {
        let response = self
            .server
            .exchange(&message::query(name, record_type), None)
            .await?;
        let rcode = Rcode::from(response.metadata.response_code);
        match rcode.mnemonic() {
            "NOERROR" | "NXDOMAIN" if response.metadata.authoritative => Ok(response),
            "NOERROR" | "NXDOMAIN" | "REFUSED" | "NOTAUTH" => {
                self.check_zone().await?;
                Err(Error::DnsServerError {
                    server: self.server.label.clone(),
                    operation: format!("query {name} {record_type} (answer not authoritative)"),
                    rcode,
                })
            }
            _ => Err(Error::DnsServerError {
                server: self.server.label.clone(),
                operation: format!("query {name} {record_type}"),
                rcode,
            }),
        }
    }

    async fn read_one(&self, key: &RecordKey) -> Result<RecordSet> {
        let name = absolute_name(&key.fqdn)?;
        let response = self.query(&name, key.record_type.to_hickory()).await?;
        message::record_set_from_answer(&response, &key.fqdn, key.record_type)
    }

    /// Refuses to write a record that cannot live beside what is at its name (RFC 1034 §3.6.2): BIND
    /// and others silently ignore such an update, so it is caught here before sending.
    pub async fn check_cname_conflicts(&self, desired: &[RecordSet]) -> Result<()> {
        for set in desired.iter().filter(|set| set.exists()) {
            let response = self.query(&absolute_name(&set.fqdn)?, HickoryType::ANY).await?;
            let existing = message::cname_conflicts(&response, &set.fqdn, set.record_type)?;
            if !existing.is_empty() {
                return Err(Error::DnsCnameConflict {
                    fqdn: set.fqdn.clone(),
                    wanted: set.record_type.to_string(),
                    existing: existing.join(", "),
                });
            }
        }
        Ok(())
    }
}

impl Provider for Rfc2136 {
    fn describe(&self) -> String {
        format!(
            "RFC 2136 server {} zone {} key {}",
            self.server.label, self.zone, self.key.name
        )
    }

    async fn check_credentials(&self) -> Result<()> {
        // A refused probe triggers the zone lookup in `send_update`, so a wrong zone is named as such.
        self.send_update(&message::credentials_probe(&self.zone)).await
    }

    async fn read(&self, keys: &[RecordKey]) -> Result<Vec<RecordSet>> {
        let mut sets = Vec::with_capacity(keys.len());
        for key in keys {
            sets.push(self.read_one(key).await?);
        }
        Ok(sets)
    }

    async fn replace(&self, desired: &[RecordSet]) -> Result<()> {
        let keys: Vec<RecordKey> = desired.iter().map(RecordKey::of).collect();
        let current = self.read(&keys).await?;
        if desired
            .iter()
            .zip(&current)
            .all(|(want, have)| want.is_served_by(have))
        {
            return Ok(());
        }
        self.check_cname_conflicts(desired).await?;
        self.send_update(&message::replace_update(&self.zone, &current, desired)?)
            .await
    }

    async fn verify(&self, desired: &[RecordSet], timeout: Duration) -> Result<Duration> {
        let keys: Vec<RecordKey> = desired.iter().map(RecordKey::of).collect();
        let started = Instant::now();
        loop {
            let served = self.read(&keys).await?;
            if desired
                .iter()
                .zip(&served)
                .all(|(want, have)| want.is_served_by(have))
            {
                return Ok(started.elapsed());
            }
            if started.elapsed() >= timeout {
                return Err(Error::DnsVerifyTimeout {
                    server: self.server.label.clone(),
                    expected: describe_sets(desired),
                    last_seen: describe_sets(&served),
                    waited: started.elapsed(),
                });
            }
            tokio::time::sleep(VERIFY_POLL).await;
        }
    }
}
