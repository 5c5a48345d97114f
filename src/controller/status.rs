//! Writing status without churn: a reconciler hands over the whole status it wants; it is written (with
//! server-side apply on the status subresource) only when it differs from what is stored, and every
//! condition that changed is also published as a Kubernetes Event on the object.

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Context;
use crate::Result;
use crate::api::{Category, Condition, condition};

/// The field manager Ferry's status writes are made under.
const FIELD_MANAGER: &str = "ferry-controller";

/// The current time as a Kubernetes `Time`, whole seconds (what the API server stores, so a
/// re-read status compares equal).
pub(crate) fn now() -> Time {
    Time(Timestamp::from_second(Timestamp::now().as_second()).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// Writes `desired` as the status of `object` when it differs from `current`, and publishes one Event
/// for each condition of `desired` that is new or changed compared with `current_conditions`.
pub(crate) async fn apply<K, S>(
    ctx: &Context,
    object: &K,
    current: Option<&S>,
    desired: &S,
    current_conditions: &[Condition],
    desired_conditions: &[Condition],
) -> Result<()>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
    S: Serialize + PartialEq,
{
    if current == Some(desired) {
        return Ok(());
    }
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &object.namespace().unwrap_or_default());
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": desired,
    });
    let written = api
        .patch_status(
            &object.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    ctx.written.record(object, written.resource_version());
    publish_changes(ctx, object, current_conditions, desired_conditions).await;
    Ok(())
}

/// Publishes an Event for each changed condition. Events are best effort: a failure is logged, not
/// returned, so a flaky events API never blocks a status update.
async fn publish_changes<K>(ctx: &Context, object: &K, before: &[Condition], after: &[Condition])
where
    K: Resource<DynamicType = ()>,
{
    let reference = object.object_ref(&());
    for changed in changed_conditions(before, after) {
        let warning = matches!(
            changed.category,
            Category::Critical | Category::Error | Category::Warn
        ) || (changed.type_ == condition::READY && !changed.is_true());
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: changed.reason.clone().unwrap_or_else(|| changed.type_.clone()),
            note: changed.message.clone(),
            action: changed.type_.clone(),
            secondary: None,
        };
        if let Err(err) = ctx.recorder.publish(&event, &reference).await {
            tracing::debug!(error = %err, "publishing an event failed");
        }
    }
}

/// The conditions of `after` that are new or differ from `before` in status, reason or message. The
/// kstatus conditions (`Reconciling`, `Stalled`) repeat `Running` and `Failed` word for word: they
/// are written, but publishing them would double the Events of every step (issue #13).
pub(crate) fn changed_conditions<'a>(before: &[Condition], after: &'a [Condition]) -> Vec<&'a Condition> {
    use crate::pipeline::kstatus::{RECONCILING, STALLED};
    after
        .iter()
        .filter(|c| c.type_ != RECONCILING && c.type_ != STALLED)
        .filter(|c| match condition::find(before, &c.type_) {
            Some(old) => old.status != c.status || old.reason != c.reason || old.message != c.message,
            None => true,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_new_or_changed_conditions_are_reported() {
        let ready = Condition::holds("Ready", Category::Required, "Ready", "ok");
        let problem = Condition::holds("InvalidNamespaceMapping", Category::Critical, "Bad", "x");
        let before = vec![ready.clone()];
        let after = vec![ready.clone(), problem.clone()];
        let changed: Vec<_> = changed_conditions(&before, &after).into_iter().cloned().collect();
        assert_eq!(changed, vec![problem]);
        assert!(changed_conditions(&after, &after).is_empty());
    }

    #[test]
    fn the_kstatus_copies_of_running_and_failed_publish_no_events() {
        let reconciling = Condition::holds("Reconciling", Category::Advisory, "Prepare", "Step: 1/8");
        let stalled = Condition::holds("Stalled", Category::Critical, "Verify", "differ");
        let running = Condition::holds("Running", Category::Advisory, "Prepare", "Step: 1/8");
        let after = vec![reconciling, stalled, running.clone()];
        let changed: Vec<_> = changed_conditions(&[], &after).into_iter().cloned().collect();
        assert_eq!(changed, vec![running]);
    }
}
