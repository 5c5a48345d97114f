//! `MigStorage` reconciler. Ferry moves data directly, so a MigStorage only has to be well formed:
//! a known provider and a credentials Secret holding the keys that provider needs (MTC's names).

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::{Context, status};
use crate::Result;
use crate::api::condition::{self, READY};
use crate::api::storage::required_secret_keys;
use crate::api::{Category, Condition, MigStorage, MigStorageStatus};

/// Reconciles one `MigStorage`.
pub async fn reconcile(storage: Arc<MigStorage>, ctx: Arc<Context>) -> Result<Action> {
    let verdict = check(&ctx, &storage).await?;
    let ready = match &verdict {
        Ok(()) => Condition::holds(READY, Category::Required, "Ready", "The storage is ready."),
        Err((reason, message)) => Condition::fails(READY, Category::Critical, reason, message.clone()),
    };
    let current = storage.status.as_ref();
    let current_conditions = current.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let desired = MigStorageStatus {
        conditions: condition::merge(
            current_conditions,
            std::iter::once(ready)
                .chain(condition::unused_fields(&storage.spec.unused_fields()))
                .collect(),
            &status::now(),
        ),
        observed_generation: storage.metadata.generation,
    };
    status::apply(
        &ctx,
        storage.as_ref(),
        current,
        &desired,
        current_conditions,
        &desired.conditions,
    )
    .await?;
    Ok(Action::requeue(if verdict.is_ok() {
        ctx.resync
    } else {
        ctx.retry
    }))
}

type Verdict = std::result::Result<(), (&'static str, String)>;

async fn check(ctx: &Context, storage: &MigStorage) -> Result<Verdict> {
    let spec = &storage.spec;
    let provider = spec.backup_storage_provider.as_str();
    let Some(keys) = required_secret_keys(provider) else {
        return Ok(Err((
            "InvalidProvider",
            format!("spec.backupStorageProvider {provider:?} is not one of aws, gcp, azure"),
        )));
    };
    let Some(secret_ref) = spec.backup_storage_config.creds_secret_ref.as_ref() else {
        return Ok(Err((
            "SecretNotFound",
            "spec.backupStorageConfig.credsSecretRef is not set".into(),
        )));
    };
    let own_ns = storage.namespace().unwrap_or_default();
    let ns = secret_ref.namespace_or(&own_ns);
    let secret = Api::<Secret>::namespaced(ctx.client.clone(), ns)
        .get_opt(&secret_ref.name)
        .await?;
    let Some(secret) = secret else {
        return Ok(Err((
            "SecretNotFound",
            format!("Secret {ns}/{} does not exist", secret_ref.name),
        )));
    };
    Ok(missing_keys(&secret, keys).map_or(Ok(()), |missing| {
        Err((
            "SecretKeyMissing",
            format!(
                "Secret {ns}/{} lacks the {provider} key(s) {}",
                secret_ref.name,
                missing.join(", ")
            ),
        ))
    }))
}

/// The `keys` absent (or empty) in the Secret, or `None` when all are there.
fn missing_keys(secret: &Secret, keys: &[&str]) -> Option<Vec<String>> {
    let has = |key: &str| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .is_some_and(|v| !v.0.is_empty())
            || secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(key))
                .is_some_and(|v| !v.is_empty())
    };
    let missing: Vec<String> = keys.iter().filter(|k| !has(k)).map(|k| k.to_string()).collect();
    (!missing.is_empty()).then_some(missing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    #[test]
    fn missing_keys_are_listed() {
        let mut secret = Secret {
            data: Some([("aws-access-key-id".to_string(), ByteString(b"id".to_vec()))].into()),
            ..Secret::default()
        };
        let keys = required_secret_keys("aws").unwrap();
        assert_eq!(
            missing_keys(&secret, keys),
            Some(vec!["aws-secret-access-key".to_string()])
        );
        secret
            .data
            .as_mut()
            .unwrap()
            .insert("aws-secret-access-key".into(), ByteString(b"k".to_vec()));
        assert_eq!(missing_keys(&secret, keys), None);
    }
}
