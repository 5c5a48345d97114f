//! The plan's `spec.hooks`: each entry names an existing, valid MigHook, a known phase (one hook per
//! phase, as MTC), and the namespace and ServiceAccount its Job runs as. Every problem is listed at once,
//! one Critical condition per kind of problem (MTC's condition types), so a plan with a bad hook is not
//! Ready and no migration of it starts.

use kube::Api;

use crate::Result;
use crate::api::plan::PlanHook;
use crate::api::{Category, Condition, HookPhase, MigHook, MigHookSpec, MigPlanSpec};

/// Looks up the MigHook of every `spec.hooks` entry (in the plan's namespace unless the reference names
/// one) and returns the conditions for what is wrong with them.
pub(crate) async fn check(client: &kube::Client, spec: &MigPlanSpec, own_ns: &str) -> Result<Vec<Condition>> {
    let mut found = Vec::with_capacity(spec.hooks.len());
    for hook in &spec.hooks {
        let spec = match hook.reference.as_ref().filter(|r| !r.name.is_empty()) {
            None => None,
            Some(reference) => Api::<MigHook>::namespaced(client.clone(), reference.namespace_or(own_ns))
                .get_opt(&reference.name)
                .await?
                .map(|h| h.spec),
        };
        found.push(spec);
    }
    Ok(problems(&spec.hooks, &found, own_ns))
}

/// The conditions for `hooks` whose looked-up MigHook specs are `found` (`None`: no such MigHook).
pub(crate) fn problems(hooks: &[PlanHook], found: &[Option<MigHookSpec>], own_ns: &str) -> Vec<Condition> {
    let mut missing = Vec::new();
    let mut not_ready = Vec::new();
    let mut namespaces = Vec::new();
    let mut accounts = Vec::new();
    let mut unknown = Vec::new();
    let mut phases: Vec<(HookPhase, String)> = Vec::new();
    for (index, (hook, spec)) in hooks.iter().zip(found).enumerate() {
        let label = match &hook.reference {
            Some(reference) if !reference.name.is_empty() => format!(
                "spec.hooks[{index}] (MigHook {}/{})",
                reference.namespace_or(own_ns),
                reference.name
            ),
            _ => format!("spec.hooks[{index}]"),
        };
        match (hook.reference.as_ref().filter(|r| !r.name.is_empty()), spec) {
            (None, _) => missing.push(format!("{label} has no reference.name")),
            (Some(_), None) => missing.push(format!("{label} does not exist")),
            (Some(_), Some(spec)) => {
                let why: Vec<String> = spec.problems().into_iter().filter_map(|c| c.message).collect();
                if !why.is_empty() {
                    not_ready.push(format!("{label}: {}", why.join(" ")));
                }
            }
        }
        let namespace = hook.execution_namespace.as_deref().unwrap_or_default();
        if !is_dns_label(namespace) {
            namespaces.push(format!("{label} executionNamespace {namespace:?}"));
        }
        let account = hook.service_account.as_deref().unwrap_or_default();
        if !is_dns_subdomain(account) {
            accounts.push(format!("{label} serviceAccount {account:?}"));
        }
        match hook.phase() {
            Some(phase) => phases.push((phase, label)),
            None => unknown.push(format!(
                "{label} phase {:?}",
                hook.phase.as_deref().unwrap_or_default()
            )),
        }
    }
    let mut duplicates = Vec::new();
    for phase in HookPhase::ALL {
        let at: Vec<&str> = phases
            .iter()
            .filter(|(p, _)| *p == phase)
            .map(|(_, l)| l.as_str())
            .collect();
        if at.len() > 1 {
            duplicates.push(format!("{} by {}", phase.as_str(), at.join(" and ")));
        }
    }
    let mut conditions = Vec::new();
    let mut add = |type_: &str, reason: &str, problems: Vec<String>, advice: &str| {
        if !problems.is_empty() {
            conditions.push(Condition::holds(
                type_,
                Category::Critical,
                reason,
                format!("{}; {advice}", problems.join("; ")),
            ));
        }
    };
    add(
        "InvalidHookRef",
        "NotFound",
        missing,
        "name an existing MigHook in reference.",
    );
    add(
        "HookNotReady",
        "NotReady",
        not_ready,
        "fix the MigHook (see its conditions).",
    );
    add(
        "InvalidHookNSName",
        "NotSet",
        namespaces,
        "executionNamespace must be a namespace name (DNS-1123 label) in the hook's cluster.",
    );
    add(
        "InvalidHookSAName",
        "NotSet",
        accounts,
        "serviceAccount must be a ServiceAccount name (DNS-1123 subdomain) in executionNamespace.",
    );
    add(
        "HookPhaseUnknown",
        "NotSupported",
        unknown,
        "phase must be PreBackup, PostBackup, PreRestore or PostRestore.",
    );
    add(
        "HookPhaseDuplicate",
        "Duplicate",
        duplicates,
        "only one hook may run per phase.",
    );
    conditions
}

