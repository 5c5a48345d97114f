//! Which endpoint the receivers get, in one place (STYLE 4/12): the plan's `endpointType` when it
//! names one, else what works — ClusterIP inside one cluster, a Route where the target serves the
//! Route API, else a LoadBalancer Service if it gets an address within the plan's bound, else the same
//! Services turned into NodePorts. Pure: the step observes the facts and acts on the [`Choice`].
//!
//! ```text
//!  asked? ──yes──▶ ClusterIP across two clusters? ──yes──▶ Refuse
//!    │ no                    │ no ──▶ Use(asked)
//!    ▼
//!  same cluster ──▶ ClusterIP      Route API ──▶ Route
//!  receivers already NodePort ──▶ NodePort (fell back earlier)
//!  LoadBalancer with an address ──▶ LoadBalancer
//!  LoadBalancer younger than the bound ──▶ Wait      older ──▶ ConvertToNodePort
//! ```

use std::time::Duration;

use crate::api::plan::EndpointType;

/// What the receiver Services look like now (all of one migration's receivers together).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServicesSeen {
    /// Not all created yet.
    Missing,
    /// At least one was turned into a NodePort: the fallback was decided before.
    NodePort,
    /// LoadBalancer Services; `addressed` when every one has an ingress address, `age` of the oldest.
    LoadBalancer {
        /// Every Service has an ingress IP or hostname.
        addressed: bool,
        /// How long the oldest has existed.
        age: Duration,
    },
    /// Some other type (ClusterIP behind a Route, or made by another choice).
    Other,
}

/// What the step observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facts {
    /// The plan's `transfer.endpointType`.
    pub asked: Option<EndpointType>,
    /// Source and target are one cluster (the same MigCluster, or both `isHostCluster`).
    pub same_cluster: bool,
    /// The target serves `route.openshift.io/v1`.
    pub route_api: bool,
    /// The receiver Services as they are.
    pub services: ServicesSeen,
    /// The plan's bound on the wait for a load-balancer address.
    pub load_balancer_wait: Duration,
}

/// What to do about the receivers' endpoint; every variant carries the line the step message shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Choice {
    /// Create (or keep) Services of this type.
    Use {
        /// The endpoint type.
        endpoint: EndpointType,
        /// `endpoint NodePort: …`, for the step message.
        why: String,
    },
    /// No receiver Service yet and nothing better: create LoadBalancer Services and see whether an
    /// address comes. `once_addressed` is the line to report if it does (in this pass or a later one).
    TryLoadBalancer {
        /// `endpoint LoadBalancer: no Route API; trying a load balancer for up to 30s, then NodePort`.
        why: String,
        /// `endpoint LoadBalancer: no Route API; the load balancer assigned an address`.
        once_addressed: String,
    },
    /// LoadBalancer Services exist without an address, still within the bound: look again.
    WaitForLoadBalancer {
        /// What is awaited and until when.
        why: String,
    },
    /// The bound passed without an address: turn the LoadBalancer Services into NodePorts.
    ConvertToNodePort {
        /// `endpoint NodePort: no Route API and no load-balancer address after 30s`.
        why: String,
    },
    /// The asked type cannot work; the step fails with this message.
    Refuse(String),
}

impl Choice {
    /// The endpoint type the receivers have, or will have, after this choice.
    pub fn endpoint(&self) -> Option<EndpointType> {
        match self {
            Choice::Use { endpoint, .. } => Some(*endpoint),
            Choice::TryLoadBalancer { .. } | Choice::WaitForLoadBalancer { .. } => {
                Some(EndpointType::LoadBalancer)
            }
            Choice::ConvertToNodePort { .. } => Some(EndpointType::NodePort),
            Choice::Refuse(_) => None,
        }
    }
}

fn name(endpoint: EndpointType) -> &'static str {
    match endpoint {
        EndpointType::Route => "Route",
        EndpointType::NodePort => "NodePort",
        EndpointType::ClusterIP => "ClusterIP",
        EndpointType::LoadBalancer => "LoadBalancer",
    }
}

/// The one chooser.
pub fn choose(facts: &Facts) -> Choice {
    let use_ = |endpoint: EndpointType, why: &str| Choice::Use {
        endpoint,
        why: format!("endpoint {}: {why}", name(endpoint)),
    };
    if let Some(asked) = facts.asked {
        if asked == EndpointType::ClusterIP && !facts.same_cluster {
            return Choice::Refuse(
                "transfer.endpointType is ClusterIP, but the source and target are different clusters, and a \
                 Service IP is reachable only inside its own; use NodePort, LoadBalancer or Route, or leave \
                 endpointType unset for Ferry to pick"
                    .into(),
            );
        }
        return use_(asked, "transfer.endpointType asks for it");
    }
    if facts.same_cluster {
        return use_(EndpointType::ClusterIP, "source and target are the same cluster");
    }
    if facts.route_api {
        return use_(EndpointType::Route, "the target serves the Route API");
    }
    let bound = facts.load_balancer_wait.as_secs();
    match facts.services {
        ServicesSeen::NodePort => use_(
            EndpointType::NodePort,
            &format!("no Route API and no load-balancer address after {bound}s"),
        ),
        ServicesSeen::LoadBalancer { addressed: true, .. } => {
            use_(EndpointType::LoadBalancer, LOAD_BALANCER_ADDRESSED)
        }
        ServicesSeen::LoadBalancer {
            addressed: false,
            age,
        } if age < facts.load_balancer_wait => Choice::WaitForLoadBalancer {
            why: format!(
                "endpoint LoadBalancer: no Route API; waiting up to {bound}s for a load-balancer address, \
                     then NodePort ({}s so far)",
                age.as_secs()
            ),
        },
        ServicesSeen::LoadBalancer { addressed: false, .. } => Choice::ConvertToNodePort {
            why: format!("endpoint NodePort: no Route API and no load-balancer address after {bound}s"),
        },
        ServicesSeen::Missing | ServicesSeen::Other => Choice::TryLoadBalancer {
            why: format!(
                "endpoint LoadBalancer: no Route API; trying a load balancer for up to {bound}s, then NodePort"
            ),
            once_addressed: format!("endpoint LoadBalancer: {LOAD_BALANCER_ADDRESSED}"),
        },
    }
}

