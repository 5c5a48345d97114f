//! The itinerary steps as a closed set (DESIGN.md §3). `MigMigration.status.pipeline[].name` keeps
//! MTC's step names as strings; inside Ferry a step is always a [`Step`], so a `match` on it is
//! checked for completeness and a misspelt name cannot compile.

use std::fmt;

macro_rules! steps {
    ($($(#[doc = $doc:literal])* $name:ident),* $(,)?) => {
        /// One step of an itinerary.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Step {
            $($(#[doc = $doc])* $name,)*
        }

        impl Step {
            /// Every step, in no particular itinerary's order.
            pub const ALL: &'static [Step] = &[$(Step::$name,)*];

            /// The step's name as MTC shows it in `status.pipeline[].name`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Step::$name => stringify!($name),)*
                }
            }
        }
    };
}

steps! {
    /// Checks the plan, records the volumes this migration moves, removes other runs' movers.
    Prepare,
    /// Creates the plan's namespaces in the target cluster.
    CreateDestinationNamespaces,
    /// Creates (or checks) the target PVC of every volume.
    CreateDestinationPVCs,
    /// Issues the per-migration certificates.
    CreateMoverSecrets,
    /// Creates the receivers' Services (and Routes).
    CreateMoverEndpoints,
    /// Starts receivers, then this pass's senders.
    CreateMoverPods,
    /// Follows the senders until every one reported success.
    WaitForTransfer,
    /// Removes the stage's movers.
    CleanupMovers,
    /// A stage sync inside the cutover, while the app still runs.
    StageSync,
    /// Lowers the TTL of the records the cutover flips.
    LowerDNSTTL,
    /// Runs the plan's PreBackup hook (MTC's `PreBackupHooks`), the source app still running.
    PreBackupHooks,
    /// Stops the source app (downtime starts).
    QuiesceSource,
    /// Waits until no pod mounts a moved volume.
    EnsureSourceQuiesced,
    /// The last sync, with the source stopped.
    FinalSync,
    /// Compares source and target without changing either.
    Verify,
    /// Runs the plan's PostBackup hook, after the final copy (the source stopped).
    PostBackupHooks,
    /// Runs the plan's PreRestore hook, before the app starts on the target.
    PreRestoreHooks,
    /// Starts the app on the target.
    UnquiesceTarget,
    /// Waits until the target app is ready.
    EnsureTargetReady,
    /// Runs the plan's PostRestore hook, the app running on the target.
    PostRestoreHooks,
    /// Points the DNS records at the target.
    FlipDNS,
    /// Waits until DNS serves the new records (downtime ends).
    VerifyDNS,
    /// Removes every temporary object of the cutover.
    Cleanup,
    /// Rollback: DNS back to the recorded records.
    RestoreDNS,
    /// Rollback: stops the app on the target.
    QuiesceTarget,
    /// Rollback: starts the source app with its recorded values.
    UnquiesceSource,
    /// Rollback: reverts Ferry's commits still in effect.
    RevertCommits,
}

impl Step {
    /// The step of this name, if it is one of this build's.
    pub fn parse(name: &str) -> Option<Step> {
        Step::ALL.iter().copied().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<Step> for String {
    fn eq(&self, other: &Step) -> bool {
        self == other.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for step in Step::ALL {
            assert_eq!(Step::parse(step.as_str()), Some(*step));
        }
        assert_eq!(Step::parse("Migrate"), None);
        assert_eq!(Step::LowerDNSTTL.to_string(), "LowerDNSTTL");
    }
}
