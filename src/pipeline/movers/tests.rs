use k8s_openapi::api::core::v1::Node;

use kube::ResourceExt;

use super::*;

pub(super) fn spec(endpoint: EndpointType) -> MoverSpec {
    MoverSpec {
        uid: "0f3a9c1e-1111-2222-3333-444455556666".into(),
        labels: crate::pipeline::labels::temporary_labels(
            "ferry",
            "shop",
            "0f3a9c1e-1111-2222-3333-444455556666",
        ),
        image: DEFAULT_IMAGE.into(),
        endpoint,
        src_groups: vec![],
        target_groups: vec![1000],
        bw_limit: None,
        proxy: true,
        identity: MoverIdentity::Root { group: None },
        compress: false,
        full_passes: false,
    }
}

/// Both movers' pod and container security contexts, as JSON.
fn contexts(spec: &MoverSpec) -> [(serde_json::Value, serde_json::Value); 2] {
    let v = volume(&["ReadWriteOnce"], None);
    let send = serde_json::to_value(send_pod(spec, &v, Pass::Stage, "a:1")).unwrap();
    let receive = serde_json::to_value(receive_pod(spec, &v)).unwrap();
    [send, receive].map(|pod| {
        (
            pod["spec"]["securityContext"].clone(),
            pod["spec"]["containers"][0]["securityContext"].clone(),
        )
    })
}

