//! Argo CD awareness (DESIGN.md §4). An Application with automated sync and `selfHeal` would undo a
//! Patch-mode quiesce within seconds, so Ferry either pauses its automated sync — recording the
//! previous policy on the Application so it is restored exactly — or refuses with a reason that
//! recommends Commit mode. Pure functions over the Application's JSON; the CRD is not a dependency.

use serde_json::{Value, json};

/// Annotation on an Application holding its `spec.syncPolicy.automated` before Ferry paused it.
pub const PRE_AUTOMATED: &str = "migration.ferry.dev/pre-pause-automated";

/// Argo CD's refresh request: set to `normal` on an Application, Argo CD re-reads the repository now
/// (instead of at its next poll, every 3 minutes by default) and removes the annotation.
pub const REFRESH_ANNOTATION: &str = "argocd.argoproj.io/refresh";

/// The merge patch asking Argo CD to refresh the Application, unless a refresh is already requested.
pub fn refresh_patch(application: &Value) -> Option<Value> {
    let requested = application["metadata"]["annotations"][REFRESH_ANNOTATION].is_string();
    (!requested).then(|| json!({"metadata": {"annotations": {REFRESH_ANNOTATION: "normal"}}}))
}

/// `(group, version, kind, plural)` of Argo CD Applications.
pub const APPLICATION_API: (&str, &str, &str, &str) =
    ("argoproj.io", "v1alpha1", "Application", "applications");

/// Whether the Application syncs automatically and heals drift (so it would revert a patch).
pub fn self_heals(application: &Value) -> bool {
    let automated = &application["spec"]["syncPolicy"]["automated"];
    automated.is_object()
        && automated["selfHeal"].as_bool().unwrap_or(false)
        && automated["enabled"].as_bool().unwrap_or(true)
}

/// The revision the Application last synced (`status.sync.revision`), if any.
pub fn synced_revision(application: &Value) -> Option<&str> {
    application["status"]["sync"]["revision"].as_str()
}

/// Whether the Application reports `revision` synced and healthy.
pub fn has_applied(application: &Value, revision: &str) -> bool {
    synced_revision(application) == Some(revision)
        && application["status"]["sync"]["status"].as_str() == Some("Synced")
        && application["status"]["health"]["status"]
            .as_str()
            .is_none_or(|h| h == "Healthy")
}

/// The merge patch that pauses automated sync, recording the previous policy; `None` when there is
/// nothing to pause or it is already paused by Ferry.
pub fn pause_patch(application: &Value) -> Option<Value> {
    let automated = &application["spec"]["syncPolicy"]["automated"];
    if !automated.is_object() {
        return None;
    }
    Some(json!({
        "metadata": {"annotations": {PRE_AUTOMATED: automated.to_string()}},
        "spec": {"syncPolicy": {"automated": null}},
    }))
}

/// The merge patch that restores the automated policy Ferry paused; `None` when Ferry paused nothing.
pub fn resume_patch(application: &Value) -> Option<Value> {
    let recorded = application["metadata"]["annotations"][PRE_AUTOMATED].as_str()?;
    let automated: Value = serde_json::from_str(recorded).ok()?;
    Some(json!({
        "metadata": {"annotations": {PRE_AUTOMATED: null}},
        "spec": {"syncPolicy": {"automated": automated}},
    }))
}

/// The reason Patch mode is refused for a self-healing Application when pausing is not allowed.
pub fn refusal(application_name: &str) -> String {
    format!(
        "Argo CD Application {application_name} has automated sync with selfHeal and would revert a \
         Patch-mode quiesce; set gitops.quiesce.method to Commit (recommended) or gitops.pauseAutoSync to true"
    )
}

/// The reason Patch mode is refused for a self-healing *target* Application: Git keeps the target's
/// workloads at their committed replicas (zero before a cutover), so Argo CD would scale down what
/// UnquiesceTarget starts.
pub fn target_refusal(application_name: &str) -> String {
    format!(
        "Argo CD Application {application_name} (the target's) has automated sync with selfHeal and would \
         scale the app Patch mode starts on the target back to the replicas in Git; set \
         gitops.quiesce.method to Commit (recommended) or gitops.pauseAutoSync to true (it then stays \
         paused after the cutover until you commit the target's replicas and re-enable it)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusals_name_the_application_and_the_ways_out_in_one_line() {
        for message in [
            refusal("argocd/shop-source"),
            target_refusal("argocd/shop-target"),
        ] {
            assert!(!message.contains('\n'), "{message}");
            assert!(message.contains("gitops.quiesce.method to Commit"), "{message}");
            assert!(message.contains("gitops.pauseAutoSync"), "{message}");
        }
        assert!(target_refusal("argocd/shop-target").contains("(the target's)"));
    }

    fn app(automated: Value) -> Value {
        json!({"metadata": {"name": "shop"}, "spec": {"syncPolicy": {"automated": automated, "syncOptions": ["A=B"]}}})
    }

    #[test]
    fn self_heal_is_detected_only_when_automated_and_enabled() {
        assert!(self_heals(&app(json!({"selfHeal": true, "prune": true}))));
        assert!(!self_heals(&app(json!({"prune": true}))));
        assert!(!self_heals(&app(json!({"selfHeal": true, "enabled": false}))));
        assert!(!self_heals(&json!({"spec": {}})));
    }

    #[test]
    fn pause_then_resume_restores_the_policy_exactly() {
        let original = app(json!({"selfHeal": true, "prune": true}));
        let mut application = original.clone();
        let pause = pause_patch(&application).unwrap();
        json_patch::merge(&mut application, &pause);
        assert!(!self_heals(&application));
        assert_eq!(pause_patch(&application), None, "pausing twice is a no-op");
        let resume = resume_patch(&application).unwrap();
        json_patch::merge(&mut application, &resume);
        assert_eq!(application["spec"], original["spec"]);
        assert_eq!(resume_patch(&application), None);
    }

    #[test]
    fn applied_means_synced_to_that_revision_and_healthy() {
        let status = |rev: &str, sync: &str, health: &str| json!({"status": {"sync": {"revision": rev, "status": sync}, "health": {"status": health}}});
        assert!(has_applied(&status("abc", "Synced", "Healthy"), "abc"));
        assert!(!has_applied(&status("abc", "OutOfSync", "Healthy"), "abc"));
        assert!(!has_applied(&status("old", "Synced", "Healthy"), "abc"));
        assert!(!has_applied(&status("abc", "Synced", "Degraded"), "abc"));
    }

    #[test]
    fn a_refresh_is_requested_once() {
        let fresh = json!({"metadata": {"name": "shop"}});
        let patch = refresh_patch(&fresh).unwrap();
        assert_eq!(patch["metadata"]["annotations"][REFRESH_ANNOTATION], "normal");
        let requested = json!({"metadata": {"annotations": {REFRESH_ANNOTATION: "normal"}}});
        assert_eq!(refresh_patch(&requested), None);
    }
}
