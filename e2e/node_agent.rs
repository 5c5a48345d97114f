//! e2e: the sandbox node agent against a real control plane, running real processes. A mover-like pod
//! copies a file between two PVC-backed hostPath directories using a Secret volume and a secretKeyRef
//! env; an init container runs before two concurrent containers, one of them the real `ferry` binary;
//! a failing pod, a pod with no command and a pod whose PVC never binds end Failed with clear messages;
//! deleting a long-running pod SIGTERMs its whole process group (SIGKILL after the grace period when
//! ignored); an OnFailure pod is restarted once; a Deployment's pods are marked Running and go away at
//! scale 0. No process is left behind.

#[path = "support/node_agent.rs"]
mod agent;
#[path = "support/clusters.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use agent::{
    NODE, WAIT, alive, fresh_namespace, main_status, mover_pod, processes_mentioning, terminated,
    volume_yaml, wait_for_pids, wait_terminal, wait_until,
};
use ferry_sandbox::{ControlPlane, NodeAgent, NodeAgentOptions};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client};
use support::{apply, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_agent_runs_pods_like_a_kubelet() {
    let dir = tempfile::Builder::new()
        .prefix("ferry-node-agent-")
        .tempdir()
        .unwrap();
    let started = Instant::now();
    let cluster = ControlPlane::start("agent", &dir.path().join("cluster"), &[NODE]).unwrap();
    eprintln!("control plane ready in {:.1}s", started.elapsed().as_secs_f64());
    let client = cluster.client().await.unwrap();
    let options = NodeAgentOptions {
        ferry_binary: Some(PathBuf::from(env!("CARGO_BIN_EXE_ferry"))),
        mark_others_running: true,
        volume_wait: Duration::from_secs(3),
        ..NodeAgentOptions::default()
    };
    let work = dir.path().join("agent");
    let agent = NodeAgent::start(client.clone(), NODE, &work, options).unwrap();

    timed("copy between PVCs", copy_between_pvcs(&client, dir.path())).await;
    timed(
        "init + concurrent containers, the ferry binary",
        init_and_containers(&client),
    )
    .await;
    timed("failures", failures(&client)).await;
    timed(
        "deletion stops the process group",
        deletion_stops_processes(&client, dir.path()),
    )
    .await;
    timed("OnFailure restart", restart_on_failure(&client, dir.path())).await;
    timed("deployment up and down", deployment_up_and_down(&client)).await;

    // Stopping the agent stops the processes of pods still running.
    let pids = left_running(&client, dir.path()).await;
    let stopping = Instant::now();
    agent.stop().await;
    eprintln!("agent stopped in {:.2}s", stopping.elapsed().as_secs_f64());
    assert!(
        pids.iter().all(|pid| !alive(*pid)),
        "stop() left {pids:?} running"
    );
    let strays = processes_mentioning(&work);
    assert!(strays.is_empty(), "processes left running: {strays:?}");
    assert!(cluster.stop(), "the control plane did not exit cleanly");
}

async fn timed(name: &str, scenario: impl std::future::Future<Output = ()>) {
    let started = Instant::now();
    scenario.await;
    eprintln!("{name}: {:.2}s", started.elapsed().as_secs_f64());
}

async fn copy_between_pvcs(client: &Client, root: &Path) {
    let ns = "copy";
    let pods = fresh_namespace(client, ns).await;
    let (source, dest) = (root.join("source-data"), root.join("dest-data"));
    std::fs::create_dir_all(&source).unwrap();
    std::fs::create_dir_all(&dest).unwrap();
    let payload: Vec<u8> = (0..1_048_576u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(source.join("payload.bin"), &payload).unwrap();
    apply(client, ns, &volume_yaml(ns, "source", &source)).await;
    apply(client, ns, &volume_yaml(ns, "dest", &dest)).await;
    apply(
        client,
        ns,
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: mover-tls\n  namespace: {ns}\nstringData:\n\
         \x20 ca.crt: CA-PEM\n  tls.crt: CERT-PEM\n  tls.key: KEY-PEM\n---\napiVersion: v1\nkind: Secret\n\
         metadata:\n  name: mover-env\n  namespace: {ns}\nstringData:\n  token: s3cret\n"
        ),
    )
    .await;
    let script = "set -e\n\
        test \"$(cat /etc/ferry/tls/ca.crt)\" = CA-PEM\n\
        cp /source/payload.bin \"$DEST\"\n\
        stat -c %a /etc/ferry/tls/tls.key > /scratch/mode\n\
        printf 'copied %s bytes token=%s pod=%s node=%s ip=%s key-mode=%s' \"$(wc -c < /dest/copied)\" \
        \"$TOKEN\" \"$POD_NAME\" \"$NODE\" \"$POD_IP\" \"$(cat /scratch/mode)\" > /dev/termination-log\n\
        echo done";
    let container = "    env:\n    - {name: DEST, value: /dest/copied}\n\
        \x20   - name: TOKEN\n      valueFrom: {secretKeyRef: {name: mover-env, key: token}}\n\
        \x20   - name: POD_NAME\n      valueFrom: {fieldRef: {fieldPath: metadata.name}}\n\
        \x20   - name: NODE\n      valueFrom: {fieldRef: {fieldPath: spec.nodeName}}\n\
        \x20   - name: POD_IP\n      valueFrom: {fieldRef: {fieldPath: status.podIP}}\n\
        \x20   volumeMounts:\n    - {name: source, mountPath: /source, readOnly: true}\n\
        \x20   - {name: dest, mountPath: /dest, subPath: incoming}\n\
        \x20   - {name: tls, mountPath: /etc/ferry/tls}\n    - {name: scratch, mountPath: /scratch}\n";
    let volumes = "  volumes:\n  - {name: source, persistentVolumeClaim: {claimName: source}}\n\
        \x20 - {name: dest, persistentVolumeClaim: {claimName: dest}}\n\
        \x20 - name: tls\n    secret:\n      secretName: mover-tls\n      items:\n\
        \x20     - {key: ca.crt, path: ca.crt}\n      - {key: tls.crt, path: tls.crt}\n\
        \x20     - {key: tls.key, path: tls.key, mode: 384}\n  - {name: scratch, emptyDir: {}}\n";
    apply(
        client,
        ns,
        &mover_pod(ns, "copier", "Never", script, container, volumes),
    )
    .await;
    let pod = wait_terminal(&pods, "copier").await;
    let status = pod.status.clone().unwrap();
    let ended = main_status(&pod);
    assert_eq!(status.phase.as_deref(), Some("Succeeded"), "{status:#?}");
    assert_eq!(status.pod_ip.as_deref(), Some("127.0.0.1"));
    let ended = terminated(&ended).unwrap().clone();
    assert_eq!(ended.exit_code, 0);
    assert_eq!(
        ended.message.as_deref(),
        Some("copied 1048576 bytes token=s3cret pod=copier node=node-a ip=127.0.0.1 key-mode=600")
    );
    assert_eq!(std::fs::read(dest.join("incoming/copied")).unwrap(), payload);
    let log = NodeAgent::log_path(&pod, "mover").expect("log annotation");
    assert_eq!(std::fs::read_to_string(log).unwrap().trim(), "done");
}

async fn init_and_containers(client: &Client) {
    let ns = "containers";
    let pods = fresh_namespace(client, ns).await;
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: multi\n  namespace: {ns}\n  labels:\n\
         \x20   app.kubernetes.io/managed-by: ferry\nspec:\n  nodeName: {NODE}\n  restartPolicy: Never\n\
         \x20 initContainers:\n  - name: init\n    image: busybox\n    command: [sh, -c, 'echo ready > /work/init-done']\n\
         \x20   volumeMounts: [{{name: work, mountPath: /work}}]\n  containers:\n\
         \x20 - name: version\n    image: quay.io/ferry/mover:test\n    command: [/usr/local/bin/ferry, --version]\n\
         \x20 - name: check\n    image: busybox\n\
         \x20   command: [sh, -c, 'sleep 0.5; cat /work/init-done > /dev/termination-log']\n\
         \x20   volumeMounts: [{{name: work, mountPath: /work}}]\n  volumes:\n  - {{name: work, emptyDir: {{}}}}\n"
    );
    apply(client, ns, &pod).await;
    let pod = wait_terminal(&pods, "multi").await;
    let status = pod.status.clone().unwrap();
    assert_eq!(status.phase.as_deref(), Some("Succeeded"), "{status:#?}");
    let init = &status.init_container_statuses.as_ref().unwrap()[0];
    assert_eq!(terminated(init).unwrap().exit_code, 0);
    let statuses = status.container_statuses.unwrap();
    let check = statuses.iter().find(|c| c.name == "check").unwrap();
    assert_eq!(terminated(check).unwrap().message.as_deref(), Some("ready\n"));
    let version = std::fs::read_to_string(NodeAgent::log_path(&pod, "version").unwrap()).unwrap();
    assert!(version.starts_with("ferry "), "{version:?}");
}

