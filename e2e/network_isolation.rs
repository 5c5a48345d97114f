//! The sandbox's network isolation (`e2e/isolated.sh`, docs/sandbox.md "Network isolation"): `make test`
//! runs every test in a network namespace where only loopback exists, so an address outside the sandbox
//! (a ClusterIP nothing routes, a real host) fails at once with ENETUNREACH instead of leaving through
//! the machine's default route and meeting whatever answers there.
//!
//! No test here sends a packet off loopback unless the routing tables show that nothing can leave:
//! [`leaks`] is checked first, and any finding fails the test before a connection is attempted.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

/// Addresses that must be unreachable: the `kubernetes` Service's ClusterIP in the sandbox's control
/// planes (the address of the bug that made this file), TEST-NET-1 and IPv6's documentation prefix.
const OUTSIDE: [&str; 3] = ["10.96.0.1:443", "192.0.2.1:80", "[2001:db8::1]:443"];

/// Well under a second: an unroutable address is refused by the kernel, not timed out.
const AT_ONCE: Duration = Duration::from_millis(500);

/// Whether to check the isolation: yes under `make test` (`FERRY_ISOLATED=1`, set by `e2e/isolated.sh`);
/// no, with a note, under `FERRY_ALLOW_NETWORK=1`; otherwise the run is refused.
fn isolated() -> bool {
    if std::env::var("FERRY_ISOLATED").as_deref() == Ok("1") {
        return true;
    }
    if std::env::var("FERRY_ALLOW_NETWORK").as_deref() == Ok("1") {
        eprintln!("FERRY_ALLOW_NETWORK=1 and not isolated: the network isolation is not checked");
        return false;
    }
    panic!(
        "the sandbox tests must run without a route off this machine: run them through `make test` \
         (or `e2e/isolated.sh cargo test ...`); FERRY_ALLOW_NETWORK=1 skips this check (unsafe)"
    );
}

/// What could carry a packet off loopback: interfaces other than `lo`, any IPv4 route in the main table
/// (loopback's are in the local table), IPv6 routes off `lo` and a usable IPv6 default route (the
/// kernel's own `::/0` carries RTF_REJECT). Read from `/proc/net`, which shows this process's namespace.
fn leaks() -> Vec<String> {
    let read =
        |path: &str| std::fs::read_to_string(path).unwrap_or_else(|err| panic!("reading {path}: {err}"));
    let mut found = Vec::new();
    for line in read("/proc/net/dev").lines().skip(2) {
        let name = line.split(':').next().unwrap_or_default().trim();
        if name != "lo" {
            found.push(format!("interface {name}"));
        }
    }
    for line in read("/proc/net/route").lines().skip(1) {
        // Iface, Destination, Gateway (hex, little-endian).
        let fields: Vec<&str> = line.split_whitespace().collect();
        found.push(format!("IPv4 route {}", fields[..fields.len().min(3)].join(" ")));
    }
    const RTF_REJECT: u32 = 0x0200;
    let ipv6_routes = if ipv6() {
        read("/proc/net/ipv6_route")
    } else {
        String::new()
    };
    for line in ipv6_routes.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [destination, length, .., flags, device] = fields[..] else {
            found.push(format!("unreadable IPv6 route {line:?}"));
            continue;
        };
        let flags = u32::from_str_radix(flags, 16).unwrap_or(0);
        let default = destination.bytes().all(|b| b == b'0') && length == "00";
        if device != "lo" || (default && flags & RTF_REJECT == 0) {
            found.push(format!("IPv6 route {destination}/{length} on {device}"));
        }
    }
    found
}

/// Whether this kernel has IPv6 (without it, there is neither an IPv6 route nor `::1`).
fn ipv6() -> bool {
    std::path::Path::new("/proc/net/ipv6_route").exists()
}

