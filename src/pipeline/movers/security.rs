//! The mover pods' security contexts and scratch space (docs/mover.md, "Privileges and hardening").
//!
//! By default movers run as uid 0 with every capability dropped and only what each side needs added
//! back; restricted identities get none. Either way: no privilege escalation, a read-only root
//! filesystem, the runtime's default seccomp profile, and one emptyDir at [`SCRATCH`] (with `TMPDIR`
//! pointing there) for everything a mover writes besides the volume and its termination message.

use serde_json::{Value, json};

use crate::api::MoverIdentity;

/// Where movers write their scratch files (a sender's file lists and manifests, rsync's temporary
/// files): an emptyDir, the only writable path besides the volume.
pub(super) const SCRATCH: &str = "/tmp";
/// The scratch volume's name in the pod spec.
pub(super) const SCRATCH_VOLUME: &str = "scratch";

/// Which end of the transfer a pod is: they need different capabilities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Reads the source volume.
    Send,
    /// Writes the target volume with the source's owners and modes.
    Receive,
}

/// What a root mover adds back after dropping ALL, and why each (docs/mover.md lists the same).
pub fn capabilities(side: Side) -> &'static [&'static str] {
    match side {
        // Read every file and traverse every directory whatever its mode (a database's 0700 tree).
        // Nothing else: --numeric-ids, --owner and --group only read the ids lstat returns.
        Side::Send => &["DAC_READ_SEARCH"],
        Side::Receive => &[
            // Set each file's owner and group (--owner, --group with --numeric-ids).
            "CHOWN",
            // Write into directories whose mode would shut root out (0500 trees while they fill).
            "DAC_OVERRIDE",
            // Set modes and times on files once they belong to another uid.
            "FOWNER",
            // Keep setuid/setgid bits that chown and chmod would otherwise clear.
            "FSETID",
            // Create the volume's device files (--devices). Without it rsync's daemon skips them and
            // only logs it: the sender still exits 0 (e2e/mover_privileges.rs found it). Opening a
            // device is what the container's device cgroup guards, not this.
            "MKNOD",
            // rsync's daemon sets its gid list (`gid = 0 …` in the generated config) before serving.
            "SETGID",
            // rsync's daemon chroots into the volume root (`use chroot = yes`).
            "SYS_CHROOT",
        ],
    }
}

/// The pod-level security context: who, the supplemental groups, the seccomp profile.
pub(super) fn pod_context(identity: MoverIdentity, groups: &[i64]) -> Value {
    let mut context = json!({"seccompProfile": {"type": "RuntimeDefault"}});
    if !groups.is_empty() {
        context["supplementalGroups"] = json!(groups);
    }
    let (user, group) = match identity {
        MoverIdentity::Root { group } => (Some(0), group),
        MoverIdentity::Restricted { user, group } => (user, group),
    };
    if let Some(user) = user {
        context["runAsUser"] = json!(user);
    }
    if let Some(group) = group {
        context["runAsGroup"] = json!(group);
    }
    // The image says USER 65532 and a namespace may insist on non-root: say which one this is.
    context["runAsNonRoot"] = json!(!identity.is_root());
    context
}

/// The container-level security context of `side`.
pub(super) fn container_context(identity: MoverIdentity, side: Side) -> Value {
    let add: &[&str] = if identity.is_root() {
        capabilities(side)
    } else {
        // A non-root process holds no capability after exec anyway; adding some would only make
        // admission policies refuse the pod.
        &[]
    };
    let mut capabilities = json!({"drop": ["ALL"]});
    if !add.is_empty() {
        capabilities["add"] = json!(add);
    }
    json!({
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true,
        "runAsNonRoot": !identity.is_root(),
        "capabilities": capabilities,
    })
}

/// The scratch emptyDir and its mount.
pub(super) fn scratch() -> (Value, Value) {
    (
        json!({"name": SCRATCH_VOLUME, "emptyDir": {}}),
        json!({"name": SCRATCH_VOLUME, "mountPath": SCRATCH}),
    )
}

/// `TMPDIR`, so every temporary file a mover or rsync makes lands in the scratch volume.
pub(super) fn tmpdir_env() -> Value {
    json!({"name": "TMPDIR", "value": SCRATCH})
}