async fn failures(client: &Client) {
    let ns = "failures";
    let pods = fresh_namespace(client, ns).await;
    let script = "echo about to fail; echo 'bad input' > /dev/termination-log; exit 3";
    apply(client, ns, &mover_pod(ns, "fails", "Never", script, "", "")).await;
    // No command: there is no image whose entrypoint could run.
    let no_command =
        mover_pod(ns, "no-command", "Never", "true", "", "").replace("    command: [sh, -c]\n", "");
    apply(client, ns, &no_command.replace("    args: [\"true\"]\n", "")).await;
    apply(
        client,
        ns,
        &format!(
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: never-bound\n  namespace: {ns}\n\
         spec:\n  accessModes: [ReadWriteOnce]\n  storageClassName: nothing\n  resources:\n    requests:\n\
         \x20     storage: 1Gi\n"
        ),
    )
    .await;
    let fallback = "    terminationMessagePolicy: FallbackToLogsOnError\n";
    apply(
        client,
        ns,
        &mover_pod(
            ns,
            "fallback",
            "Never",
            "echo line1; echo oops-from-log; exit 2",
            fallback,
            "",
        ),
    )
    .await;
    let mount = "    volumeMounts:\n    - {name: data, mountPath: /data}\n";
    let volume = "  volumes:\n  - {name: data, persistentVolumeClaim: {claimName: never-bound}}\n";
    apply(
        client,
        ns,
        &mover_pod(ns, "unbound", "Never", "true", mount, volume),
    )
    .await;

    let fails = wait_terminal(&pods, "fails").await;
    let ended = terminated(&main_status(&fails)).unwrap().clone();
    assert_eq!(fails.status.as_ref().unwrap().phase.as_deref(), Some("Failed"));
    // The pod-level explanation follows the Failed phase in the agent's next status write.
    let fails = wait_for(&pods, "fails", WAIT, |p| {
        p.status.as_ref()?.message.as_ref().map(|_| p.clone())
    })
    .await;
    assert_eq!((ended.exit_code, ended.reason.as_deref()), (3, Some("Error")));
    assert_eq!(ended.message.as_deref(), Some("bad input\n"));
    let pod_message = fails.status.as_ref().unwrap().message.clone().unwrap_or_default();
    assert!(
        pod_message.contains("exited with code 3") && pod_message.contains("about to fail"),
        "{pod_message}"
    );

    let fallback = wait_terminal(&pods, "fallback").await;
    let ended = terminated(&main_status(&fallback)).unwrap().clone();
    assert_eq!(
        (ended.exit_code, ended.message.as_deref()),
        (2, Some("line1\noops-from-log"))
    );

    for (name, expected) in [("no-command", "has no command"), ("unbound", "is not bound")] {
        let pod = wait_terminal(&pods, name).await;
        let ended = terminated(&main_status(&pod)).unwrap().clone();
        assert_eq!(pod.status.as_ref().unwrap().phase.as_deref(), Some("Failed"));
        assert_eq!(ended.reason.as_deref(), Some("ContainerCannotRun"));
        let message = ended.message.unwrap_or_default();
        assert!(message.contains(expected), "{name}: {message}");
    }
}

