//! e2e: the ways a cluster registration or a plan goes wrong each surface as their documented
//! condition, and change nothing else: a wrong token (InvalidToken), an unreachable URL (Unreachable),
//! a server certificate nobody vouched for (TLSError), a missing Secret (SecretNotFound), credentials
//! without the needed rights (Forbidden), and a plan naming a namespace the source lacks.

#[path = "support/clusters.rs"]
mod support;

use std::time::Duration;

use base64::Engine as _;
use ferry::api::{MigCluster, MigPlan};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use support::{Clusters, apply, condition, namespace, wait_for};

const WAIT: Duration = Duration::from_secs(60);
const NS: &str = "ferry-failures";

#[tokio::test]
async fn each_failure_has_its_condition_and_changes_nothing() {
    let clusters = Clusters::start().await;
    let host = clusters.host_client.clone();
    namespace(&host, NS).await;
    namespace(&clusters.source_client, "app").await;

    let good_token = clusters
        .source
        .mint_token("ferry", "migration-controller", true)
        .unwrap();
    let weak_token = clusters.source.mint_token("ferry", "no-rights", false).unwrap();
    let namespaces_before = namespace_names(&clusters.source_client).await;
    secret(&host, "good", &good_token).await;
    secret(&host, "weak", &weak_token).await;
    secret(&host, "garbage", "this-is-not-a-token").await;
    let ca = clusters.source.ca_bundle().unwrap();
    let url = clusters.source.url.clone();

    let cases = [
        (
            "wrong-token",
            format!("  url: {url}\n  caBundle: {ca}\n  serviceAccountSecretRef: {{name: garbage}}\n"),
            "InvalidToken",
        ),
        (
            "unreachable",
            format!(
                "  url: https://127.0.0.1:1\n  caBundle: {ca}\n  serviceAccountSecretRef: {{name: good}}\n"
            ),
            "Unreachable",
        ),
        (
            "untrusted",
            format!("  url: {url}\n  serviceAccountSecretRef: {{name: good}}\n"),
            "TLSError",
        ),
        (
            "no-secret",
            format!("  url: {url}\n  caBundle: {ca}\n  serviceAccountSecretRef: {{name: missing}}\n"),
            "SecretNotFound",
        ),
        (
            "forbidden",
            format!("  url: {url}\n  caBundle: {ca}\n  serviceAccountSecretRef: {{name: weak}}\n"),
            "Forbidden",
        ),
        (
            "remote",
            format!("  url: {url}\n  caBundle: {ca}\n  serviceAccountSecretRef: {{name: good}}\n"),
            "Ready",
        ),
    ];
    for (name, spec, _) in &cases {
        apply(&host, NS, &format!(
            "apiVersion: migration.ferry.dev/v1alpha1\nkind: MigCluster\nmetadata:\n  name: {name}\nspec:\n{spec}"
        ))
        .await;
    }
    apply(&host, NS, "apiVersion: migration.ferry.dev/v1alpha1\nkind: MigCluster\nmetadata:\n  name: host\nspec:\n  isHostCluster: true\n").await;
    let api: Api<MigCluster> = Api::namespaced(host.clone(), NS);
    for (name, _, reason) in &cases {
        let ready = wait_for(&api, name, WAIT, |c| {
            condition(&c.status.as_ref()?.conditions, "Ready").cloned()
        })
        .await;
        assert_eq!(ready.reason.as_deref(), Some(*reason), "{name}: {ready:?}");
        assert_eq!(ready.is_true(), *reason == "Ready", "{name}: {ready:?}");
        eprintln!("{name}: {} — {}", reason, ready.message.unwrap_or_default());
    }

    // A plan over the wrong-token cluster is not Ready and discovers nothing.
    plan(&host, "over-bad-cluster", "wrong-token", "[app]").await;
    // A plan naming namespaces the source lacks lists all of them at once.
    plan(
        &host,
        "missing-namespaces",
        "remote",
        "[app, ghost-one, \"ghost-two:elsewhere\"]",
    )
    .await;
    let plans: Api<MigPlan> = Api::namespaced(host.clone(), NS);
    let bad_cluster = wait_for(&plans, "over-bad-cluster", WAIT, |p| {
        condition(&p.status.as_ref()?.conditions, "SourceClusterNotReady").cloned()
    })
    .await;
    assert!(bad_cluster.message.unwrap().contains("token"));
    let missing = wait_for(&plans, "missing-namespaces", WAIT, |p| {
        condition(&p.status.as_ref()?.conditions, "NamespaceNotFoundOnSourceCluster").cloned()
    })
    .await;
    let message = missing.message.unwrap();
    assert!(
        message.contains("ghost-one") && message.contains("ghost-two"),
        "{message}"
    );
    for name in ["over-bad-cluster", "missing-namespaces"] {
        let plan = plans.get(name).await.unwrap();
        let status = plan.status.unwrap();
        assert!(
            !condition(&status.conditions, "Ready").unwrap().is_true(),
            "{name}"
        );
        if name == "over-bad-cluster" {
            assert!(status.volumes.is_empty());
        }
    }

    // Nothing else changed: no namespace was created in the source, none for the plans in the host.
    assert_eq!(namespace_names(&clusters.source_client).await, namespaces_before);
    let host_namespaces = namespace_names(&host).await;
    assert!(
        !host_namespaces
            .iter()
            .any(|n| n.starts_with("ghost") || n == "elsewhere"),
        "{host_namespaces:?}"
    );

    // Fixing the cause heals the cluster: the wrong token replaced by a good one.
    secret(&host, "garbage", &good_token).await;
    wait_for(&api, "wrong-token", WAIT, |c| {
        condition(&c.status.as_ref()?.conditions, "Ready")
            .filter(|r| r.is_true())
            .map(|_| ())
    })
    .await;
    wait_for(&plans, "over-bad-cluster", WAIT, |p| {
        condition(&p.status.as_ref()?.conditions, "Ready")
            .filter(|r| r.is_true())
            .map(|_| ())
    })
    .await;

    assert!(
        !clusters.controller_log().contains(&good_token),
        "a token was logged"
    );
    clusters.stop();
}

async fn secret(client: &Client, name: &str, token: &str) {
    let encoded = base64::engine::general_purpose::STANDARD.encode(token);
    apply(
        client,
        NS,
        &format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\ndata:\n  saToken: {encoded}\n"),
    )
    .await;
}

async fn plan(client: &Client, name: &str, source: &str, namespaces: &str) {
    apply(client, NS, &format!(
        "apiVersion: migration.ferry.dev/v1alpha1\nkind: MigPlan\nmetadata:\n  name: {name}\nspec:\n\
         \x20 srcMigClusterRef: {{name: {source}}}\n  destMigClusterRef: {{name: host}}\n  namespaces: {namespaces}\n"
    ))
    .await;
}

async fn namespace_names(client: &Client) -> Vec<String> {
    let api: Api<Namespace> = Api::all(client.clone());
    let mut names: Vec<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|n| n.name_any())
        .collect();
    names.sort();
    names
}
