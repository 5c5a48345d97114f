//! The pipeline's steps: idempotent `ensure_*` ladders that observe the clusters, create what is
//! missing and report a [`StepOutcome`](super::StepOutcome). One file per concern.

pub mod destination;