/// A DNS-1123 label: what a namespace name must be.
fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// A DNS-1123 subdomain: what a ServiceAccount name must be.
fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty() && name.len() <= 253 && name.split('.').all(is_dns_label)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ResourceRef;

    fn hook(name: &str, phase: &str) -> PlanHook {
        PlanHook {
            reference: Some(ResourceRef {
                name: name.into(),
                namespace: None,
            }),
            execution_namespace: Some("shop".into()),
            service_account: Some("default".into()),
            phase: Some(phase.into()),
        }
    }

    fn image() -> Option<MigHookSpec> {
        Some(MigHookSpec {
            custom: true,
            image: "flush:1".into(),
            target_cluster: "source".into(),
            ..MigHookSpec::default()
        })
    }

    #[test]
    fn valid_hooks_give_no_condition() {
        let hooks = [hook("flush", "PreBackup"), hook("warm", "PostRestore")];
        assert!(problems(&hooks, &[image(), image()], "ferry").is_empty());
    }

    #[test]
    fn every_problem_is_listed_at_once() {
        let playbook = MigHookSpec {
            playbook: Some("LSBob3N0czogYWxsCg==".into()),
            ..image().unwrap()
        };
        let playbook = MigHookSpec {
            custom: false,
            ..playbook
        };
        let mut unnamed = hook("", "PostBackup");
        unnamed.reference = None;
        let mut bad_names = hook("warm", "PreRestore");
        bad_names.execution_namespace = None;
        bad_names.service_account = Some("Not_A_Name".into());
        let hooks = [
            hook("gone", "PreBackup"),
            hook("ansible", "PreBackup"),
            unnamed,
            bad_names,
            hook("warm", "AfterEverything"),
        ];
        let found = [None, Some(playbook), None, image(), image()];
        let conditions = problems(&hooks, &found, "ferry");
        let types: Vec<&str> = conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(
            types,
            [
                "InvalidHookRef",
                "HookNotReady",
                "InvalidHookNSName",
                "InvalidHookSAName",
                "HookPhaseUnknown",
                "HookPhaseDuplicate"
            ]
        );
        let message = |i: usize| conditions[i].message.clone().unwrap();
        assert!(message(0).contains("spec.hooks[0] (MigHook ferry/gone) does not exist"));
        assert!(message(0).contains("spec.hooks[2] has no reference.name"));
        assert!(message(1).contains("no Ansible runner"), "{}", message(1));
        assert!(message(2).contains("spec.hooks[3]"));
        assert!(message(3).contains("\"Not_A_Name\""));
        assert!(message(4).contains("\"AfterEverything\""));
        assert!(
            message(5).contains("PreBackup by spec.hooks[0]"),
            "{}",
            message(5)
        );
        assert!(conditions.iter().all(|c| c.category == Category::Critical));
    }

    #[test]
    fn names_follow_dns_1123() {
        assert!(is_dns_label("shop-1"));
        for bad in ["", "-shop", "shop-", "Shop", "a.b", &"a".repeat(64)] {
            assert!(!is_dns_label(bad), "{bad}");
        }
        assert!(is_dns_subdomain("hook.runner"));
        assert!(!is_dns_subdomain("hook..runner"));
    }
}
