//! `ferry dns check` (the real binary) against a real BIND9: it shows current → target, reports the key
//! accepted or rejected, flags a CNAME conflict with exit code 3, and changes nothing (checked with dig).

#[path = "support/dns.rs"]
mod support;

use std::process::Output;

use base64::Engine;
use ferry::dns::{Provider, RecordType};
use support::{dig, set, start_bind};

fn ferry(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"));
    command.args(args);
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("run ferry")
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into(),
        String::from_utf8_lossy(&output.stderr).into(),
    )
}

#[tokio::test]
async fn check_shows_the_change_accepts_the_key_and_changes_nothing() {
    let bind = start_bind().await;
    let dns = bind.provider().await.unwrap();
    dns.replace(&[set("app.example.test", RecordType::A, 300, &["192.0.2.1"])])
        .await
        .unwrap();
    let key_file = bind.dir.join("ferry-key.conf");
    std::fs::write(&key_file, bind.key.to_bind_statement()).unwrap();
    let server = bind.server();

    let output = ferry(
        &[
            "dns",
            "check",
            "--server",
            &server,
            "--zone",
            "example.test",
            "--key-file",
            key_file.to_str().unwrap(),
            "--record",
            "app.example.test=A:198.51.100.7:60",
            "--record",
            "www.example.test=CNAME:lb.example.net:60",
        ],
        &[],
    );
    let (stdout, stderr) = text(&output);
    println!("{stdout}{stderr}");
    assert!(output.status.success(), "exit {:?}: {stderr}", output.status);
    assert!(
        stdout.contains("app.example.test. A: 300 [192.0.2.1] → 60 [198.51.100.7]  [change]"),
        "{stdout}"
    );
    assert!(
        stdout.contains("www.example.test. CNAME: (absent) → 60 [lb.example.net.]  [change]"),
        "{stdout}"
    );
    assert!(stdout.contains("credentials: accepted"), "{stdout}");

    // Nothing changed on the server.
    assert_eq!(dig(&bind, "app.example.test", "A"), [(300, "192.0.2.1".into())]);
    assert!(dig(&bind, "www.example.test", "CNAME").is_empty());
}

#[tokio::test]
async fn check_reports_a_rejected_key_and_a_conflict() {
    let bind = start_bind().await;
    let dns = bind.provider().await.unwrap();
    dns.replace(&[set("app.example.test", RecordType::A, 300, &["192.0.2.1"])])
        .await
        .unwrap();
    let server = bind.server();
    let wrong_secret = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);

    let rejected = ferry(
        &[
            "dns",
            "check",
            "--server",
            &server,
            "--zone",
            "example.test",
            "--key-name",
            "ferry-key",
            "--secret-env",
            "FERRY_TEST_TSIG",
            "--record",
            "app.example.test=A:198.51.100.7:60",
        ],
        &[("FERRY_TEST_TSIG", &wrong_secret)],
    );
    let (stdout, stderr) = text(&rejected);
    println!("{stdout}{stderr}");
    assert_eq!(rejected.status.code(), Some(1));
    assert!(
        stderr.contains("BADSIG") && stderr.lines().count() == 1,
        "{stderr}"
    );
    assert!(!stderr.contains(&wrong_secret) && !stdout.contains(&wrong_secret));

    let key_file = bind.dir.join("ferry-key.conf");
    std::fs::write(&key_file, bind.key.to_bind_statement()).unwrap();
    let conflict = ferry(
        &[
            "dns",
            "check",
            "--server",
            &server,
            "--zone",
            "example.test",
            "--key-file",
            key_file.to_str().unwrap(),
            "--record",
            "app.example.test=CNAME:lb.example.net:60",
        ],
        &[],
    );
    let (stdout, stderr) = text(&conflict);
    println!("{stdout}{stderr}");
    assert_eq!(conflict.status.code(), Some(3), "{stderr}");
    assert!(
        stdout.contains("would fail") && stdout.contains("CNAME"),
        "{stdout}"
    );
    assert_eq!(dig(&bind, "app.example.test", "A"), [(300, "192.0.2.1".into())]);
}
