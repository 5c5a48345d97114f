//! The receiver's guarantees, tested with the real binary and real rsync: only a client certificate from
//! the migration CA gets in; nothing is written outside the volume root, whatever paths, symlinks or
//! remote commands the client tries; the command the receiver runs is its own. `mover_privileges.rs`
//! (a module of this binary): who the movers run as, their capabilities, and their scratch files.

#[path = "mover_privileges.rs"]
mod privileges;
#[path = "support/mover.rs"]
mod support;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;

use support::*;

fn is_empty(dir: &Path) -> bool {
    fs::read_dir(dir).unwrap().next().is_none()
}

#[test]
fn client_certificate_from_another_ca_is_rejected() {
    let migration = CertDirs::issue("migration-a");
    let intruder = CertDirs::issue("migration-b");
    let work = tempfile::tempdir().unwrap();
    let (source, target) = (work.path().join("source"), work.path().join("target"));
    fs::create_dir_all(&source).unwrap();
    fs::create_dir_all(&target).unwrap();
    fs::write(source.join("file"), "data").unwrap();
    let receiver = Receiver::start(&target, &migration.server(), &[]);

    // Another migration's client: its CA is not trusted by this receiver (nor is its server by it).
    let output = send(
        &receiver.address,
        &intruder.client(),
        &source,
        &["--retries", "0"],
    );
    assert!(!output.status.success(), "foreign client accepted");
    assert!(is_empty(&target), "foreign client wrote data");

    // A client holding the right CA but the other migration's key pair: still rejected by the receiver.
    let mixed = work.path().join("mixed");
    fs::create_dir_all(&mixed).unwrap();
    fs::copy(migration.client().join("ca.crt"), mixed.join("ca.crt")).unwrap();
    fs::copy(intruder.client().join("tls.crt"), mixed.join("tls.crt")).unwrap();
    fs::copy(intruder.client().join("tls.key"), mixed.join("tls.key")).unwrap();
    let output = send(&receiver.address, &mixed, &source, &["--retries", "0"]);
    assert!(
        !output.status.success(),
        "client with a foreign certificate accepted"
    );
    assert!(is_empty(&target), "foreign certificate wrote data");

    // The legitimate client still gets through, so the rejections above were about the certificate.
    let output = send(&receiver.address, &migration.client(), &source, &[]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(fs::read_to_string(target.join("file")).unwrap(), "data");
}

#[test]
fn symlinks_pointing_outside_never_lead_writes_outside() {
    let certs = CertDirs::issue("symlinks");
    let work = tempfile::tempdir().unwrap();
    let (source, target, outside) = (
        work.path().join("source"),
        work.path().join("target"),
        work.path().join("outside"),
    );
    for dir in [&source, &target, &outside] {
        fs::create_dir_all(dir).unwrap();
    }
    symlink(&outside, source.join("escape")).unwrap();
    symlink("../outside", source.join("escape-relative")).unwrap();
    let receiver = Receiver::start(&target, &certs.server(), &[]);
    let first = send(&receiver.address, &certs.client(), &source, &[]);
    assert!(first.status.success(), "{first:?}");
    assert_eq!(
        fs::read_link(target.join("escape")).unwrap(),
        outside,
        "symlink not kept verbatim"
    );

    // Now the source has real folders where the symlinks were: the target must replace the links,
    // not write through them.
    for name in ["escape", "escape-relative"] {
        fs::remove_file(source.join(name)).unwrap();
        fs::create_dir(source.join(name)).unwrap();
        fs::write(source.join(name).join("planted"), "should stay inside").unwrap();
    }
    backdate(&source, "1600000000.5");
    let second = send(&receiver.address, &certs.client(), &source, &[]);
    assert!(second.status.success(), "{second:?}");
    assert!(is_empty(&outside), "a write escaped through a symlink");
    assert!(target.join("escape/planted").is_file());
    assert_same_tree(&source, &target);
}

#[test]
fn client_chosen_paths_and_commands_stay_inside_the_root() {
    let certs = CertDirs::issue("paths");
    let work = tempfile::tempdir().unwrap();
    let (source, target, outside) = (
        work.path().join("source"),
        work.path().join("target"),
        work.path().join("outside"),
    );
    for dir in [&source, &target, &outside] {
        fs::create_dir_all(dir).unwrap();
    }
    fs::write(source.join("payload"), "x").unwrap();
    let receiver = Receiver::start(&target, &certs.server(), &[]);
    let pwned = outside.join("pwned");
    let outside_text = outside.to_str().unwrap();
    let attempts: Vec<Vec<String>> = vec![
        // `..` in the destination path.
        vec!["ferry-receiver::ferry/../outside/".into()],
        vec!["ferry-receiver::ferry/../../../../../../..".to_string() + outside_text + "/"],
        // An absolute path inside the module.
        vec![format!("ferry-receiver::ferry/{outside_text}/")],
        // A client-chosen remote command: the tunnel ignores it and the receiver runs its own.
        vec![
            format!("--rsync-path=touch {} && rsync", pwned.display()),
            "ferry-receiver::ferry/from-rsync-path/".into(),
        ],
    ];
    for extra in attempts {
        let mut command = Command::new("rsync");
        command
            .args(["-a", "--rsh", &format!("{FERRY} mover tunnel")])
            .args(&extra[..extra.len() - 1])
            .arg(format!("{}/", source.display()))
            .arg(&extra[extra.len() - 1])
            .env("FERRY_MOVER_CONNECT", &receiver.address)
            .env("FERRY_MOVER_CERTS_DIR", certs.client());
        let output = command.output().unwrap();
        eprintln!(
            "{extra:?}: {:?} {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(is_empty(&outside), "{extra:?} wrote outside the root");
    }
    assert!(!pwned.exists());
    // The last attempt did transfer, proving the connection worked and only the command was ignored.
    assert!(target.join("from-rsync-path/payload").is_file());
    // Whatever landed from the `..` and absolute attempts is below the root.
    let inside = snapshot(&target, &[]);
    assert!(inside.keys().all(|path| !path.contains("..")));
}
