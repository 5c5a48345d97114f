//! e2e: two sandbox clusters, each with a REAL node (kubelet, containerd + runc, CNI bridge, kube-proxy
//! in iptables mode, in a network namespace of its own; docs/sandbox.md, "Real nodes"). In cluster A a
//! pod running as uid 999 writes a 0700 directory onto a PVC that the hostPath provisioner binds; in
//! cluster B an HTTP server behind a LoadBalancer Service answers a pod of cluster A at B's node address
//! (its NodePort) and at the address the sandbox's load-balancer stand-in gave it,
//! while B's pod IP and ClusterIP stay unreachable from A (bounded connects that must fail); the pods'
//! logs come through the API server from the kubelets. Needs root (namespaces, cgroups, mounts).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ferry_sandbox::node::PAUSE_IMAGE;
use ferry_sandbox::{Addressing, ControlPlane, RealNode, RealNodeOptions, apply_yaml};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod, Service};
use kube::api::LogParams;
use kube::{Api, Client};

const APP_IMAGE: &str = "localhost/ferry-sandbox/app:1";
/// The controller/mover image, built from the Dockerfile's definition around this build's `ferry`.
const FERRY_IMAGE: &str = "localhost/ferry:e2e";
const FERRY: &str = env!("CARGO_BIN_EXE_ferry");
const MOVER_PORT: u16 = 30443;
const NODE_PORT: u16 = 30080;
const WAIT: Duration = Duration::from_secs(90);

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1).map(|uid| uid == "0"))
        .unwrap_or(false)
}

/// Builds the pause, app and ferry images with `e2e/images/build.sh` into `dir`.
fn build_images(dir: &Path) -> Vec<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/images/build.sh");
    let mut images = Vec::new();
    for (kind, name) in [("pause", PAUSE_IMAGE), ("app", APP_IMAGE), ("ferry", FERRY_IMAGE)] {
        let out = dir.join(format!("{kind}.tar"));
        let mut command = Command::new(&script);
        command.arg(kind);
        if kind == "ferry" {
            command.arg(FERRY);
        }
        let status = command.args([out.to_str().unwrap(), name]).status().unwrap();
        assert!(status.success(), "building the {kind} image failed");
        images.push(out);
    }
    images
}

async fn cluster(n: u8, dir: &Path, images: &[PathBuf]) -> (ControlPlane, RealNode, Client) {
    let addressing = Addressing::new(n).unwrap();
    let name = format!("cluster-{n}");
    let cp_dir = dir.join(format!("cp{n}"));
    let cp = ControlPlane::start_with_args(
        &name,
        &cp_dir,
        &addressing.control_plane_args(&dir.join(format!("vol{n}"))),
    )
    .unwrap();
    let node = RealNode::start(
        &cp,
        &dir.join(format!("node{n}")),
        RealNodeOptions {
            name: format!("node-{n}"),
            addressing,
            images: images.to_vec(),
        },
    )
    .await
    .unwrap_or_else(|err| panic!("node of cluster {n}: {err}"));
    let client = cp.client().await.unwrap();
    (cp, node, client)
}

/// Waits until pod `name` (namespace default) is in one of `phases`; returns it.
async fn wait_phase(client: &Client, name: &str, phases: &[&str]) -> Pod {
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let deadline = Instant::now() + WAIT;
    loop {
        let found = pods.get(name).await.ok();
        if let Some(pod) = &found {
            let phase = pod
                .status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_default();
            if phases.contains(&phase.as_str()) {
                return pod.clone();
            }
        }
        let status = found
            .and_then(|p| p.status)
            .map(|s| serde_json::to_string(&s).unwrap());
        assert!(
            Instant::now() < deadline,
            "pod {name} not {phases:?} within {WAIT:?}: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn logs(client: &Client, name: &str) -> String {
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    pods.logs(name, &LogParams::default()).await.unwrap()
}

fn writer_yaml() -> String {
    format!(
        r#"apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: data}}
spec: {{accessModes: [ReadWriteOnce], resources: {{requests: {{storage: 1Gi}}}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: writer}}
spec:
  restartPolicy: Never
  securityContext: {{runAsUser: 999, runAsGroup: 999}}
  containers:
  - name: writer
    image: {APP_IMAGE}
    imagePullPolicy: Never
    command: [sh, -c, 'mkdir -m 0700 /data/app && echo state > /data/app/file && id -u && ls -ldn /data/app']
    volumeMounts: [{{name: data, mountPath: /data}}]
  volumes: [{{name: data, persistentVolumeClaim: {{claimName: data}}}}]
"#
    )
}

fn server_yaml() -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: server, labels: {{app: server}}}}
spec:
  securityContext: {{runAsUser: 999, runAsGroup: 999}}
  containers:
  - name: httpd
    image: {APP_IMAGE}
    imagePullPolicy: Never
    command: [sh, -c, 'mkdir -p /tmp/www && echo pong-from-b > /tmp/www/index.html && exec httpd -f -v -p 8080 -h /tmp/www']
    ports: [{{containerPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: server}}
spec:
  type: LoadBalancer
  selector: {{app: server}}
  ports: [{{port: 80, targetPort: 8080, nodePort: {NODE_PORT}}}]
"#
    )
}