#[test]
fn by_default_movers_are_root_with_only_the_capabilities_each_side_needs() {
    let [(send_pod_ctx, send), (receive_pod_ctx, receive)] = contexts(&spec(EndpointType::NodePort));
    for pod in [&send_pod_ctx, &receive_pod_ctx] {
        assert_eq!(pod["runAsUser"], json!(0), "{pod}");
        assert_eq!(pod["runAsNonRoot"], json!(false), "root must be explicit: {pod}");
        assert_eq!(pod["seccompProfile"], json!({"type": "RuntimeDefault"}));
    }
    for container in [&send, &receive] {
        assert_eq!(container["allowPrivilegeEscalation"], json!(false));
        assert_eq!(container["readOnlyRootFilesystem"], json!(true));
        assert_eq!(container["runAsNonRoot"], json!(false));
        assert_eq!(container["capabilities"]["drop"], json!(["ALL"]));
        assert!(container.get("privileged").is_none(), "{container}");
    }
    assert_eq!(send["capabilities"]["add"], json!(["DAC_READ_SEARCH"]));
    let added: Vec<&str> = receive["capabilities"]["add"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(
        added,
        [
            "CHOWN",
            "DAC_OVERRIDE",
            "FOWNER",
            "FSETID",
            "MKNOD",
            "SETGID",
            "SYS_CHROOT"
        ]
    );
    for never in ["SYS_ADMIN", "SETUID", "NET_RAW", "DAC_READ_SEARCH", "ALL"] {
        assert!(!added.contains(&never), "the receiver gets {never}");
    }
}

#[test]
fn a_restricted_identity_runs_non_root_with_no_capability() {
    let restricted = MoverSpec {
        identity: MoverIdentity::Restricted {
            user: Some(999),
            group: Some(998),
        },
        ..spec(EndpointType::NodePort)
    };
    for (pod, container) in contexts(&restricted) {
        assert_eq!(
            (&pod["runAsUser"], &pod["runAsGroup"], &pod["runAsNonRoot"]),
            (&json!(999), &json!(998), &json!(true))
        );
        assert_eq!(container["capabilities"], json!({"drop": ["ALL"]}));
        assert_eq!(container["runAsNonRoot"], json!(true));
        assert_eq!(container["readOnlyRootFilesystem"], json!(true));
    }
    let image_user = MoverSpec {
        identity: MoverIdentity::Restricted {
            user: None,
            group: None,
        },
        ..spec(EndpointType::NodePort)
    };
    for (pod, _) in contexts(&image_user) {
        assert!(pod.get("runAsUser").is_none(), "the image's USER: {pod}");
        assert_eq!(pod["runAsNonRoot"], json!(true));
    }
    let root_group = MoverSpec {
        identity: MoverIdentity::Root { group: Some(5) },
        ..spec(EndpointType::NodePort)
    };
    let [(pod, _), _] = contexts(&root_group);
    assert_eq!((&pod["runAsUser"], &pod["runAsGroup"]), (&json!(0), &json!(5)));
}

#[test]
fn with_a_read_only_root_everything_a_mover_writes_goes_to_one_scratch_empty_dir() {
    let s = spec(EndpointType::NodePort);
    let v = volume(&["ReadWriteOnce"], None);
    for pod in [send_pod(&s, &v, Pass::Final, "a:1"), receive_pod(&s, &v)] {
        let pod = serde_json::to_value(pod).unwrap();
        let container = &pod["spec"]["containers"][0];
        let mounts = container["volumeMounts"].as_array().unwrap();
        let writable: Vec<&str> = mounts
            .iter()
            .filter(|m| m["readOnly"] != json!(true))
            .map(|m| m["mountPath"].as_str().unwrap())
            .collect();
        let is_sender = pod["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("ferry-send-");
        // The sender's volume is read-only; the receiver's is what it writes.
        let expected: &[&str] = if is_sender { &["/tmp"] } else { &["/data", "/tmp"] };
        assert_eq!(writable, expected, "{pod}");
        let scratch = pod["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "scratch")
            .unwrap();
        assert_eq!(scratch["emptyDir"], json!({}));
        let tmpdir = container["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "TMPDIR")
            .unwrap();
        assert_eq!(tmpdir["value"], "/tmp");
    }
}

pub(super) fn volume(modes: &[&str], node: Option<&str>) -> DiscoveredVolume {
    DiscoveredVolume {
        name: "db-data".into(),
        namespace: "shop".into(),
        target_name: "db-data-new".into(),
        target_namespace: "shop-new".into(),
        access_modes: modes.iter().map(|m| m.to_string()).collect(),
        node: node.map(String::from),
        ..DiscoveredVolume::default()
    }
}

fn with_uid(uid: &str) -> DiscoveredVolume {
    DiscoveredVolume {
        uid: Some(uid.into()),
        ..volume(&["ReadWriteOnce"], None)
    }
}

#[test]
fn ports_are_stable_distinct_per_volume_and_in_range() {
    let uid = "0f3a9c1e-1111";
    assert_eq!(port(uid, &with_uid("a")), port(uid, &with_uid("a")));
    assert_ne!(port(uid, &with_uid("a")), port(uid, &with_uid("b")));
    for i in 0..50 {
        assert!((20000..30000).contains(&port(uid, &with_uid(&i.to_string()))));
    }
}

#[test]
fn mover_objects_are_named_by_the_source_pvc_not_by_a_list_position() {
    let (a, b) = (with_uid("uid-a"), with_uid("uid-b"));
    assert_ne!(receiver_name("m", &a), receiver_name("m", &b));
    assert_eq!(receiver_name("m", &a), receiver_name("m", &a.clone()));
    let recreated = DiscoveredVolume {
        uid: Some("uid-a2".into()),
        ..a.clone()
    };
    assert_ne!(
        sender_name("m", &a, Pass::Stage),
        sender_name("m", &recreated, Pass::Stage),
        "a PVC recreated under the same name is another volume"
    );
    let pod = receive_pod(&spec(EndpointType::NodePort), &a);
    assert_eq!(pod.labels().get(VOLUME), Some(&a.id()));
    assert!(receiver_name("0f3a9c1e-1111-2222", &a).len() <= 63);
}

#[test]
fn the_receiver_mounts_the_target_claim_and_listens_on_its_pod_ip() {
    let s = spec(EndpointType::NodePort);
    let pod = receive_pod(&s, &volume(&["ReadWriteOnce"], Some("node-a")));
    assert_eq!(pod.metadata.namespace.as_deref(), Some("shop-new"));
    let pod_spec = pod.spec.unwrap();
    assert!(pod_spec.node_name.is_none(), "the scheduler places receivers");
    let volumes = pod_spec.volumes.unwrap();
    assert_eq!(
        volumes[0].persistent_volume_claim.as_ref().unwrap().claim_name,
        "db-data-new"
    );
    let env = pod_spec.containers[0].env.clone().unwrap();
    let listen = env.iter().find(|e| e.name == "FERRY_MOVER_LISTEN").unwrap();
    assert_eq!(
        listen.value.as_deref(),
        Some(
            format!(
                "$(POD_IP):{}",
                port(&s.uid, &volume(&["ReadWriteOnce"], Some("node-a")))
            )
            .as_str()
        )
    );
    assert_eq!(
        pod_spec.security_context.unwrap().supplemental_groups,
        Some(vec![1000])
    );
}

#[test]
fn a_sender_of_a_read_write_once_volume_is_pinned_to_its_node() {
    let s = spec(EndpointType::NodePort);
    let rwo = send_pod(
        &s,
        &volume(&["ReadWriteOnce"], Some("node-a")),
        Pass::Stage,
        "127.0.0.1:31000",
    );
    assert_eq!(rwo.spec.as_ref().unwrap().node_name.as_deref(), Some("node-a"));
    let rwx = send_pod(
        &s,
        &volume(&["ReadWriteMany"], Some("node-a")),
        Pass::Stage,
        "127.0.0.1:31000",
    );
    assert!(rwx.spec.as_ref().unwrap().node_name.is_none());
}

#[test]
fn the_final_pass_is_strict_and_the_proxy_comes_from_a_secret() {
    let s = spec(EndpointType::NodePort);
    let env_of = |pass| {
        let v = volume(&["ReadWriteMany"], None);
        let pod = send_pod(&s, &v, pass, "10.0.0.1:30000");
        assert_eq!(pod.metadata.name.clone().unwrap(), sender_name(&s.uid, &v, pass));
        pod.spec.unwrap().containers[0].env.clone().unwrap()
    };
    let value = |env: &[k8s_openapi::api::core::v1::EnvVar], name: &str| {
        env.iter().find(|e| e.name == name).and_then(|e| e.value.clone())
    };
    let stage = env_of(Pass::Stage);
    assert_eq!(value(&stage, "FERRY_MOVER_FINAL").as_deref(), Some("false"));
    let proxy = stage.iter().find(|e| e.name == "FERRY_MOVER_PROXY").unwrap();
    assert!(
        proxy.value.is_none() && proxy.value_from.is_some(),
        "never inline: it holds a password"
    );
    assert!(
        value(&stage, "FERRY_MOVER_COMPRESS").is_none(),
        "compression is off unless asked"
    );
    let final_ = env_of(Pass::Final);
    assert_eq!(value(&final_, "FERRY_MOVER_FINAL").as_deref(), Some("true"));
    // Every pass names the same manifest: stages write it, the final sync consumes it.
    let key = value(&stage, "FERRY_MOVER_MANIFEST_KEY").unwrap();
    assert_eq!(value(&final_, "FERRY_MOVER_MANIFEST_KEY"), Some(key.clone()));
    let v = volume(&["ReadWriteMany"], None);
    assert!(
        key.ends_with(&format!("/{}/{}", v.target_namespace, v.target_name)),
        "{key}"
    );
    let compressed = MoverSpec {
        compress: true,
        ..s.clone()
    };
    let pod = send_pod(&compressed, &v, Pass::Stage, "10.0.0.1:30000");
    let env = pod.spec.unwrap().containers[0].env.clone().unwrap();
    assert_eq!(value(&env, "FERRY_MOVER_COMPRESS").as_deref(), Some("true"));
    // transfer.fullPasses: plain rsync passes, no manifest named, so none is written or read.
    let plain = MoverSpec {
        full_passes: true,
        ..s.clone()
    };
    for pass in [Pass::Stage, Pass::Final] {
        let pod = send_pod(&plain, &v, pass, "10.0.0.1:30000");
        let env = pod.spec.unwrap().containers[0].env.clone().unwrap();
        assert!(value(&env, "FERRY_MOVER_MANIFEST_KEY").is_none(), "{pass:?}");
    }
    assert_eq!(value(&final_, "FERRY_MOVER_VERIFY").as_deref(), Some("false"));
    assert_eq!(
        value(&env_of(Pass::Verify), "FERRY_MOVER_VERIFY").as_deref(),
        Some("true")
    );
}

#[test]
fn addresses_per_endpoint_type() {
    let s = spec(EndpointType::NodePort);
    let v = volume(&["ReadWriteOnce"], None);
    let mut service = receive_service(&s, &v);
    let port = port(&s.uid, &v);
    {
        let spec = service.spec.as_mut().unwrap();
        spec.cluster_ip = Some("10.96.0.10".into());
        spec.ports.as_mut().unwrap()[0].node_port = Some(31234);
    }
    let node: Node = serde_json::from_value(json!({"metadata": {"name": "n"}, "status": {
        "conditions": [{"type": "Ready", "status": "True"}],
        "addresses": [{"type": "Hostname", "address": "n"}, {"type": "InternalIP", "address": "192.0.2.5"}]}}))
    .unwrap();
    assert_eq!(
        connect_address(
            EndpointType::NodePort,
            &service,
            std::slice::from_ref(&node),
            None
        )
        .as_deref(),
        Some("192.0.2.5:31234")
    );
    assert_eq!(
        connect_address(EndpointType::ClusterIP, &service, &[], None),
        Some(format!("10.96.0.10:{port}"))
    );
    assert_eq!(
        connect_address(EndpointType::LoadBalancer, &service, &[], None),
        None,
        "no address yet"
    );
    service.status =
        serde_json::from_value(json!({"loadBalancer": {"ingress": [{"hostname": "lb.example"}]}})).unwrap();
    assert_eq!(
        connect_address(EndpointType::LoadBalancer, &service, &[], None),
        Some(format!("lb.example:{port}"))
    );
    assert_eq!(
        connect_address(EndpointType::Route, &service, &[], Some("r.apps.example")).as_deref(),
        Some("r.apps.example:443")
    );
}

#[test]
fn network_policies_open_only_the_mover_ports() {
    let s = spec(EndpointType::NodePort);
    let v = volume(&["ReadWriteOnce"], None);
    let (ingress, egress) = network_policies(&s, &v, 31234);
    let ingress = serde_json::to_value(ingress).unwrap();
    assert_eq!(
        ingress["spec"]["ingress"][0]["ports"][0]["port"],
        port(&s.uid, &v)
    );
    let egress = serde_json::to_value(egress).unwrap();
    assert_eq!(egress["spec"]["egress"][0]["ports"][0]["port"], 31234);
    assert_eq!(egress["metadata"]["namespace"], "shop");
}
