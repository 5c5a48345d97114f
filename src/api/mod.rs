//! The custom resources of `migration.ferry.dev/v1alpha1` (DESIGN.md §2).
