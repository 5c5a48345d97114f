//! Reading a DNS server's answer: response codes with their mnemonics, and the mapping of an UPDATE or
//! SOA answer to the error a user can act on (wrong key, refused, zone not served, record changed).
//! Pure: no I/O here.

use std::fmt;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RecordType as HickoryType};

use crate::{Error, Result};

/// A DNS response code (RCODE, or a TSIG error code), shown with its mnemonic, e.g. `NOTAUTH (9)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rcode(pub u16);

impl Rcode {
    /// The mnemonic of RFC 1035 / 2136 / 8945, e.g. `BADSIG`.
    pub fn mnemonic(self) -> &'static str {
        match self.0 {
            0 => "NOERROR",
            1 => "FORMERR",
            2 => "SERVFAIL",
            3 => "NXDOMAIN",
            4 => "NOTIMP",
            5 => "REFUSED",
            6 => "YXDOMAIN",
            7 => "YXRRSET",
            8 => "NXRRSET",
            9 => "NOTAUTH",
            10 => "NOTZONE",
            16 => "BADSIG",
            17 => "BADKEY",
            18 => "BADTIME",
            22 => "BADTRUNC",
            _ => "UNKNOWN",
        }
    }
}

impl From<ResponseCode> for Rcode {
    fn from(code: ResponseCode) -> Self {
        Self(u16::from(code))
    }
}

impl fmt::Display for Rcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.mnemonic(), self.0)
    }
}

/// Maps an UPDATE response to success or the error a user can act on. TSIG failures come back as
/// NOTAUTH with the TSIG error (BADSIG, BADKEY, BADTIME) in the response's unsigned TSIG record.
pub(crate) fn check_update_response(response: &Message, server: &str, zone: &str, key: &str) -> Result<()> {
    let rcode = Rcode::from(response.metadata.response_code);
    let tsig_error = response
        .signature
        .as_ref()
        .and_then(|tsig| tsig.data.error)
        .map(|e| Rcode(u16::from(e)));
    if let Some(tsig_error) = tsig_error {
        return Err(Error::DnsTsigRejected {
            server: server.into(),
            key: key.into(),
            rcode,
            tsig_error,
        });
    }
    match rcode.mnemonic() {
        "NOERROR" => Ok(()),
        "REFUSED" | "NOTAUTH" | "NOTZONE" => Err(Error::DnsUpdateRefused {
            server: server.into(),
            zone: zone.into(),
            rcode,
        }),
        "YXRRSET" | "NXRRSET" | "YXDOMAIN" | "NXDOMAIN" => Err(Error::DnsRecordChanged {
            server: server.into(),
            zone: zone.into(),
            rcode,
        }),
        _ => Err(Error::DnsServerError {
            server: server.into(),
            operation: "update".into(),
            rcode,
        }),
    }
}

/// Checks an SOA query response for `zone`: the server must answer authoritatively with the zone's
/// SOA at the apex; NXDOMAIN, REFUSED, NOTAUTH or an SOA elsewhere mean it does not serve the zone.
pub(crate) fn check_soa_response(response: &Message, server: &str, zone: &Name) -> Result<()> {
    let rcode = Rcode::from(response.metadata.response_code);
    let not_found = || Error::DnsZoneNotFound {
        server: server.into(),
        zone: zone.to_ascii(),
        rcode,
        update_rcode: None,
    };
    if rcode.0 != 0 || !response.metadata.authoritative {
        return Err(not_found());
    }
    let apex_soa = response
        .answers
        .iter()
        .any(|r| r.record_type() == HickoryType::SOA && r.name == *zone);
    if apex_soa { Ok(()) } else { Err(not_found()) }
}

#[cfg(test)]
mod tests {
    use hickory_proto::op::OpCode;
    use hickory_proto::rr::rdata::tsig::{TSIG, TsigAlgorithm, TsigError, make_tsig_record};

    use super::*;
    use crate::dns::message::absolute_name;

    fn response(code: ResponseCode) -> Message {
        let mut message = Message::error_msg(1, OpCode::Update, code);
        message.metadata.authoritative = true;
        message
    }

    #[test]
    fn response_codes_map_to_actionable_errors() {
        let check = |m: &Message| check_update_response(m, "127.0.0.1:53", "example.test", "k");
        assert!(check(&response(ResponseCode::NoError)).is_ok());
        assert!(matches!(
            check(&response(ResponseCode::Refused)),
            Err(Error::DnsUpdateRefused { .. })
        ));
        assert!(matches!(
            check(&response(ResponseCode::NXRRSet)),
            Err(Error::DnsRecordChanged { .. })
        ));
        assert!(matches!(
            check(&response(ResponseCode::ServFail)),
            Err(Error::DnsServerError { .. })
        ));
        let mut bad_sig = response(ResponseCode::NotAuth);
        let mut tsig = TSIG::new(
            TsigAlgorithm::HmacSha256,
            0,
            300,
            vec![],
            1,
            Some(TsigError::BadSig),
            vec![],
        );
        tsig.error = Some(TsigError::BadSig);
        bad_sig.set_signature(Box::new(make_tsig_record(absolute_name("k").unwrap(), tsig)));
        match check(&bad_sig) {
            Err(Error::DnsTsigRejected {
                rcode, tsig_error, ..
            }) => {
                assert_eq!((rcode.mnemonic(), tsig_error.mnemonic()), ("NOTAUTH", "BADSIG"));
            }
            other => panic!("expected a TSIG rejection, got {other:?}"),
        }
    }

    #[test]
    fn soa_must_be_authoritative_at_the_apex() {
        let zone = absolute_name("example.test").unwrap();
        let refused = response(ResponseCode::Refused);
        assert!(matches!(
            check_soa_response(&refused, "s", &zone),
            Err(Error::DnsZoneNotFound { .. })
        ));
        let empty = response(ResponseCode::NoError);
        assert!(check_soa_response(&empty, "s", &zone).is_err());
        assert_eq!(Rcode(16).to_string(), "BADSIG (16)");
    }
}
