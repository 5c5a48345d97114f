//! The pipeline's steps: idempotent `ensure_*` ladders that observe the clusters, create what is
//! missing and report a [`StepOutcome`](super::StepOutcome). One file per concern; [`run`] maps a
//! step name of DESIGN.md §3 to its ladder.

pub mod destination;
pub mod gitops;

use super::{StepContext, StepOutcome};
use crate::Result;

/// Runs one step of the current itinerary. Every step is safe to run again after any outcome or a
/// crash: it observes what exists first.
pub async fn run(step: &str, ctx: &StepContext) -> Result<StepOutcome> {
    match step {
        "CreateDestinationNamespaces" => destination::ensure_namespaces(&ctx.target, &ctx.plan).await,
        "CreateDestinationPVCs" => destination::ensure_pvcs(&ctx.source, &ctx.target, &ctx.plan).await,
        other => Ok(StepOutcome::Failed(format!(
            "step {other} is not part of this Ferry build"
        ))),
    }
}
