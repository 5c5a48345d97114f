//! Who the mover pods run as: MTC's `runAsRoot`, `runAsUser` and `runAsGroup` on the MigMigration,
//! over the same three fields as a default in the plan's `spec.transfer` (for clusters whose policy
//! refuses root pods). Pure: the admission check and the pod builders share [`resolve`].
//!
//! Rules (docs/api.md, "Mover identity"):
//! - The migration's fields, when any of the three is set, replace the plan's three as a whole (a
//!   migration asking `runAsRoot: true` is never mixed with a plan's `runAsUser`).
//! - Nothing set: root (uid 0) with only the capabilities preserving ownership needs, because a
//!   non-root sender cannot read a database's 0700 files and a non-root receiver cannot chown.
//! - `runAsRoot: true` wins over a missing `runAsUser` (MTC: it takes precedence); together with a
//!   non-zero `runAsUser` it contradicts itself and is refused, never guessed.
//! - `runAsRoot: false` without `runAsUser`: the image's user (`USER 65532`), `runAsNonRoot: true`.
//! - `runAsUser: 0` is root, whatever `runAsRoot` says unless it says `false` (refused too).

use serde::{Deserialize, Serialize};

/// The three MTC fields, wherever they were written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IdentityFields {
    /// `runAsRoot`.
    pub run_as_root: Option<bool>,
    /// `runAsUser`.
    pub run_as_user: Option<i64>,
    /// `runAsGroup`.
    pub run_as_group: Option<i64>,
}

impl IdentityFields {
    fn any_set(&self) -> bool {
        self.run_as_root.is_some() || self.run_as_user.is_some() || self.run_as_group.is_some()
    }
}

/// Who the movers run as, once resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MoverIdentity {
    /// uid 0, every capability dropped but the few each side needs (docs/mover.md, "Privileges").
    Root {
        /// `runAsGroup`, when asked for.
        group: Option<i64>,
    },
    /// A non-root uid (`None`: the image's `USER 65532`) with no capability at all: files it may not
    /// read fail the sender naming them; the receiver cannot set owners.
    Restricted {
        /// `runAsUser`.
        user: Option<i64>,
        /// `runAsGroup`.
        group: Option<i64>,
    },
}

impl MoverIdentity {
    /// Whether the movers run as uid 0.
    pub fn is_root(self) -> bool {
        matches!(self, MoverIdentity::Root { .. })
    }
}

/// Why a combination of the fields cannot run: a reason for the condition and a one-line message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityProblem {
    /// The condition's reason (CamelCase).
    pub reason: &'static str,
    /// One line saying what to change.
    pub message: String,
}

/// Where the winning fields came from, for messages.
fn origin(migration: bool) -> &'static str {
    if migration {
        "the MigMigration"
    } else {
        "the MigPlan's spec.transfer"
    }
}

/// The movers' identity: the migration's fields when it sets any, else the plan's, else root.
pub fn resolve(plan: IdentityFields, migration: IdentityFields) -> Result<MoverIdentity, IdentityProblem> {
    let from_migration = migration.any_set();
    let fields = if from_migration { migration } else { plan };
    let at = origin(from_migration);
    for (name, value) in [
        ("runAsUser", fields.run_as_user),
        ("runAsGroup", fields.run_as_group),
    ] {
        if let Some(id) = value.filter(|id| *id < 0) {
            return Err(IdentityProblem {
                reason: "NegativeId",
                message: format!("{name} of {at} is {id}; ids are 0 or more."),
            });
        }
    }
    let group = fields.run_as_group;
    match (fields.run_as_root, fields.run_as_user) {
        (Some(true), Some(user)) if user != 0 => Err(IdentityProblem {
            reason: "RootWithUser",
            message: format!("{at} sets runAsRoot: true and runAsUser: {user}; remove one (root is uid 0)."),
        }),
        (Some(false), Some(0)) => Err(IdentityProblem {
            reason: "NonRootWithUserZero",
            message: format!("{at} sets runAsRoot: false and runAsUser: 0; remove one (uid 0 is root)."),
        }),
        (Some(false), user) => Ok(MoverIdentity::Restricted { user, group }),
        (_, Some(user)) if user != 0 => Ok(MoverIdentity::Restricted {
            user: Some(user),
            group,
        }),
        _ => Ok(MoverIdentity::Root { group }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(root: Option<bool>, user: Option<i64>, group: Option<i64>) -> IdentityFields {
        IdentityFields {
            run_as_root: root,
            run_as_user: user,
            run_as_group: group,
        }
    }
    const NONE: IdentityFields = IdentityFields {
        run_as_root: None,
        run_as_user: None,
        run_as_group: None,
    };

    #[test]
    fn nothing_set_is_root_because_preserving_ownership_needs_it() {
        assert_eq!(resolve(NONE, NONE), Ok(MoverIdentity::Root { group: None }));
        assert_eq!(
            resolve(NONE, f(None, Some(0), Some(5))),
            Ok(MoverIdentity::Root { group: Some(5) })
        );
        assert_eq!(
            resolve(NONE, f(Some(true), None, None)),
            Ok(MoverIdentity::Root { group: None })
        );
        assert_eq!(
            resolve(NONE, f(Some(true), Some(0), None)),
            Ok(MoverIdentity::Root { group: None })
        );
    }

    #[test]
    fn a_restricted_plan_is_the_default_and_the_migration_overrides_it_whole() {
        let plan = f(Some(false), Some(1000), Some(1000));
        let restricted = MoverIdentity::Restricted {
            user: Some(1000),
            group: Some(1000),
        };
        assert_eq!(resolve(plan, NONE), Ok(restricted));
        // The migration's runAsRoot replaces the plan's three fields: no group 1000 leaks in.
        assert_eq!(
            resolve(plan, f(Some(true), None, None)),
            Ok(MoverIdentity::Root { group: None })
        );
        assert_eq!(
            resolve(NONE, f(Some(false), None, None)),
            Ok(MoverIdentity::Restricted {
                user: None,
                group: None
            }),
            "the image's user"
        );
        assert_eq!(
            resolve(NONE, f(None, Some(999), None)),
            Ok(MoverIdentity::Restricted {
                user: Some(999),
                group: None
            })
        );
    }

    #[test]
    fn contradictions_are_refused_with_a_reason_and_one_line() {
        let root_with_user = resolve(NONE, f(Some(true), Some(999), None)).unwrap_err();
        assert_eq!(root_with_user.reason, "RootWithUser");
        assert!(
            root_with_user.message.contains("runAsUser: 999") && !root_with_user.message.contains('\n'),
            "{}",
            root_with_user.message
        );
        let from_plan = resolve(f(Some(true), Some(7), None), NONE).unwrap_err();
        assert!(from_plan.message.contains("MigPlan"), "{}", from_plan.message);
        assert_eq!(
            resolve(NONE, f(Some(false), Some(0), None)).unwrap_err().reason,
            "NonRootWithUserZero"
        );
        assert_eq!(
            resolve(NONE, f(None, None, Some(-1))).unwrap_err().reason,
            "NegativeId"
        );
    }
}