/// The address the load-balancer stand-in gave Service `name`.
async fn wait_load_balancer_ip(client: &Client, name: &str) -> String {
    let services: Api<Service> = Api::default_namespaced(client.clone());
    let deadline = Instant::now() + WAIT;
    loop {
        let service = services.get(name).await.unwrap();
        let ip = (|| service.status?.load_balancer?.ingress?.first()?.ip.clone())();
        if let Some(ip) = ip {
            return ip;
        }
        assert!(
            Instant::now() < deadline,
            "Service {name} got no load-balancer address"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A pod of cluster A that sends an HTTP request to B's NodePort, pod IP and ClusterIP, each connect
/// bounded by 3 s (`nc -w 3`).
fn client_yaml(node: Ipv4Addr, lb_ip: &str, pod_ip: &str, cluster_ip: &str) -> String {
    // busybox nc, not wget: Debian's static busybox wget crashes (SIGSEGV) even on the host.
    let probe = |label: &str, target: String| {
        format!(
            "out=$(printf \"GET / HTTP/1.0\\r\\n\\r\\n\" | nc -w 3 {target} 2>&1); \
             case $out in *pong-from-b*) echo \"{label} reached: pong-from-b\";; \
             *) echo \"{label} unreachable: $out\";; esac; "
        )
    };
    let script = [
        probe("nodeport", format!("{node} {NODE_PORT}")),
        probe("load-balancer", format!("{lb_ip} 80")),
        probe("pod-ip", format!("{pod_ip} 8080")),
        probe("cluster-ip", format!("{cluster_ip} 80")),
    ]
    .concat();
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: client}}
spec:
  restartPolicy: Never
  securityContext: {{runAsUser: 999, runAsGroup: 999}}
  containers:
  - name: client
    image: {APP_IMAGE}
    imagePullPolicy: Never
    command: [sh, -c, '{script}']
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clusters_with_real_nodes() {
    if !is_root() {
        eprintln!("skipped: real nodes need root (network namespaces, cgroups, mounts)");
        return;
    }
    if std::env::var("FERRY_ISOLATED").as_deref() != Ok("1") {
        panic!(
            "run this inside e2e/isolated.sh: the nodes' links and routes must stay in the sandbox's namespace"
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let images = build_images(tmp.path());
    let (_cp_a, node_a, a) = cluster(1, tmp.path(), &images).await;
    let (_cp_b, node_b, b) = cluster(2, tmp.path(), &images).await;

    // A: a uid-999 pod writes a 0700 directory onto a dynamically provisioned PVC.
    apply_yaml(&a, &writer_yaml(), "default").await.unwrap();
    let pod = wait_phase(&a, "writer", &["Succeeded", "Failed"]).await;
    let out = logs(&a, "writer").await;
    assert_eq!(
        pod.status.unwrap().phase.as_deref(),
        Some("Succeeded"),
        "writer: {out}"
    );
    assert!(
        out.starts_with("999\ndrwx------ "),
        "writer's log (through the API server and kubelet): {out}"
    );
    let pvc = Api::<PersistentVolumeClaim>::default_namespaced(a.clone())
        .get("data")
        .await
        .unwrap();
    assert_eq!(pvc.status.unwrap().phase.as_deref(), Some("Bound"));
    let pv = Api::<PersistentVolume>::all(a.clone())
        .get(pvc.spec.unwrap().volume_name.as_deref().unwrap())
        .await
        .unwrap();
    let host_dir = PathBuf::from(pv.spec.unwrap().host_path.unwrap().path).join("app");
    let meta = std::fs::metadata(&host_dir).unwrap();
    use std::os::unix::fs::MetadataExt as _;
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (999, 999, 0o700),
        "{}",
        host_dir.display()
    );

    // B: an HTTP server behind a LoadBalancer Service (so also a NodePort).
    apply_yaml(&b, &server_yaml(), "default").await.unwrap();
    let server = wait_phase(&b, "server", &["Running"]).await;
    let pod_ip = server.status.unwrap().pod_ip.unwrap();
    assert!(
        pod_ip.starts_with("10.201.2."),
        "B's pod IP {pod_ip} is in B's pod range"
    );
    let service = Api::<Service>::default_namespaced(b.clone())
        .get("server")
        .await
        .unwrap();
    let cluster_ip = service.spec.unwrap().cluster_ip.unwrap();
    assert!(
        cluster_ip.starts_with("10.202.2."),
        "B's ClusterIP {cluster_ip} is in B's Service range"
    );
    let lb_ip = wait_load_balancer_ip(&b, "server").await;
    assert!(
        lb_ip.starts_with("10.203.2."),
        "B's load-balancer address {lb_ip}"
    );

    // A's pod reaches B only through the NodePort on B's node address.
    let mut reached = String::new();
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        let pods: Api<Pod> = Api::default_namespaced(a.clone());
        let _ = pods.delete("client", &Default::default()).await;
        while pods.get("client").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        apply_yaml(
            &a,
            &client_yaml(node_b.addressing.node_ip(), &lb_ip, &pod_ip, &cluster_ip),
            "default",
        )
        .await
        .unwrap();
        wait_phase(&a, "client", &["Succeeded", "Failed"]).await;
        reached = logs(&a, "client").await;
        // kube-proxy may not have programmed the NodePort yet on the first try.
        if reached.contains("nodeport reached") && reached.contains("load-balancer reached") {
            break;
        }
    }
    assert!(
        reached.contains("nodeport reached: pong-from-b"),
        "A's pod to B's NodePort: {reached}"
    );
    assert!(
        reached.contains("load-balancer reached: pong-from-b"),
        "A's pod to B's load-balancer address: {reached}"
    );
    assert!(
        reached.contains("pod-ip unreachable"),
        "B's pod IP must be unreachable from A: {reached}"
    );
    assert!(
        reached.contains("cluster-ip unreachable"),
        "B's ClusterIP must be unreachable from A: {reached}"
    );

    for node in [&node_a, &node_b] {
        let images = node.images().unwrap();
        assert!(
            images.iter().any(|i| i == FERRY_IMAGE),
            "{} holds {images:?}",
            node.name
        );
    }
    mover_pair(&a, &b, node_b.addressing.node_ip(), tmp.path()).await;

    drop(node_a);
    drop(node_b);
}

/// A Secret `certs` holding `dir`'s ca.crt, tls.crt and tls.key.
fn certs_secret(dir: &Path) -> String {
    use base64::Engine as _;
    let b64 = |f: &str| base64::engine::general_purpose::STANDARD.encode(std::fs::read(dir.join(f)).unwrap());
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: certs}}\ndata: {{ca.crt: {}, tls.crt: {}, tls.key: {}}}\n",
        b64("ca.crt"),
        b64("tls.crt"),
        b64("tls.key")
    )
}