/// Whether `lo` has `::1` (it may be disabled by sysctl even where the kernel has IPv6).
fn ipv6_loopback() -> bool {
    std::fs::read_to_string("/proc/net/if_inet6").is_ok_and(|text| {
        text.lines()
            .any(|line| line.starts_with("00000000000000000000000000000001"))
    })
}

/// Fails (before any connection is attempted) unless nothing can leave loopback.
fn assert_nothing_leaves() {
    let leaks = leaks();
    assert!(
        leaks.is_empty(),
        "FERRY_ISOLATED=1 but this network namespace can reach beyond loopback, so no connection is \
         attempted: {}",
        leaks.join("; ")
    );
}

#[test]
fn only_loopback_is_routable() {
    if isolated() {
        assert_nothing_leaves();
    }
}

#[test]
fn addresses_outside_fail_at_once_with_network_unreachable() {
    if !isolated() {
        return;
    }
    assert_nothing_leaves();
    for address in OUTSIDE {
        let address: SocketAddr = address.parse().unwrap();
        if address.is_ipv6() && !ipv6() {
            continue;
        }
        let started = Instant::now();
        let err = TcpStream::connect_timeout(&address, Duration::from_secs(5))
            .expect_err(&format!("TCP to {address} connected"));
        let took = started.elapsed();
        assert_eq!(
            err.kind(),
            ErrorKind::NetworkUnreachable,
            "TCP to {address}: {err}"
        );
        assert!(took < AT_ONCE, "TCP to {address} took {took:?} to fail");
    }
    // DNS flips and cluster DNS go over UDP: the send itself is refused.
    let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
    let err = socket
        .send_to(b"ferry", "10.96.0.10:53")
        .expect_err("UDP to 10.96.0.10:53 was sent");
    assert_eq!(
        err.kind(),
        ErrorKind::NetworkUnreachable,
        "UDP to 10.96.0.10:53: {err}"
    );
}

#[test]
fn loopback_still_works() {
    let binds = if ipv6_loopback() {
        &["127.0.0.1:0", "[::1]:0"][..]
    } else {
        &["127.0.0.1:0"]
    };
    for bind in binds {
        let listener = TcpListener::bind(bind).unwrap();
        let address = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut byte = [0];
            stream.read_exact(&mut byte).unwrap();
            stream.write_all(&byte).unwrap();
        });
        let mut client = TcpStream::connect_timeout(&address, Duration::from_secs(5)).unwrap();
        client.write_all(b"f").unwrap();
        let mut echo = [0];
        client.read_exact(&mut echo).unwrap();
        assert_eq!(&echo, b"f", "echo over {address}");
        server.join().unwrap();
    }
}

/// The bug this guards against, end to end: a sender given a ClusterIP fails in its first attempt with
/// the cause in its error, instead of a TLS failure from whatever answered outside.
#[test]
fn a_mover_dialling_a_cluster_ip_fails_at_once() {
    if !isolated() {
        return;
    }
    assert_nothing_leaves();
    let dir = tempfile::tempdir().unwrap();
    let certs = ferry::mover::issue("isolation", &["10.96.0.1".to_string()]).unwrap();
    certs.write_client_dir(&dir.path().join("client")).unwrap();
    std::fs::create_dir(dir.path().join("source")).unwrap();
    std::fs::write(dir.path().join("source/file"), "data").unwrap();
    let started = Instant::now();
    let output = Command::new(FERRY)
        .args([
            "mover",
            "send",
            "--connect",
            "10.96.0.1:443",
            "--retries",
            "0",
            "--certs-dir",
        ])
        .arg(dir.path().join("client"))
        .arg("--source")
        .arg(dir.path().join("source"))
        .output()
        .unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "the sender succeeded: {stderr}");
    assert!(
        stderr.contains("connecting to receiver 10.96.0.1:443: Network is unreachable"),
        "the sender's error does not name the cause: {stderr}"
    );
    assert!(took < Duration::from_secs(5), "the sender took {took:?} to fail");
}
