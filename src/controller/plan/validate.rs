//! Pure checks of a `MigPlan` spec that need no cluster. Every problem found becomes its own
//! Critical condition, so a user sees all of them at once.

use std::collections::BTreeMap;

use crate::api::plan::{Action, MigPlanSpec, NameMapping, PersistentVolume};
use crate::api::{Category, Condition};
use crate::triggers::schedule::Schedule;

/// Parsed namespace mappings, or the conditions explaining why they are invalid.
pub(crate) fn namespace_mappings(spec: &MigPlanSpec) -> Result<Vec<NameMapping>, Vec<Condition>> {
    let mut mappings = Vec::new();
    let mut problems = Vec::new();
    for entry in &spec.namespaces {
        match NameMapping::parse(entry) {
            Ok(mapping) => mappings.push(mapping),
            Err(why) => problems.push(why),
        }
    }
    if spec.namespaces.is_empty() {
        problems.push("spec.namespaces is empty; list at least one source namespace".into());
    }
    let mut targets: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for mapping in &mappings {
        targets.entry(&mapping.target).or_default().push(&mapping.source);
    }
    for (target, sources) in targets.iter().filter(|(_, sources)| sources.len() > 1) {
        problems.push(format!("namespaces {} all map to {target:?}", sources.join(", ")));
    }
    if problems.is_empty() {
        Ok(mappings)
    } else {
        Err(vec![Condition::holds(
            "InvalidNamespaceMapping",
            Category::Critical,
            "InvalidNamespaceMapping",
            format!("Invalid spec.namespaces: {}.", problems.join("; ")),
        )])
    }
}

/// Problems with settings Ferry does not support or that contradict each other.
pub(crate) fn unsupported(spec: &MigPlanSpec) -> Vec<Condition> {
    let mut conditions = Vec::new();
    let indirect: Vec<&str> = [
        ("indirectVolumeMigration", spec.indirect_volume_migration),
        ("indirectImageMigration", spec.indirect_image_migration),
    ]
    .into_iter()
    .filter(|(_, value)| *value == Some(true))
    .map(|(field, _)| field)
    .collect();
    if !indirect.is_empty() {
        conditions.push(Condition::holds(
            "UnsupportedIndirectMigration",
            Category::Critical,
            "IndirectMigrationUnsupported",
            format!(
                "Ferry transfers data directly with rsync; set {} to false (images are not migrated).",
                indirect.join(" and ")
            ),
        ));
    }
    if let Some(transfer) = &spec.transfer
        && let Err(problem) =
            crate::api::mover_identity::resolve(transfer.identity_fields(), Default::default())
    {
        conditions.push(Condition::holds(
            "InvalidMoverIdentity",
            Category::Critical,
            problem.reason,
            problem.message,
        ));
    }
    if let Some(gitops) = &spec.gitops {
        let mut missing = Vec::new();
        if gitops.repo.url.trim().is_empty() {
            missing.push("gitops.repo.url");
        }
        if gitops.source_path.trim().is_empty() {
            missing.push("gitops.sourcePath");
        }
        if !missing.is_empty() {
            conditions.push(Condition::holds(
                "InvalidGitOps",
                Category::Critical,
                "InvalidGitOps",
                format!("{} must not be empty.", missing.join(" and ")),
            ));
        }
    }
    conditions
}

/// The condition type of each problem with a `spec.persistentVolumes` entry (several may be present).
pub(crate) const INVALID_VOLUME_SELECTION: &str = "InvalidVolumeSelection";

/// `spec.persistentVolumes[i]`, with the entry's PVC name when it has one, for messages.
pub(crate) fn entry_label(index: usize, entry: &PersistentVolume) -> String {
    let pvc = entry.pvc.as_ref();
    match (
        pvc.and_then(|p| p.namespace.as_deref()),
        pvc.and_then(|p| p.name.as_deref()),
    ) {
        (Some(ns), Some(name)) if !ns.is_empty() => format!("spec.persistentVolumes[{index}] ({ns}/{name})"),
        (_, Some(name)) => format!("spec.persistentVolumes[{index}] ({name})"),
        _ => format!("spec.persistentVolumes[{index}]"),
    }
}

