//! RFC 2136 failures a user must be able to act on, each against a real BIND9 (or a closed port):
//! wrong secret (BADSIG), unknown key (BADKEY), a zone the server does not serve, a CNAME conflict,
//! and an unreachable server. Each asserts the distinct error and the server's response code.

#[path = "support/dns.rs"]
mod support;

use std::time::{Duration, Instant};

use ferry::Error;
use ferry::dns::{Provider, RecordType, Rfc2136, TsigKey};
use support::{dig, set, start_bind};

#[tokio::test]
async fn a_wrong_secret_is_rejected_with_badsig_and_changes_nothing() {
    let bind = start_bind().await;
    let wrong = bind.key.with_secret(vec![7u8; 32]);
    let dns = Rfc2136::new(&bind.server(), &bind.zone, wrong).await.unwrap();
    let err = dns.check_credentials().await.unwrap_err();
    match &err {
        Error::DnsTsigRejected {
            rcode,
            tsig_error,
            key,
            ..
        } => {
            assert_eq!(
                (rcode.mnemonic(), tsig_error.mnemonic()),
                ("NOTAUTH", "BADSIG"),
                "{err}"
            );
            assert_eq!(key, "ferry-key");
        }
        other => panic!("expected DnsTsigRejected, got {other:?}"),
    }
    println!("wrong secret: {err}");
    let flip = dns
        .replace(&[set("app.example.test", RecordType::A, 60, &["192.0.2.9"])])
        .await;
    assert!(matches!(flip, Err(Error::DnsTsigRejected { .. })), "{flip:?}");
    assert!(dig(&bind, "app.example.test", "A").is_empty());
}

#[tokio::test]
async fn an_unknown_key_name_is_rejected_with_badkey() {
    let bind = start_bind().await;
    let unknown = TsigKey::new("not-a-key", "hmac-sha256", "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0").unwrap();
    let dns = Rfc2136::new(&bind.server(), &bind.zone, unknown).await.unwrap();
    let err = dns.check_credentials().await.unwrap_err();
    assert!(
        matches!(&err, Error::DnsTsigRejected { tsig_error, .. } if tsig_error.mnemonic() == "BADKEY"),
        "{err:?}"
    );
    println!("unknown key: {err}");
}

#[tokio::test]
async fn a_valid_key_without_update_rights_is_refused() {
    let bind = start_bind().await;
    let dns = Rfc2136::new(&bind.server(), &bind.zone, bind.no_update_key.clone())
        .await
        .unwrap();
    let err = dns.check_credentials().await.unwrap_err();
    assert!(
        matches!(&err, Error::DnsUpdateRefused { rcode, .. } if rcode.mnemonic() == "REFUSED"),
        "{err:?}"
    );
    println!("key without update rights: {err}");
    let flip = dns
        .replace(&[set("app.example.test", RecordType::A, 60, &["192.0.2.9"])])
        .await;
    assert!(matches!(flip, Err(Error::DnsUpdateRefused { .. })), "{flip:?}");
    assert!(dig(&bind, "app.example.test", "A").is_empty());
}

#[tokio::test]
async fn a_zone_the_server_does_not_serve_is_reported_as_such() {
    let bind = start_bind().await;
    let dns = Rfc2136::new(&bind.server(), "other.test", bind.key.clone())
        .await
        .unwrap();
    let err = dns.check_credentials().await.unwrap_err();
    match &err {
        Error::DnsZoneNotFound {
            rcode,
            zone,
            update_rcode: Some(update_rcode),
            ..
        } => {
            // The server refused the (prerequisite-only) update, and its SOA lookup says why.
            assert!(
                ["NOTAUTH", "NOTZONE", "REFUSED"].contains(&update_rcode.mnemonic()),
                "{err}"
            );
            assert!(
                ["REFUSED", "NXDOMAIN", "NOTAUTH"].contains(&rcode.mnemonic()),
                "{err}"
            );
            assert_eq!(zone, "other.test.");
        }
        other => panic!("expected DnsZoneNotFound, got {other:?}"),
    }
    println!("unowned zone (check): {err}");
    // A flip reads the record first; the server does not answer for that zone either.
    let flip = dns
        .replace(&[set("app.other.test", RecordType::A, 60, &["192.0.2.9"])])
        .await
        .unwrap_err();
    assert!(matches!(flip, Error::DnsZoneNotFound { .. }), "{flip:?}");
    println!("unowned zone (update): {flip}");
}

#[tokio::test]
async fn a_cname_beside_other_records_is_refused_before_sending() {
    let bind = start_bind().await;
    let dns = bind.provider().await.unwrap();
    dns.replace(&[set("app.example.test", RecordType::A, 300, &["192.0.2.1"])])
        .await
        .unwrap();
    let err = dns
        .replace(&[set(
            "app.example.test",
            RecordType::CNAME,
            60,
            &["lb.example.net"],
        )])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::DnsCnameConflict { existing, .. } if existing == "A"),
        "{err:?}"
    );
    println!("cname conflict: {err}");
    assert_eq!(dig(&bind, "app.example.test", "A"), [(300, "192.0.2.1".into())]);
    assert!(dig(&bind, "app.example.test", "CNAME").is_empty());

    // And the other way round: an A record where a CNAME lives.
    dns.replace(&[set(
        "www.example.test",
        RecordType::CNAME,
        60,
        &["app.example.test"],
    )])
    .await
    .unwrap();
    let err = dns
        .replace(&[set("www.example.test", RecordType::A, 60, &["192.0.2.2"])])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::DnsCnameConflict { existing, .. } if existing == "CNAME"),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_unreachable_server_fails_fast_with_a_clear_error() {
    // A port nobody listens on (bound, then released).
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let key = TsigKey::new("ferry-key", "hmac-sha256", "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0").unwrap();
    let server = format!("127.0.0.1:{port}");
    let dns = Rfc2136::with_timeout(&server, "example.test", key, Duration::from_secs(2))
        .await
        .unwrap();
    let started = Instant::now();
    let err = dns.check_credentials().await.unwrap_err();
    assert!(
        matches!(&err, Error::DnsUnreachable { server: s, .. } if *s == server),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    println!("unreachable ({:?}): {err}", started.elapsed());
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    // A bound UDP socket that nobody reads: datagrams vanish, like a filtered port.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let server = silent.local_addr().unwrap().to_string();
    let key = TsigKey::new("ferry-key", "hmac-sha256", "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0").unwrap();
    let dns = Rfc2136::with_timeout(&server, "example.test", key, Duration::from_millis(900))
        .await
        .unwrap();
    let started = Instant::now();
    let err = dns.check_credentials().await.unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(&err, Error::DnsUnreachable { detail, .. } if detail.contains("no UDP answer")),
        "{err:?}"
    );
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(3),
        "took {took:?}"
    );
    println!("silent server ({took:?}): {err}");
}