const LOAD_BALANCER_ADDRESSED: &str = "no Route API; the load balancer assigned an address";

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(
        asked: Option<EndpointType>,
        same_cluster: bool,
        route_api: bool,
        services: ServicesSeen,
    ) -> Facts {
        Facts {
            asked,
            same_cluster,
            route_api,
            services,
            load_balancer_wait: Duration::from_secs(30),
        }
    }

    #[test]
    fn an_asked_type_is_used_and_a_cluster_ip_across_clusters_refused() {
        let asked = choose(&facts(
            Some(EndpointType::NodePort),
            true,
            true,
            ServicesSeen::Missing,
        ));
        assert_eq!(asked.endpoint(), Some(EndpointType::NodePort));
        let Choice::Refuse(message) = choose(&facts(
            Some(EndpointType::ClusterIP),
            false,
            false,
            ServicesSeen::Missing,
        )) else {
            panic!("ClusterIP across clusters must be refused");
        };
        assert!(
            message.contains("different clusters") && !message.contains('\n'),
            "{message}"
        );
        let inside = choose(&facts(
            Some(EndpointType::ClusterIP),
            true,
            false,
            ServicesSeen::Missing,
        ));
        assert_eq!(inside.endpoint(), Some(EndpointType::ClusterIP));
    }

    #[test]
    fn unset_picks_cluster_ip_then_route_then_load_balancer() {
        let same = choose(&facts(None, true, true, ServicesSeen::Missing));
        assert_eq!(
            same,
            Choice::Use {
                endpoint: EndpointType::ClusterIP,
                why: "endpoint ClusterIP: source and target are the same cluster".into()
            }
        );
        let route = choose(&facts(None, false, true, ServicesSeen::Missing));
        assert_eq!(route.endpoint(), Some(EndpointType::Route));
        let lb = choose(&facts(None, false, false, ServicesSeen::Missing));
        assert_eq!(lb.endpoint(), Some(EndpointType::LoadBalancer));
    }

    #[test]
    fn a_tried_load_balancer_reports_the_same_line_once_addressed_in_this_pass_or_a_later_one() {
        // An address may come within the pass that created the Services (a fast load balancer) or
        // in a later look; either way the step's final line says it was assigned, not still tried.
        let Choice::TryLoadBalancer { why, once_addressed } =
            choose(&facts(None, false, false, ServicesSeen::Missing))
        else {
            panic!("no Services yet and no Route API: try a load balancer");
        };
        assert_eq!(
            why,
            "endpoint LoadBalancer: no Route API; trying a load balancer for up to 30s, then NodePort"
        );
        let later = choose(&facts(
            None,
            false,
            false,
            ServicesSeen::LoadBalancer {
                addressed: true,
                age: Duration::from_secs(3),
            },
        ));
        assert_eq!(
            later,
            Choice::Use {
                endpoint: EndpointType::LoadBalancer,
                why: once_addressed.clone()
            }
        );
        assert_eq!(
            once_addressed,
            "endpoint LoadBalancer: no Route API; the load balancer assigned an address"
        );
    }

    #[test]
    fn a_load_balancer_without_an_address_waits_within_the_bound_then_becomes_a_node_port() {
        let seen = |addressed, secs| ServicesSeen::LoadBalancer {
            addressed,
            age: Duration::from_secs(secs),
        };
        assert!(matches!(
            choose(&facts(None, false, false, seen(false, 29))),
            Choice::WaitForLoadBalancer { .. }
        ));
        assert_eq!(
            choose(&facts(None, false, false, seen(false, 30))),
            Choice::ConvertToNodePort {
                why: "endpoint NodePort: no Route API and no load-balancer address after 30s".into()
            }
        );
        assert_eq!(
            choose(&facts(None, false, false, seen(true, 300))).endpoint(),
            Some(EndpointType::LoadBalancer),
            "an address in time keeps the load balancer"
        );
        // Once converted, later looks keep the NodePort (and say why).
        let kept = choose(&facts(None, false, false, ServicesSeen::NodePort));
        assert_eq!(
            kept,
            Choice::Use {
                endpoint: EndpointType::NodePort,
                why: "endpoint NodePort: no Route API and no load-balancer address after 30s".into()
            }
        );
        let zero = Facts {
            load_balancer_wait: Duration::ZERO,
            ..facts(None, false, false, seen(false, 0))
        };
        assert!(
            matches!(choose(&zero), Choice::ConvertToNodePort { .. }),
            "a zero bound never waits"
        );
    }
}
