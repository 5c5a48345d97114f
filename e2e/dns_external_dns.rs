//! The DNS providers with a real kube-apiserver (`controlplane serve`): external-dns (a missing CRD is
//! named, the CRD from manifests/ is applied, then record / lower TTL / replace / verify / restore on a
//! DNSEndpoint that also holds an unrelated endpoint, which must survive), and `dns::connect` reading
//! the TSIG Secret and the Service/Ingress load-balancer targets from the cluster to flip a real BIND9.
//! Fails (never skips) without the control plane binary: run `make controlplane`.

#[path = "support/dns.rs"]
mod support;

use std::time::Duration;

use ferry::Error;
use ferry::dns::{
    Configured, DnsSpec, ExternalDns, ObjectRef, Provider, RecordKey, RecordType, connect, lower_ttl,
};
use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use support::{ControlPlane, dig, set, start_bind};

const NAMESPACE: &str = "ferry-dns-e2e";

fn dns_endpoints(client: &Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("externaldns.k8s.io", "v1alpha1", "DNSEndpoint");
    Api::namespaced_with(
        client.clone(),
        NAMESPACE,
        &ApiResource::from_gvk_with_plural(&gvk, "dnsendpoints"),
    )
}

async fn create_namespace(client: &Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
}

async fn apply_crd(client: &Client) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/manifests/external-dns/dnsendpoint-crd.yaml"
    );
    let crd: CustomResourceDefinition =
        serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).expect("parse the CRD manifest");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &crd)
        .await
        .expect("create the DNSEndpoint CRD");
    // Wait until the new resource is served (Established, then usable by a list).
    let endpoints = dns_endpoints(client);
    for _ in 0..100 {
        if endpoints.list(&Default::default()).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("DNSEndpoint resource not served 10 s after creating its CRD");
}

#[tokio::test]
async fn replace_read_and_restore_a_dns_endpoint() {
    let control_plane = ControlPlane::start().await;
    println!("control plane at {}", control_plane.url);
    let client = control_plane.client().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": NAMESPACE}})).unwrap();
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
    let reference = ObjectRef {
        name: "app-records".into(),
        namespace: NAMESPACE.into(),
    };
    let dns = ExternalDns::new(client.clone(), &reference);

    // Before the CRD exists: a clear error naming it.
    let err = dns.check_credentials().await.unwrap_err();
    assert!(
        matches!(&err, Error::DnsExternalDns(m) if m.contains("dnsendpoints.externaldns.k8s.io")),
        "{err:?}"
    );
    apply_crd(&client).await;

    // Credentials check is a dry run: the resource is still absent afterwards.
    dns.check_credentials().await.unwrap();
    assert!(
        dns_endpoints(&client)
            .get_opt("app-records")
            .await
            .unwrap()
            .is_none()
    );

    // The user's existing DNSEndpoint: our record plus an unrelated one.
    let existing: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "externaldns.k8s.io/v1alpha1", "kind": "DNSEndpoint",
        "metadata": {"name": "app-records", "namespace": NAMESPACE},
        "spec": {"endpoints": [
            {"dnsName": "txt.example.test", "recordType": "TXT", "targets": ["keep me"]},
            {"dnsName": "app.example.test", "recordType": "A", "targets": ["192.0.2.1"], "recordTTL": 300}
        ]}
    }))
    .unwrap();
    dns_endpoints(&client)
        .create(&PostParams::default(), &existing)
        .await
        .unwrap();

    let keys = [RecordKey {
        fqdn: "app.example.test".into(),
        record_type: RecordType::A,
    }];
    let recorded = lower_ttl(&dns, &keys, 30).await.unwrap();
    assert_eq!(
        recorded,
        [set("app.example.test", RecordType::A, 300, &["192.0.2.1"])]
    );
    assert_eq!(dns.read(&keys).await.unwrap(), [recorded[0].with_ttl(30)]);

    let target = [set("app.example.test", RecordType::A, 60, &["198.51.100.7"])];
    dns.replace(&target).await.unwrap();
    assert_eq!(dns.read(&keys).await.unwrap(), target);

    // No external-dns runs here, so verification must time out and say what it waited for.
    let err = dns.verify(&target, Duration::from_millis(600)).await.unwrap_err();
    assert!(
        matches!(&err, Error::DnsVerifyTimeout { last_seen, .. } if last_seen.contains("observedGeneration"))
    );
    println!("verify without external-dns: {err}");
    // Play external-dns's part (what its CRD source does after publishing): report the generation.
    let object = dns_endpoints(&client).get("app-records").await.unwrap();
    let generation = object.metadata.generation.expect("generation");
    let status = json!({"status": {"observedGeneration": generation}});
    dns_endpoints(&client)
        .patch_status("app-records", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    let took = dns.verify(&target, Duration::from_secs(10)).await.unwrap();
    println!("external-dns verify after observedGeneration: {took:?}");

    dns.restore(&recorded).await.unwrap();
    assert_eq!(dns.read(&keys).await.unwrap(), recorded);
    let object = dns_endpoints(&client).get("app-records").await.unwrap();
    let endpoints = object.data["spec"]["endpoints"].as_array().unwrap().clone();
    assert_eq!(endpoints.len(), 2, "{endpoints:?}");
    assert!(
        endpoints
            .iter()
            .any(|e| e["dnsName"] == "txt.example.test" && e["targets"][0] == "keep me")
    );
}

