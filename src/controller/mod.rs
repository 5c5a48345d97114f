//! The reconcilers that drive the custom resources.