async fn deletion_stops_processes(client: &Client, root: &Path) {
    let ns = "deletion";
    let pods = fresh_namespace(client, ns).await;
    let state = root.join("long-running");
    std::fs::create_dir_all(&state).unwrap();
    // `$$$$`: Kubernetes reduces `$$` to `$` in args, so this is the shell's `$$`.
    let script = "trap 'echo got TERM; exit 0' TERM\nsleep 1000 &\necho $! > /state/sleep.pid\n\
                  echo $$$$ > /state/sh.pid\nwait";
    let mount = "    volumeMounts:\n    - {name: state, mountPath: /state}\n";
    let volume = format!(
        "  volumes:\n  - {{name: state, hostPath: {{path: {}}}}}\n",
        state.display()
    );
    apply(
        client,
        ns,
        &mover_pod(ns, "long", "Never", script, mount, &volume),
    )
    .await;
    let pod = wait_for(&pods, "long", WAIT, |p| {
        let running = p.status.as_ref()?.container_statuses.as_ref()?[0]
            .state
            .as_ref()?
            .running
            .is_some();
        let ready = p
            .status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        (running && ready).then(|| p.clone())
    })
    .await;
    let pids = wait_for_pids(&state).await;
    assert!(pids.iter().all(|pid| alive(*pid)));
    let deleted = Instant::now();
    pods.delete("long", &DeleteParams::default()).await.unwrap();
    wait_until("the pod object is gone", || async {
        pods.get_opt("long").await.unwrap().is_none()
    })
    .await;
    wait_until("the processes are gone", || async {
        pids.iter().all(|pid| !alive(*pid))
    })
    .await;
    eprintln!(
        "  processes gone {:.2}s after the delete",
        deleted.elapsed().as_secs_f64()
    );
    let log = std::fs::read_to_string(NodeAgent::log_path(&pod, "mover").unwrap()).unwrap();
    assert!(
        log.contains("got TERM"),
        "the shell was not sent SIGTERM: {log:?}"
    );

    // A process group that ignores SIGTERM is SIGKILLed after terminationGracePeriodSeconds.
    let stubborn = root.join("stubborn");
    std::fs::create_dir_all(&stubborn).unwrap();
    let script = "trap '' TERM\nsleep 1000 &\necho $! > /state/sleep.pid\necho $$$$ > /state/sh.pid\nwait";
    let volume = format!(
        "  terminationGracePeriodSeconds: 1\n  volumes:\n  - {{name: state, hostPath: {{path: {}}}}}\n",
        stubborn.display()
    );
    apply(
        client,
        ns,
        &mover_pod(ns, "stubborn", "Never", script, mount, &volume),
    )
    .await;
    let pids = wait_for_pids(&stubborn).await;
    let deleted = Instant::now();
    pods.delete("stubborn", &DeleteParams::default()).await.unwrap();
    wait_until("the stubborn processes are gone", || async {
        pids.iter().all(|pid| !alive(*pid))
    })
    .await;
    let waited = deleted.elapsed();
    eprintln!(
        "  stubborn processes killed {:.2}s after the delete",
        waited.as_secs_f64()
    );
    assert!(
        waited >= Duration::from_millis(900),
        "killed before the grace period: {waited:?}"
    );
}

