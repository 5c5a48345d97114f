//! `MigHook` reconciler: the hook is Ready when Ferry can run it (a custom image, a known target
//! cluster); otherwise one Critical condition per problem ([`MigHookSpec::problems`]), all at once. A
//! playbook hook is accepted and reported `PlaybookNotSupported`: Ferry has no Ansible runner. Nothing
//! here touches a cluster but the hook's own status; the plan reconciler checks hooks it names itself.

use std::sync::Arc;

use kube::runtime::controller::Action;

use super::{Context, status};
use crate::Result;
use crate::api::condition::{self, READY};
use crate::api::{Category, Condition, MigHook, MigHookSpec, MigHookStatus};

/// Reconciles one `MigHook`.
pub async fn reconcile(hook: Arc<MigHook>, ctx: Arc<Context>) -> Result<Action> {
    let conditions = conditions(&hook.spec);
    let current = hook.status.as_ref();
    let current_conditions = current.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let desired = MigHookStatus {
        conditions: condition::merge(current_conditions, conditions, &status::now()),
        observed_generation: hook.metadata.generation,
    };
    status::apply(
        &ctx,
        hook.as_ref(),
        current,
        &desired,
        current_conditions,
        &desired.conditions,
    )
    .await?;
    Ok(Action::requeue(ctx.resync))
}

/// The hook's problems, then `Ready` (true when there are none).
fn conditions(spec: &MigHookSpec) -> Vec<Condition> {
    let mut conditions = spec.problems();
    conditions.push(if conditions.is_empty() {
        Condition::holds(READY, Category::Required, "Ready", "The hook is ready.")
    } else {
        Condition::fails(
            READY,
            Category::Required,
            "NotReady",
            format!(
                "The hook has {} problem(s); see the other conditions.",
                conditions.len()
            ),
        )
    });
    conditions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_without_problems() {
        let good = MigHookSpec {
            custom: true,
            image: "warm:1".into(),
            target_cluster: "destination".into(),
            ..MigHookSpec::default()
        };
        let ready = conditions(&good);
        assert_eq!(ready.len(), 1);
        assert!(ready[0].is_true());
        let bad = conditions(&MigHookSpec::default());
        let last = bad.last().unwrap();
        assert_eq!(last.type_, READY);
        assert!(!last.is_true());
        assert!(
            bad.iter()
                .any(|c| c.reason.as_deref() == Some("PlaybookNotSupported"))
        );
    }
}
