//! `MigHook`: a custom image that MTC (and Ferry) runs as a Job at one phase of a cutover, in the source
//! or the destination cluster — to flush a database before the source stops, to warm caches after the
//! target starts. MTC's v1alpha1 fields, all accepted; a playbook hook (`custom: false`) is accepted by
//! the schema and reported Critical: Ferry has no Ansible runner. A plan names hooks in `spec.hooks`
//! with a [`HookPhase`]; the pipeline runs them (docs/pipeline.md).

use base64::Engine as _;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Category, Condition, Step};

/// MTC's default `activeDeadlineSeconds` of a hook Job.
pub const DEFAULT_DEADLINE_SECONDS: i64 = 1800;

/// Spec of a `MigHook` (MTC field names; all optional in the schema so a bad one gets a condition).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[kube(
    group = "migration.ferry.dev",
    version = "v1alpha1",
    kind = "MigHook",
    namespaced,
    status = "MigHookStatus",
    shortname = "fhook",
    category = "ferry",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Image","type":"string","jsonPath":".spec.image"}"#,
    printcolumn = r#"{"name":"TargetCluster","type":"string","jsonPath":".spec.targetCluster"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct MigHookSpec {
    /// `true`: run `image` with its own entrypoint (the only kind Ferry runs). `false`: MTC's Ansible
    /// `playbook`, which Ferry does not run (the hook is reported `PlaybookNotSupported`).
    #[serde(default)]
    pub custom: bool,
    /// The image the hook's Job runs.
    #[serde(default)]
    pub image: String,
    /// MTC: an Ansible playbook, base64-encoded (only with `custom: false`; not run by Ferry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub playbook: Option<String>,
    /// Where the Job runs: `source` or `destination`.
    #[serde(default)]
    pub target_cluster: String,
    /// The Job's `activeDeadlineSeconds`: a hook running longer fails (default 1800).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<i64>,
}

/// Status of a `MigHook`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigHookStatus {
    /// `Ready`, or one Critical condition per problem found (all of them at once) and `Ready=False`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` these conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The cluster a hook's Job runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetCluster {
    /// The plan's source cluster.
    Source,
    /// The plan's destination (target) cluster.
    Destination,
}

impl TargetCluster {
    /// MTC's spelling, as in `spec.targetCluster`.
    pub const fn as_str(self) -> &'static str {
        match self {
            TargetCluster::Source => "source",
            TargetCluster::Destination => "destination",
        }
    }
}

/// When a plan's hook runs (MTC's `MigPlanHook.phase`); each is one step of the cutover itinerary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum HookPhase {
    /// Before QuiesceSource: the source app still runs.
    PreBackup,
    /// After the final copy (FinalSync and Verify), the source stopped.
    PostBackup,
    /// Before UnquiesceTarget: the data is on the target, the app not started there.
    PreRestore,
    /// After EnsureTargetReady: the app runs on the target, DNS not flipped yet.
    PostRestore,
}

impl HookPhase {
    /// Every phase, in the order a cutover runs them.
    pub const ALL: [HookPhase; 4] = [
        HookPhase::PreBackup,
        HookPhase::PostBackup,
        HookPhase::PreRestore,
        HookPhase::PostRestore,
    ];

    /// MTC's name of the phase.
    pub const fn as_str(self) -> &'static str {
        match self {
            HookPhase::PreBackup => "PreBackup",
            HookPhase::PostBackup => "PostBackup",
            HookPhase::PreRestore => "PreRestore",
            HookPhase::PostRestore => "PostRestore",
        }
    }

    /// The phase named `name` (exact spelling, as MTC).
    pub fn parse(name: &str) -> Option<HookPhase> {
        HookPhase::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// The itinerary step that runs the hooks of this phase.
    pub const fn step(self) -> Step {
        match self {
            HookPhase::PreBackup => Step::PreBackupHooks,
            HookPhase::PostBackup => Step::PostBackupHooks,
            HookPhase::PreRestore => Step::PreRestoreHooks,
            HookPhase::PostRestore => Step::PostRestoreHooks,
        }
    }

    /// The phase a hook step runs, `None` for the other steps.
    pub fn of_step(step: Step) -> Option<HookPhase> {
        HookPhase::ALL.into_iter().find(|p| p.step() == step)
    }
}

impl MigHookSpec {
    /// The cluster the Job runs in, or why `targetCluster` names none.
    pub fn cluster(&self) -> Result<TargetCluster, String> {
        match self.target_cluster.as_str() {
            "source" => Ok(TargetCluster::Source),
            "destination" => Ok(TargetCluster::Destination),
            other => Err(format!(
                "spec.targetCluster is {other:?}; it must be source or destination"
            )),
        }
    }

    /// The Job's deadline in seconds (MTC's default when unset or zero).
    pub fn deadline_seconds(&self) -> i64 {
        self.active_deadline_seconds
            .filter(|s| *s != 0)
            .unwrap_or(DEFAULT_DEADLINE_SECONDS)
    }