async fn restart_on_failure(client: &Client, root: &Path) {
    let ns = "restart";
    let pods = fresh_namespace(client, ns).await;
    let state = root.join("restart-state");
    std::fs::create_dir_all(&state).unwrap();
    let script = "if [ -f /state/marker ]; then echo second run > /dev/termination-log; exit 0; fi\n\
                  touch /state/marker; echo first run > /dev/termination-log; exit 1";
    let mount = "    volumeMounts:\n    - {name: state, mountPath: /state}\n";
    let volume = format!(
        "  volumes:\n  - {{name: state, hostPath: {{path: {}}}}}\n",
        state.display()
    );
    apply(
        client,
        ns,
        &mover_pod(ns, "retry", "OnFailure", script, mount, &volume),
    )
    .await;
    let pod = wait_terminal(&pods, "retry").await;
    let status = main_status(&pod);
    assert_eq!(
        pod.status.as_ref().unwrap().phase.as_deref(),
        Some("Succeeded"),
        "{pod:#?}"
    );
    assert_eq!(status.restart_count, 1);
    let last = status
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.clone())
        .expect("lastState");
    assert_eq!(
        (last.exit_code, last.message.as_deref()),
        (1, Some("first run\n"))
    );
    let now = terminated(&status).unwrap();
    assert_eq!((now.exit_code, now.message.as_deref()), (0, Some("second run\n")));
}

async fn deployment_up_and_down(client: &Client) {
    let ns = "apps";
    let pods = fresh_namespace(client, ns).await;
    apply(client, ns, &format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: {ns}\nspec:\n  replicas: 2\n\
         \x20 selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n\
         \x20   spec:\n      nodeName: {NODE}\n      containers:\n      - {{name: web, image: nginx:1.27}}\n"
    ))
    .await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    wait_for(&deployments, "web", WAIT, |d| {
        (d.status.as_ref()?.available_replicas? == 2).then_some(())
    })
    .await;
    let listed = pods.list(&ListParams::default().labels("app=web")).await.unwrap();
    assert_eq!(listed.items.len(), 2);
    for pod in &listed.items {
        assert_eq!(pod.status.as_ref().unwrap().phase.as_deref(), Some("Running"));
    }
    let scale = serde_json::json!({"spec": {"replicas": 0}});
    deployments
        .patch("web", &PatchParams::default(), &Patch::Merge(&scale))
        .await
        .unwrap();
    wait_until("the deployment's pods are gone", || async {
        pods.list(&ListParams::default().labels("app=web"))
            .await
            .unwrap()
            .items
            .is_empty()
    })
    .await;
}

/// A pod still running when the agent stops; returns its processes.
async fn left_running(client: &Client, root: &Path) -> Vec<u32> {
    let ns = "left-running";
    fresh_namespace(client, ns).await;
    let state = root.join("left-running");
    std::fs::create_dir_all(&state).unwrap();
    let script = "sleep 1000 &\necho $! > /state/sleep.pid\necho $$$$ > /state/sh.pid\nwait";
    let mount = "    volumeMounts:\n    - {name: state, mountPath: /state}\n";
    let volume = format!(
        "  volumes:\n  - {{name: state, hostPath: {{path: {}}}}}\n",
        state.display()
    );
    apply(
        client,
        ns,
        &mover_pod(ns, "sleeper", "Always", script, mount, &volume),
    )
    .await;
    wait_for_pids(&state).await
}
