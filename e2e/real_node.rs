//! e2e: two sandbox clusters, each with a REAL node (kubelet, containerd + runc, CNI bridge, kube-proxy
//! in iptables mode, in a network namespace of its own; docs/sandbox.md, "Real nodes"). In cluster A a
//! pod running as uid 999 writes a 0700 directory onto a PVC that the hostPath provisioner binds; in
//! cluster B an HTTP server behind a NodePort Service answers a pod of cluster A at B's node address,
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

/// Builds the pause and app images with `e2e/images/build.sh` into `dir`.
fn build_images(dir: &Path) -> Vec<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/images/build.sh");
    let mut images = Vec::new();
    for (kind, name) in [("pause", PAUSE_IMAGE), ("app", APP_IMAGE)] {
        let out = dir.join(format!("{kind}.tar"));
        let status = Command::new(&script)
            .args([kind, out.to_str().unwrap(), name])
            .status()
            .unwrap();
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
        if let Ok(pod) = pods.get(name).await {
            let phase = pod
                .status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_default();
            if phases.contains(&phase.as_str()) {
                return pod;
            }
        }
        assert!(
            Instant::now() < deadline,
            "pod {name} not {phases:?} within {WAIT:?}"
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
  type: NodePort
  selector: {{app: server}}
  ports: [{{port: 80, targetPort: 8080, nodePort: {NODE_PORT}}}]
"#
    )
}

/// A pod of cluster A that sends an HTTP request to B's NodePort, pod IP and ClusterIP, each connect
/// bounded by 3 s (`nc -w 3`).
fn client_yaml(node: Ipv4Addr, pod_ip: &str, cluster_ip: &str) -> String {
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

    // B: an HTTP server behind a NodePort.
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
            &client_yaml(node_b.addressing.node_ip(), &pod_ip, &cluster_ip),
            "default",
        )
        .await
        .unwrap();
        wait_phase(&a, "client", &["Succeeded", "Failed"]).await;
        reached = logs(&a, "client").await;
        // kube-proxy may not have programmed the NodePort yet on the first try.
        if reached.contains("nodeport reached") {
            break;
        }
    }
    assert!(
        reached.contains("nodeport reached: pong-from-b"),
        "A's pod to B's NodePort: {reached}"
    );
    assert!(
        reached.contains("pod-ip unreachable"),
        "B's pod IP must be unreachable from A: {reached}"
    );
    assert!(
        reached.contains("cluster-ip unreachable"),
        "B's ClusterIP must be unreachable from A: {reached}"
    );

    drop(node_a);
    drop(node_b);
}