    /// Every problem that keeps Ferry from running the hook, each a Critical condition (MTC's types
    /// where MTC has one), all at once. Empty: the hook is Ready.
    pub fn problems(&self) -> Vec<Condition> {
        let problem = |type_: &str, reason: &str, message: String| {
            Condition::holds(type_, Category::Critical, reason, message)
        };
        let mut problems = Vec::new();
        let playbook = self.playbook.as_deref().filter(|p| !p.is_empty());
        if !self.custom {
            problems.push(problem(
                "InvalidAnsibleHook",
                "PlaybookNotSupported",
                "spec.custom is false (an Ansible playbook hook): Ferry has no Ansible runner; use \
                 custom: true with an image that runs the hook's work."
                    .into(),
            ));
        } else if playbook.is_some() {
            problems.push(problem(
                "InvalidCustomHook",
                "PlaybookWithCustom",
                "spec.playbook must not be set when spec.custom is true (the image runs with its own \
                 command)."
                    .into(),
            ));
        }
        if let Some(playbook) = playbook
            && base64::engine::general_purpose::STANDARD
                .decode(playbook)
                .is_err()
        {
            problems.push(problem(
                "InvalidPlaybookData",
                "NotBase64",
                "spec.playbook must be a base64-encoded playbook.".into(),
            ));
        }
        if self.custom && self.image.trim().is_empty() {
            problems.push(problem(
                "InvalidImage",
                "NotSet",
                "spec.image is empty; name the image the hook's Job runs.".into(),
            ));
        } else if self.image.chars().any(|c| c.is_whitespace() || c.is_uppercase()) {
            problems.push(problem(
                "InvalidImage",
                "InvalidReference",
                format!("spec.image {:?} is not an image reference.", self.image),
            ));
        }
        if let Err(why) = self.cluster() {
            problems.push(problem("InvalidTarget", "NotSet", format!("{why}.")));
        }
        if self.active_deadline_seconds.is_some_and(|s| s < 0) {
            problems.push(problem(
                "InvalidActiveDeadline",
                "Negative",
                "spec.activeDeadlineSeconds must be positive (0 or unset: 1800).".into(),
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn custom(image: &str, cluster: &str) -> MigHookSpec {
        MigHookSpec {
            custom: true,
            image: image.into(),
            target_cluster: cluster.into(),
            ..MigHookSpec::default()
        }
    }

    #[test]
    fn a_custom_image_hook_is_ready() {
        let spec = custom("registry.example/flush:1.2", "source");
        assert!(spec.problems().is_empty(), "{:?}", spec.problems());
        assert_eq!(spec.cluster(), Ok(TargetCluster::Source));
        assert_eq!(spec.deadline_seconds(), 1800);
        let spec = MigHookSpec {
            active_deadline_seconds: Some(30),
            ..custom("flush", "destination")
        };
        assert_eq!(spec.cluster(), Ok(TargetCluster::Destination));
        assert_eq!(spec.deadline_seconds(), 30);
    }

    #[test]
    fn a_playbook_hook_says_there_is_no_ansible_runner() {
        let spec = MigHookSpec {
            custom: false,
            image: "quay.io/konveyor/hook-runner:latest".into(),
            playbook: Some("LSBob3N0czogYWxsCg==".into()),
            target_cluster: "source".into(),
            ..MigHookSpec::default()
        };
        let problems = spec.problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].reason.as_deref(), Some("PlaybookNotSupported"));
        assert!(
            problems[0]
                .message
                .as_deref()
                .unwrap()
                .contains("no Ansible runner")
        );
    }

    #[test]
    fn every_problem_is_listed_at_once() {
        let spec = MigHookSpec {
            custom: true,
            image: String::new(),
            playbook: Some("not base64!".into()),
            target_cluster: "elsewhere".into(),
            active_deadline_seconds: Some(-1),
        };
        let types: Vec<String> = spec.problems().into_iter().map(|c| c.type_).collect();
        assert_eq!(
            types,
            [
                "InvalidCustomHook",
                "InvalidPlaybookData",
                "InvalidImage",
                "InvalidTarget",
                "InvalidActiveDeadline"
            ]
        );
        let bad = custom("Not An Image", "source").problems();
        assert_eq!(bad[0].reason.as_deref(), Some("InvalidReference"));
    }

    #[test]
    fn phases_map_to_their_steps_and_back() {
        for phase in HookPhase::ALL {
            assert_eq!(HookPhase::parse(phase.as_str()), Some(phase));
            assert_eq!(HookPhase::of_step(phase.step()), Some(phase));
        }
        assert_eq!(HookPhase::parse("prebackup"), None);
        assert_eq!(HookPhase::of_step(Step::FinalSync), None);
    }
}
