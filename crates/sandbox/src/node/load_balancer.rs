//! A stand-in for a cloud load balancer, labelled as such: it gives each LoadBalancer Service of the
//! cluster an address from `10.203.<cluster>.0/24` (from .10 up; `status.loadBalancer.ingress`) and the
//! sandbox namespace a route for that range via the node (`10.200.<cluster>.2`). Traffic to the address
//! reaches the node, where kube-proxy's rules for load-balancer IPs forward it to the Service's pods,
//! as behind a cloud's pass-through (VIP) load balancer. Nothing listens on the address itself.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client};

use super::Addressing;
use super::netns::run;
use crate::Result;

/// The running stand-in: its assignment loop and its route.
#[derive(Debug)]
pub(crate) struct LoadBalancer {
    task: tokio::task::JoinHandle<()>,
    range: String,
    /// While set, no address is assigned: a cloud load balancer still provisioning.
    held: Arc<AtomicBool>,
}

impl LoadBalancer {
    /// Adds the route and starts assigning addresses (every 500 ms).
    pub(crate) fn start(client: Client, addressing: Addressing) -> Result<Self> {
        let range = addressing.load_balancer_cidr();
        let via = addressing.node_ip().to_string();
        run(Command::new("ip").args(["route", "replace", &range, "via", &via]))?;
        let held = Arc::new(AtomicBool::new(false));
        let holding = held.clone();
        let task = tokio::spawn(async move {
            loop {
                if holding.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
                if let Err(err) = assign(&client, addressing).await {
                    tracing::debug!("load balancer stand-in: {err}");
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        Ok(Self { task, range, held })
    }

    /// Stops (`true`) or resumes (`false`) assigning addresses; Services keep those they have.
    pub(crate) fn hold(&self, hold: bool) {
        self.held.store(hold, Ordering::Relaxed);
    }
}

impl Drop for LoadBalancer {
    fn drop(&mut self) {
        self.task.abort();
        let _ = Command::new("ip").args(["route", "del", &self.range]).output();
    }
}

/// Gives every LoadBalancer Service without an address the lowest free one.
async fn assign(client: &Client, addressing: Addressing) -> Result<()> {
    let services = Api::<Service>::all(client.clone())
        .list(&ListParams::default())
        .await?;
    let ingress_ip = |s: &Service| -> Option<String> {
        s.status
            .as_ref()?
            .load_balancer
            .as_ref()?
            .ingress
            .as_ref()?
            .first()?
            .ip
            .clone()
    };
    let mut used: BTreeSet<String> = services.items.iter().filter_map(ingress_ip).collect();
    for service in &services.items {
        let is_lb = service.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer");
        if !is_lb || ingress_ip(service).is_some() {
            continue;
        }
        let Some(ip) = (10..=250)
            .map(|host| Ipv4Addr::new(10, 203, addressing.cluster, host).to_string())
            .find(|ip| !used.contains(ip))
        else {
            return Ok(());
        };
        let namespace = service.metadata.namespace.as_deref().unwrap_or("default");
        let name = service.metadata.name.as_deref().unwrap_or_default();
        let patch =
            serde_json::json!({"status": {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}}});
        Api::<Service>::namespaced(client.clone(), namespace)
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        used.insert(ip);
    }
    Ok(())
}