#[tokio::test]
async fn connect_reads_secret_and_lb_targets_from_the_cluster_then_flips_bind() {
    let bind = start_bind().await;
    let control_plane = ControlPlane::start().await;
    let client = control_plane.client().await;
    create_namespace(&client, "ferry-dns-tsig").await;
    // The Secret as a user would write it (stringData), holding the sandbox BIND's key.
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "dns-tsig", "namespace": "ferry-dns-tsig"},
        "stringData": {"keyName": bind.key.name, "algorithm": "hmac-sha256", "secret": bind.key.secret_base64()}
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), "ferry-dns-tsig")
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();

    // Targets in the "target cluster": a LoadBalancer Service and an Ingress whose addresses the test
    // reports itself (no cloud controller runs here), as a load-balancer controller would.
    let namespace = "ferry-dns-tsig";
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}], "selector": {"app": "web"}}
    }))
    .unwrap();
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    services.create(&PostParams::default(), &service).await.unwrap();
    let lb = json!({"status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.9"}]}}});
    services
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&lb))
        .await
        .unwrap();
    let ingress: Ingress = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}
    }))
    .unwrap();
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), namespace);
    ingresses.create(&PostParams::default(), &ingress).await.unwrap();
    let lb = json!({"status": {"loadBalancer": {"ingress": [{"hostname": "router.apps.example.net"}]}}});
    ingresses
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&lb))
        .await
        .unwrap();

    let spec: DnsSpec = serde_json::from_value(json!({
        "records": [
            {"fqdn": "app.example.test", "type": "A", "fromService": {"name": "web", "namespace": namespace}, "ttl": 60},
            {"fqdn": "www.example.test", "type": "CNAME", "fromIngress": {"name": "web", "namespace": namespace}}
        ],
        "rfc2136": {"server": bind.server(), "zone": "example.test",
                    "tsigSecretRef": {"name": "dns-tsig", "namespace": namespace}}
    }))
    .unwrap();
    let dns = connect(&spec, client.clone(), client.clone()).await.unwrap();
    assert!(matches!(dns, Configured::Rfc2136(_)));
    dns.check_credentials().await.unwrap();
    let recorded = dns.read(&RecordKey::of_spec(&spec)).await.unwrap();
    let desired = ferry::dns::desired_record_sets(&spec, &recorded, &client)
        .await
        .unwrap();
    dns.replace(&desired).await.unwrap();
    dns.verify(&desired, Duration::from_secs(10)).await.unwrap();
    assert_eq!(dig(&bind, "app.example.test", "A"), [(60, "198.51.100.9".into())]);
    assert_eq!(
        dig(&bind, "www.example.test", "CNAME"),
        [(300, "router.apps.example.net.".into())]
    );
    dns.restore(&recorded).await.unwrap();
    assert!(dig(&bind, "app.example.test", "A").is_empty());
    assert!(dig(&bind, "www.example.test", "CNAME").is_empty());
}