fn mover_pod(name: &str, claim: &str, run_as_root: bool, args: &[&str]) -> String {
    let security = if run_as_root {
        "securityContext: {runAsUser: 0, runAsGroup: 0}"
    } else {
        ""
    };
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: {name}}}}}
spec:
  restartPolicy: Never
  {security}
  containers:
  - name: mover
    image: {FERRY_IMAGE}
    imagePullPolicy: Never
    args: {args}
    volumeMounts: [{{name: data, mountPath: /data}}, {{name: certs, mountPath: /certs, readOnly: true}}]
  volumes:
  - {{name: data, persistentVolumeClaim: {{claimName: {claim}}}}}
  - {{name: certs, secret: {{secretName: certs}}}}
"#,
        args = serde_json::to_string(args).unwrap(),
    )
}

/// The `ferry` image as a mover pair across the clusters: `ferry mover receive` in B behind a NodePort,
/// `ferry mover send` in A on the writer's PVC; the uid-999 0700 tree arrives as it was. The image's
/// USER (65532) holds for a pod that does not override it.
async fn mover_pair(a: &Client, b: &Client, b_node: Ipv4Addr, dir: &Path) {
    let certs = dir.join("certs");
    let status = Command::new(FERRY)
        .args([
            "mover",
            "certs",
            "--out",
            certs.to_str().unwrap(),
            "--server-name",
            &b_node.to_string(),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    apply_yaml(b, &certs_secret(&certs.join("server")), "default")
        .await
        .unwrap();
    apply_yaml(a, &certs_secret(&certs.join("client")), "default")
        .await
        .unwrap();
    let receiver = mover_pod(
        "receiver",
        "target",
        true,
        &[
            "mover",
            "receive",
            "--root",
            "/data",
            "--certs-dir",
            "/certs",
            "--listen",
            "0.0.0.0:7443",
        ],
    );
    let service = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: receiver}}\nspec: {{type: NodePort, selector: {{app: receiver}}, \
         ports: [{{port: 7443, targetPort: 7443, nodePort: {MOVER_PORT}}}]}}\n"
    );
    let claim = "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: target}\n\
                 spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n";
    apply_yaml(b, &format!("{claim}---\n{receiver}---\n{service}"), "default")
        .await
        .unwrap();
    wait_phase(b, "receiver", &["Running"]).await;

    // USER from the image: a pod that does not set runAsUser runs as 65532.
    let idle = mover_pod(
        "as-image-user",
        "target",
        false,
        &[
            "mover",
            "receive",
            "--root",
            "/tmp",
            "--certs-dir",
            "/certs",
            "--listen",
            "0.0.0.0:7444",
        ],
    );
    apply_yaml(b, &idle, "default").await.unwrap();
    wait_phase(b, "as-image-user", &["Running"]).await;
    let uid = process_uid("0.0.0.0:7444").expect("the as-image-user process on this machine");
    assert_eq!(uid, 65532, "the ferry image's USER");

    let sender = mover_pod(
        "sender",
        "data",
        true,
        &[
            "mover",
            "send",
            "--source",
            "/data",
            "--connect",
            &format!("{b_node}:{MOVER_PORT}"),
            "--certs-dir",
            "/certs",
            "--retries",
            "10",
            "--retry-delay-ms",
            "1000",
        ],
    );
    // The receiver's NodePort answers once kube-proxy has programmed it (slow on a loaded machine);
    // this process is in the sandbox namespace, which routes to B's node.
    let deadline = Instant::now() + WAIT;
    let target = std::net::SocketAddr::from((b_node, MOVER_PORT));
    while std::net::TcpStream::connect_timeout(&target, Duration::from_secs(2)).is_err() {
        assert!(
            Instant::now() < deadline,
            "B's mover NodePort {target} never answered"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    apply_yaml(a, &sender, "default").await.unwrap();
    let pods: Api<Pod> = Api::default_namespaced(a.clone());
    let deadline = Instant::now() + 2 * WAIT;
    let pod = loop {
        let pod = pods.get("sender").await.unwrap();
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        if phase == "Succeeded" || phase == "Failed" {
            break pod;
        }
        if Instant::now() > deadline {
            panic!(
                "sender still {phase} after {:?}; its log: {}",
                2 * WAIT,
                logs(a, "sender").await
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let sender_logs = logs(a, "sender").await;
    assert_eq!(
        pod.status.unwrap().phase.as_deref(),
        Some("Succeeded"),
        "sender: {sender_logs}"
    );

    let pvc = Api::<PersistentVolumeClaim>::default_namespaced(b.clone())
        .get("target")
        .await
        .unwrap();
    let pv = Api::<PersistentVolume>::all(b.clone())
        .get(pvc.spec.unwrap().volume_name.as_deref().unwrap())
        .await
        .unwrap();
    let moved = PathBuf::from(pv.spec.unwrap().host_path.unwrap().path).join("app");
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(&moved)
        .unwrap_or_else(|err| panic!("{}: {err}; sender: {sender_logs}", moved.display()));
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (999, 999, 0o700),
        "{}",
        moved.display()
    );
    assert_eq!(std::fs::read_to_string(moved.join("file")).unwrap(), "state\n");
    let file = std::fs::metadata(moved.join("file")).unwrap();
    assert_eq!((file.uid(), file.gid()), (999, 999));
}

/// The uid of the process on this machine whose command line holds `needle`.
fn process_uid(needle: &str) -> Option<u32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let path = entry.path();
        let cmdline = std::fs::read(path.join("cmdline")).unwrap_or_default();
        if !String::from_utf8_lossy(&cmdline).contains(needle)
            || !cmdline.starts_with(b"/usr/local/bin/ferry")
        {
            continue;
        }
        let status = std::fs::read_to_string(path.join("status")).ok()?;
        return status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))?
            .split_whitespace()
            .next()?
            .parse()
            .ok();
    }
    None
}
