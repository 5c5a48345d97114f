//! The RFC 2136 provider against a real BIND9: flip, verify (timed), restore, TTL lowering and
//! restoring, CNAME and AAAA records, and an hmac-sha512 key. `dig` checks what the server serves.

#[path = "support/dns.rs"]
mod support;

use std::time::{Duration, Instant};

use ferry::dns::{
    DnsSpec, Provider, RecordKey, RecordType, TargetSource, TsigAlgorithm, desired_record_set, lower_ttl,
};
use ferry_sandbox::bind::Bind;
use support::{dig, set, start_bind};

const VERIFY_TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn flip_verify_and_restore_an_a_record() {
    let bind = start_bind().await;
    let dns = bind.provider().await.unwrap();
    let original = set("app.example.test", RecordType::A, 300, &["192.0.2.1"]);
    dns.replace(std::slice::from_ref(&original)).await.unwrap();
    assert_eq!(dig(&bind, "app.example.test", "A"), [(300, "192.0.2.1".into())]);

    // Cutover: record, flip, verify.
    let keys = [RecordKey::of(&original)];
    let recorded = dns.read(&keys).await.unwrap();
    assert_eq!(recorded, std::slice::from_ref(&original));
    let target = set(
        "app.example.test",
        RecordType::A,
        60,
        &["198.51.100.7", "198.51.100.8"],
    );
    let sent = Instant::now();
    dns.replace(std::slice::from_ref(&target)).await.unwrap();
    let replaced = sent.elapsed();
    let verify_took = dns
        .verify(std::slice::from_ref(&target), VERIFY_TIMEOUT)
        .await
        .unwrap();
    println!(
        "update-to-verified (A flip, BIND {}): replace {:.1} ms + verify {:.1} ms = {:.1} ms",
        bind.server(),
        replaced.as_secs_f64() * 1000.0,
        verify_took.as_secs_f64() * 1000.0,
        sent.elapsed().as_secs_f64() * 1000.0
    );
    assert_eq!(
        dig(&bind, "app.example.test", "A"),
        [(60, "198.51.100.7".into()), (60, "198.51.100.8".into())]
    );

    // Rollback: restore the recorded set exactly (values and TTL).
    dns.restore(&recorded).await.unwrap();
    dns.verify(&recorded, VERIFY_TIMEOUT).await.unwrap();
    assert_eq!(dig(&bind, "app.example.test", "A"), [(300, "192.0.2.1".into())]);
}

