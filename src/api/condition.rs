//! MTC-shaped status conditions and the pure rules for updating them without churn.
//!
//! Reconcilers compute the complete set of conditions they want each time; [`merge`] folds that into
//! the stored set so a condition that did not change keeps its `lastTransitionTime`, durable
//! conditions survive until replaced, and an unchanged set compares equal (so no status write happens).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The `Ready` condition type, present on every Ferry resource.
pub const READY: &str = "Ready";

/// How serious a condition is, as in MTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum Category {
    /// Blocks all progress; the user must change something.
    Critical,
    /// An operation failed.
    Error,
    /// Worth a look, does not block.
    Warn,
    /// A state the resource must reach (e.g. `Ready`).
    Required,
    /// Information only (e.g. `Running` with `Step: N/M`).
    Advisory,
}

/// One status condition, MTC style: `type`, `status`, `reason`, `category`, `message`, `durable`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// The condition type, e.g. `Ready`, `InvalidNamespaceMapping`, `Running`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True` or `False`.
    pub status: String,
    /// A PascalCase machine-readable cause, e.g. `SecretNotFound`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How serious it is.
    pub category: Category,
    /// A sentence a user can act on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Durable conditions stay until explicitly replaced (e.g. `Succeeded`), instead of being
    /// recomputed on every reconcile.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub durable: bool,
    /// When `status` last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}

// === impl Condition ===

impl Condition {
    /// A condition that holds (`status: True`).
    pub fn holds(type_: &str, category: Category, reason: &str, message: impl Into<String>) -> Self {
        Self::new(type_, true, category, reason, message)
    }

    /// A condition that does not hold (`status: False`).
    pub fn fails(type_: &str, category: Category, reason: &str, message: impl Into<String>) -> Self {
        Self::new(type_, false, category, reason, message)
    }

    fn new(type_: &str, status: bool, category: Category, reason: &str, message: impl Into<String>) -> Self {
        Self {
            type_: type_.to_string(),
            status: if status { "True" } else { "False" }.to_string(),
            reason: Some(reason.to_string()),
            category,
            message: Some(message.into()),
            durable: false,
            last_transition_time: None,
        }
    }

    /// Marks the condition durable.
    pub fn durable(mut self) -> Self {
        self.durable = true;
        self
    }

    /// Whether `status` is `True`.
    pub fn is_true(&self) -> bool {
        self.status == "True"
    }

    fn same_content(&self, other: &Condition) -> bool {
        self.type_ == other.type_
            && self.status == other.status
            && self.reason == other.reason
            && self.category == other.category
            && self.message == other.message
            && self.durable == other.durable
    }
}

/// The condition type reporting MTC fields that are accepted but not used.
pub const UNUSED_FIELDS: &str = "UnusedFields";

/// The `UnusedFields` Warn condition naming `fields` (each `spec.x (why)`), or none when empty.
pub fn unused_fields(fields: &[String]) -> Option<Condition> {
    (!fields.is_empty()).then(|| {
        Condition::holds(
            UNUSED_FIELDS,
            Category::Warn,
            "AcceptedForCompatibility",
            format!(
                "fields accepted for MTC compatibility and not used by Ferry: {}",
                fields.join(", ")
            ),
        )
    })
}

/// Finds a condition by type.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition `type_` is present with `status: True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(Condition::is_true)
}

/// Sets one condition in place: replaces the one of the same type (keeping its `lastTransitionTime`
/// when `status` did not change) or adds it, keeping the list sorted by type.
pub fn set(conditions: &mut Vec<Condition>, mut wanted: Condition, now: &Time) {
    let old = conditions
        .iter()
        .position(|c| c.type_ == wanted.type_)
        .map(|i| conditions.remove(i));
    wanted.last_transition_time = match old {
        Some(old) if old.status == wanted.status => old.last_transition_time.or_else(|| Some(now.clone())),
        _ => Some(now.clone()),
    };
    let at = conditions.partition_point(|c| c.type_ < wanted.type_);
    conditions.insert(at, wanted);
}

/// Removes the condition of type `type_`, if present.
pub fn remove(conditions: &mut Vec<Condition>, type_: &str) {
    conditions.retain(|c| c.type_ != type_);
}