/// Problems with the `spec.persistentVolumes` entries that need no cluster (one Critical condition per
/// problem), and one Warn condition listing the entries whose `move` is treated like `copy`.
pub(crate) fn volume_entries(spec: &MigPlanSpec) -> Vec<Condition> {
    let mut conditions = Vec::new();
    let mut moved = Vec::new();
    let problem = |reason: &str, message: String| {
        Condition::holds(INVALID_VOLUME_SELECTION, Category::Critical, reason, message)
    };
    for (index, entry) in spec.persistent_volumes.iter().enumerate() {
        let label = entry_label(index, entry);
        match entry.pvc.as_ref().and_then(|p| p.name.as_deref()) {
            None | Some("") => conditions.push(problem(
                "MissingPvcName",
                format!("{label} has no pvc.name; name the source PVC (src or src:dest)."),
            )),
            Some(name) => {
                if let Err(why) = NameMapping::parse(name) {
                    conditions.push(problem("InvalidPvcName", format!("{label}: pvc.name {why}.")));
                }
            }
        }
        let action = entry.selection.as_ref().and_then(|s| s.action.as_deref());
        match Action::parse(action) {
            Err(why) => conditions.push(problem("UnknownAction", format!("{label}: selection.{why}."))),
            Ok(Action::Move) => moved.push(label),
            Ok(_) => {}
        }
    }
    if !moved.is_empty() {
        conditions.push(Condition::holds(
            "VolumeMoveTreatedAsCopy",
            Category::Warn,
            "MoveTreatedAsCopy",
            format!(
                "Ferry always copies volumes; selection.action move is treated like copy for {}.",
                moved.join(", ")
            ),
        ));
    }
    conditions
}

/// The parsed `spec.schedule`, `None` when there is none, or the `InvalidSchedule` condition.
pub(crate) fn schedule(spec: &MigPlanSpec) -> Result<Option<Schedule>, Box<Condition>> {
    let Some(expression) = spec.schedule.as_deref().filter(|e| !e.trim().is_empty()) else {
        return Ok(None);
    };
    Schedule::parse(expression, spec.time_zone.as_deref())
        .map(Some)
        .map_err(|err| {
            let why = match err {
                crate::Error::InvalidSchedule(why) => why,
                other => other.to_string(),
            };
            Box::new(Condition::holds(
                "InvalidSchedule",
                Category::Critical,
                "InvalidSchedule",
                format!("{why}. No scheduled stage runs until it is fixed."),
            ))
        })
}