#[tokio::test]
async fn a_record_that_did_not_exist_is_created_and_rollback_deletes_it() {
    let bind = start_bind().await;
    let dns = bind.provider().await.unwrap();
    let keys = [RecordKey {
        fqdn: "new.example.test".into(),
        record_type: RecordType::AAAA,
    }];
    let recorded = dns.read(&keys).await.unwrap();
    assert!(!recorded[0].exists());
    let target = set("new.example.test", RecordType::AAAA, 120, &["2001:db8::42"]);
    dns.replace(std::slice::from_ref(&target)).await.unwrap();
    dns.verify(std::slice::from_ref(&target), VERIFY_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(
        dig(&bind, "new.example.test", "AAAA"),
        [(120, "2001:db8::42".into())]
    );
    dns.restore(&recorded).await.unwrap();
    dns.verify(&recorded, VERIFY_TIMEOUT).await.unwrap();
    assert!(dig(&bind, "new.example.test", "AAAA").is_empty());
}

#[tokio::test]
async fn ttl_is_lowered_before_cutover_and_put_back_by_restore() {
    let bind = start_bind().await;
    let dns = bind.provider().await.unwrap();
    let original = [
        set("app.example.test", RecordType::A, 3600, &["192.0.2.1"]),
        set("www.example.test", RecordType::CNAME, 1800, &["app.example.test"]),
    ];
    dns.replace(&original).await.unwrap();
    let keys: Vec<RecordKey> = original.iter().map(RecordKey::of).collect();

    let recorded = lower_ttl(&dns, &keys, 30).await.unwrap();
    assert_eq!(recorded, original);
    let lowered: Vec<_> = original.iter().map(|s| s.with_ttl(30)).collect();
    dns.verify(&lowered, VERIFY_TIMEOUT).await.unwrap();
    assert_eq!(dig(&bind, "app.example.test", "A"), [(30, "192.0.2.1".into())]);
    assert_eq!(
        dig(&bind, "www.example.test", "CNAME"),
        [(30, "app.example.test.".into())]
    );

    // Lowering again is a no-op (idempotent replay after a crash).
    let again = lower_ttl(&dns, &keys, 30).await.unwrap();
    assert_eq!(again, lowered);

    dns.restore(&recorded).await.unwrap();
    dns.verify(&recorded, VERIFY_TIMEOUT).await.unwrap();
    assert_eq!(dig(&bind, "app.example.test", "A"), [(3600, "192.0.2.1".into())]);
    assert_eq!(
        dig(&bind, "www.example.test", "CNAME"),
        [(1800, "app.example.test.".into())]
    );
}

#[tokio::test]
async fn cname_flip_and_an_hmac_sha512_key() {
    let dir = tempfile::tempdir().unwrap();
    let bind = Bind::start_with_algorithm(dir.path(), support::ZONE, TsigAlgorithm::HmacSha512)
        .await
        .unwrap();
    let dns = bind.provider().await.unwrap();
    dns.check_credentials().await.unwrap();
    let before = set(
        "www.example.test",
        RecordType::CNAME,
        300,
        &["old-lb.example.net"],
    );
    let after = set("www.example.test", RecordType::CNAME, 60, &["new-lb.example.net"]);
    dns.replace(std::slice::from_ref(&before)).await.unwrap();
    let sent = Instant::now();
    dns.replace(std::slice::from_ref(&after)).await.unwrap();
    dns.verify(std::slice::from_ref(&after), VERIFY_TIMEOUT)
        .await
        .unwrap();
    println!(
        "update-to-verified (CNAME flip, hmac-sha512): {:.1} ms",
        sent.elapsed().as_secs_f64() * 1000.0
    );
    assert_eq!(
        dig(&bind, "www.example.test", "CNAME"),
        [(60, "new-lb.example.net.".into())]
    );
}

#[tokio::test]
async fn many_values_force_tcp_and_still_flip() {
    // 100 A records: the update (~1.9 KB) exceeds 512 bytes so it goes over TCP, and the answer (~1.6 KB)
    // exceeds the 1232-byte EDNS buffer so UDP answers are truncated and reads fall back to TCP.
    let bind = start_bind().await;
    let dns = bind.provider().await.unwrap();
    let values: Vec<String> = (1..=100).map(|i| format!("198.51.100.{i}")).collect();
    let big = ferry::dns::RecordSet::new("big.example.test", RecordType::A, 60, &values).unwrap();
    dns.replace(std::slice::from_ref(&big)).await.unwrap();
    dns.verify(std::slice::from_ref(&big), VERIFY_TIMEOUT)
        .await
        .unwrap();
    let read = dns.read(&[RecordKey::of(&big)]).await.unwrap();
    assert_eq!(read[0].values.len(), 100);
    // Witness: the same question over UDP with a 1232-byte buffer is answered truncated (flag tc).
    let udp = std::process::Command::new("dig")
        .args([
            "@127.0.0.1",
            "-p",
            &bind.addr.port().to_string(),
            "+norec",
            "+notcp",
            "+ignore",
        ])
        .args(["+bufsize=1232", "big.example.test", "A"])
        .output()
        .unwrap();
    let udp = String::from_utf8_lossy(&udp.stdout);
    assert!(udp.contains(" tc"), "expected a truncated UDP answer: {udp}");
    assert_eq!(dig(&bind, "big.example.test", "A").len(), 100);
}

#[tokio::test]
async fn cutover_sequence_from_a_spec_lowers_flips_restores_ttl_and_rolls_back() {
    let bind = start_bind().await;
    let dns = bind.provider().await.unwrap();
    dns.replace(&[set("app.example.test", RecordType::A, 3600, &["192.0.2.1"])])
        .await
        .unwrap();
    let spec: DnsSpec = serde_json::from_value(serde_json::json!({
        "records": [{"fqdn": "app.example.test", "type": "A", "value": "198.51.100.7"}],
        "rfc2136": {"server": bind.server(), "zone": "example.test",
                    "tsigSecretRef": {"name": "unused-here", "namespace": "ferry"}},
        "preCutoverTTL": 30
    }))
    .unwrap();

    // Ahead of cutover: lower the TTL, keep what was there.
    let recorded = lower_ttl(&dns, &RecordKey::of_spec(&spec), spec.pre_cutover_ttl.unwrap())
        .await
        .unwrap();
    assert_eq!(dig(&bind, "app.example.test", "A"), [(30, "192.0.2.1".into())]);

    // Flip: no ttl in the spec, so the recorded (pre-lowering) TTL comes back with the new value.
    let desired: Vec<_> = spec
        .records
        .iter()
        .zip(&recorded)
        .map(|(record, recorded)| {
            let TargetSource::Literal(values) = record.target_source().unwrap() else {
                unreachable!()
            };
            desired_record_set(record, &values, Some(recorded)).unwrap()
        })
        .collect();
    let sent = Instant::now();
    dns.replace(&desired).await.unwrap();
    let replaced = sent.elapsed();
    let verify_took = dns.verify(&desired, VERIFY_TIMEOUT).await.unwrap();
    println!(
        "update-to-verified (spec flip): replace {:.1} ms + verify {:.1} ms = {:.1} ms",
        replaced.as_secs_f64() * 1000.0,
        verify_took.as_secs_f64() * 1000.0,
        sent.elapsed().as_secs_f64() * 1000.0
    );
    assert_eq!(
        dig(&bind, "app.example.test", "A"),
        [(3600, "198.51.100.7".into())]
    );

    // Rollback.
    dns.restore(&recorded).await.unwrap();
    dns.verify(&recorded, VERIFY_TIMEOUT).await.unwrap();
    assert_eq!(dig(&bind, "app.example.test", "A"), [(3600, "192.0.2.1".into())]);
}