/// Folds the freshly computed `desired` conditions into `current`.
///
/// - A desired condition equal in content to the current one keeps the current `lastTransitionTime`.
/// - A changed one gets `now` when its status flipped (or it is new), else keeps the old time.
/// - Current non-durable conditions absent from `desired` are dropped; durable ones are kept.
///
/// The result is sorted by type, so equal inputs give byte-equal output and no spurious status write.
pub fn merge(current: &[Condition], desired: Vec<Condition>, now: &Time) -> Vec<Condition> {
    let mut out: Vec<Condition> = current
        .iter()
        .filter(|c| c.durable && !desired.iter().any(|d| d.type_ == c.type_))
        .cloned()
        .collect();
    for mut wanted in desired {
        let same = current.iter().find(|c| c.same_content(&wanted));
        wanted.last_transition_time = match same.or_else(|| find(current, &wanted.type_)) {
            Some(old) if old.same_content(&wanted) || old.status == wanted.status => {
                old.last_transition_time.clone().or_else(|| Some(now.clone()))
            }
            _ => Some(now.clone()),
        };
        out.push(wanted);
    }
    out.sort_by(|a, b| a.type_.cmp(&b.type_));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    fn ready(status: bool, msg: &str) -> Condition {
        if status {
            Condition::holds(READY, Category::Required, "Ready", msg)
        } else {
            Condition::fails(READY, Category::Required, "NotReady", msg)
        }
    }

    #[test]
    fn unchanged_conditions_keep_their_time_and_compare_equal() {
        let first = merge(&[], vec![ready(true, "ok")], &at(10));
        let second = merge(&first, vec![ready(true, "ok")], &at(20));
        assert_eq!(first, second);
        assert_eq!(second[0].last_transition_time, Some(at(10)));
    }

    #[test]
    fn a_status_flip_takes_the_new_time() {
        let first = merge(&[], vec![ready(true, "ok")], &at(10));
        let second = merge(&first, vec![ready(false, "gone")], &at(20));
        assert_eq!(second[0].last_transition_time, Some(at(20)));
        assert_eq!(second[0].message.as_deref(), Some("gone"));
    }

    #[test]
    fn a_message_change_without_flip_keeps_the_time() {
        let first = merge(&[], vec![ready(false, "a")], &at(10));
        let second = merge(&first, vec![ready(false, "b")], &at(20));
        assert_eq!(second[0].last_transition_time, Some(at(10)));
        assert_eq!(second[0].message.as_deref(), Some("b"));
    }

    #[test]
    fn non_durable_conditions_vanish_and_durable_ones_stay() {
        let problem = Condition::holds("InvalidNamespaceMapping", Category::Critical, "Bad", "x");
        let done = Condition::holds("Succeeded", Category::Advisory, "Completed", "done").durable();
        let first = merge(&[], vec![problem, done], &at(10));
        assert_eq!(first.len(), 2);
        let second = merge(&first, vec![ready(true, "ok")], &at(20));
        let types: Vec<_> = second.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["Ready", "Succeeded"]);
    }

    #[test]
    fn set_replaces_in_place_and_keeps_the_time_while_status_holds() {
        let mut list = Vec::new();
        set(
            &mut list,
            Condition::holds("Running", Category::Advisory, "A", "Step: 1/3"),
            &at(10),
        );
        set(
            &mut list,
            Condition::holds("Ready", Category::Required, "Ready", "ok"),
            &at(11),
        );
        set(
            &mut list,
            Condition::holds("Running", Category::Advisory, "B", "Step: 2/3"),
            &at(20),
        );
        assert_eq!(
            list.iter().map(|c| c.type_.as_str()).collect::<Vec<_>>(),
            ["Ready", "Running"]
        );
        assert_eq!(list[1].message.as_deref(), Some("Step: 2/3"));
        assert_eq!(list[1].last_transition_time, Some(at(10)));
        remove(&mut list, "Running");
        assert_eq!(list.len(), 1);
    }

    #[test]
    fn several_conditions_of_one_type_keep_their_own_times() {
        let problem =
            |reason: &str| Condition::holds("InvalidVolumeSelection", Category::Critical, reason, "m");
        let first = merge(&[], vec![problem("A")], &at(10));
        let second = merge(&first, vec![problem("A"), problem("B")], &at(20));
        let third = merge(&second, vec![problem("A"), problem("B")], &at(30));
        assert_eq!(second, third, "no churn");
        let times: Vec<_> = third.iter().map(|c| c.last_transition_time.clone()).collect();
        assert_eq!(times, [Some(at(10)), Some(at(10))]);
    }

    #[test]
    fn unused_fields_are_one_warning_or_none() {
        assert_eq!(unused_fields(&[]), None);
        let fields = [
            "spec.restartRestic (no Restic)".to_string(),
            "spec.refresh".to_string(),
        ];
        let warning = unused_fields(&fields).unwrap();
        assert_eq!(
            (warning.type_.as_str(), warning.category),
            (UNUSED_FIELDS, Category::Warn)
        );
        assert_eq!(
            warning.message.as_deref(),
            Some(
                "fields accepted for MTC compatibility and not used by Ferry: spec.restartRestic (no Restic), \
                 spec.refresh"
            )
        );
    }

    #[test]
    fn output_is_sorted_by_type() {
        let b = Condition::holds("B", Category::Warn, "R", "m");
        let a = Condition::holds("A", Category::Warn, "R", "m");
        let merged = merge(&[], vec![b, a], &at(1));
        assert_eq!(merged[0].type_, "A");
    }
}