/// `spec.triggers.onPush` needs `spec.gitops` (the repo and paths to watch).
pub(crate) fn triggers(spec: &MigPlanSpec) -> Option<Condition> {
    let on_push = spec.triggers.as_ref().is_some_and(|t| t.on_push);
    (on_push && spec.gitops.is_none()).then(|| {
        Condition::holds(
            "InvalidTriggers",
            Category::Critical,
            "OnPushWithoutGitOps",
            "spec.triggers.onPush needs spec.gitops (the repository, branch and paths to watch).",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(namespaces: &[&str]) -> MigPlanSpec {
        MigPlanSpec {
            namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
            ..MigPlanSpec::default()
        }
    }

    #[test]
    fn all_mapping_problems_are_reported_together() {
        let problems = namespace_mappings(&spec(&["ok", "Bad", "a:b:c", "x:ok"])).unwrap_err();
        let message = problems[0].message.as_deref().unwrap();
        assert!(message.contains("\"Bad\""), "{message}");
        assert!(message.contains("\"a:b:c\""), "{message}");
        assert!(message.contains("all map to \"ok\""), "{message}");
    }

    #[test]
    fn valid_mappings_parse() {
        let mappings = namespace_mappings(&spec(&["app", "db:db-new"])).unwrap();
        assert_eq!(mappings[1].target, "db-new");
    }

    #[test]
    fn indirect_migration_is_refused_with_the_fields_named() {
        let mut plan = spec(&["app"]);
        plan.indirect_volume_migration = Some(true);
        plan.indirect_image_migration = Some(false);
        let conditions = unsupported(&plan);
        assert_eq!(conditions.len(), 1);
        let message = conditions[0].message.as_deref().unwrap();
        assert!(message.contains("indirectVolumeMigration") && !message.contains("indirectImageMigration"));
    }

    #[test]
    fn a_bad_schedule_or_zone_is_one_condition_naming_the_field() {
        let mut plan = spec(&["app"]);
        assert!(matches!(schedule(&plan), Ok(None)));
        plan.schedule = Some("*/5 * * *".into());
        let condition = schedule(&plan).unwrap_err();
        assert_eq!(condition.type_, "InvalidSchedule");
        assert!(
            condition.message.as_deref().unwrap().contains("spec.schedule"),
            "{condition:?}"
        );
        plan.schedule = Some("0 2 * * *".into());
        plan.time_zone = Some("Europe/Atlantis".into());
        let condition = schedule(&plan).unwrap_err();
        assert!(
            condition.message.as_deref().unwrap().contains("spec.timeZone"),
            "{condition:?}"
        );
        plan.time_zone = Some("Europe/Berlin".into());
        assert!(matches!(schedule(&plan), Ok(Some(_))));
    }

    #[test]
    fn every_bad_volume_entry_is_its_own_condition() {
        use crate::api::plan::{PvcEntry, Selection};
        let entry = |name: Option<&str>, action: Option<&str>| PersistentVolume {
            pvc: Some(PvcEntry {
                name: name.map(str::to_string),
                ..PvcEntry::default()
            }),
            selection: action.map(|a| Selection {
                action: Some(a.to_string()),
                ..Selection::default()
            }),
            ..PersistentVolume::default()
        };
        let mut plan = spec(&["app"]);
        plan.persistent_volumes = vec![
            entry(Some("data"), Some("copy")),
            entry(None, Some("copy")),
            entry(Some("logs"), Some("shred")),
            entry(Some("Bad:x"), None),
            entry(Some("cache"), Some("move")),
        ];
        let conditions = volume_entries(&plan);
        let reasons: Vec<_> = conditions.iter().map(|c| c.reason.as_deref().unwrap()).collect();
        assert_eq!(
            reasons,
            [
                "MissingPvcName",
                "UnknownAction",
                "InvalidPvcName",
                "MoveTreatedAsCopy"
            ]
        );
        assert!(
            conditions[..3]
                .iter()
                .all(|c| c.type_ == INVALID_VOLUME_SELECTION)
        );
        assert!(conditions[1].message.as_deref().unwrap().contains("[2] (logs)"));
        assert_eq!(conditions[3].category, Category::Warn);
    }

    #[test]
    fn a_contradicting_mover_identity_default_is_one_condition() {
        let mut plan = spec(&["shop"]);
        plan.transfer = Some(crate::api::plan::Transfer {
            run_as_root: Some(true),
            run_as_user: Some(1000),
            ..Default::default()
        });
        let conditions = unsupported(&plan);
        assert_eq!(conditions.len(), 1, "{conditions:?}");
        assert_eq!(conditions[0].type_, "InvalidMoverIdentity");
        assert_eq!(conditions[0].reason.as_deref(), Some("RootWithUser"));
        plan.transfer.as_mut().unwrap().run_as_root = Some(false);
        assert!(unsupported(&plan).is_empty(), "a restricted default is valid");
    }

    #[test]
    fn on_push_needs_gitops() {
        let mut plan = spec(&["app"]);
        plan.triggers = Some(crate::api::plan::Triggers {
            on_push: true,
            ..Default::default()
        });
        assert_eq!(triggers(&plan).unwrap().type_, "InvalidTriggers");
        plan.gitops = Some(Default::default());
        assert!(triggers(&plan).is_none());
    }
}
