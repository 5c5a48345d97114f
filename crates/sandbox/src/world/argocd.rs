//! The sandbox's Argo CD: the Applications Commit mode applies through, played by Argo CD itself
//! (`crate::argocd_real`, `make argocd`) or by the stand-in (`crate::argocd`), one per cluster
//! (`shop-source` → the source's `clusters/source`, `shop-target` → the target's `clusters/target`), in
//! the host cluster like a hub Argo CD.

use std::time::Duration;

use super::{APP_NAMESPACE, FERRY_NAMESPACE, GIT_USER, REPO, Sandbox};
use crate::argocd_real::{self, ArgoCd};
use crate::{Error, Result};

impl Sandbox {
    /// Commit mode ([`Sandbox::create_plan`]) applies its commits through Argo CD itself
    /// (`argocd_real`, `make argocd`) instead of the stand-in.
    pub fn use_real_argocd(&mut self) {
        self.real_argocd = true;
    }

    /// Argo CD itself, once started.
    pub fn argocd(&self) -> Option<&ArgoCd> {
        self.argocd.as_ref()
    }

    /// Where the Applications are: Argo CD's namespace with Argo CD itself, Ferry's with the stand-in.
    pub fn applications_namespace(&self) -> &'static str {
        if self.real_argocd {
            argocd_real::NAMESPACE
        } else {
            FERRY_NAMESPACE
        }
    }

    /// Starts Argo CD itself with the app's repo (its credentials), the source cluster registered, and
    /// the same two Applications as the stand-in's (`shop-source`, `shop-target`, in namespace `argocd`).
    pub async fn start_real_argocd(&mut self) -> Result<()> {
        self.real_argocd = true;
        let dir = self.dir.join("argocd");
        let argocd = ArgoCd::start(&self.target, &self.host_client, &dir).await?;
        let url = self.git.url(REPO);
        argocd
            .add_repository(&self.host_client, &url, GIT_USER, &self.git_password)
            .await?;
        let source = argocd
            .register_cluster(&self.host_client, "source", &self.source)
            .await?;
        for (side, server) in [("source", source.as_str()), ("target", argocd_real::IN_CLUSTER)] {
            let name = format!("{APP_NAMESPACE}-{side}");
            let path = format!("clusters/{side}");
            argocd
                .create_application(&self.host_client, &name, &url, &path, server, APP_NAMESPACE)
                .await?;
        }
        self.argocd = Some(argocd);
        Ok(())
    }

    /// Commit mode needs someone to apply the commits: the Argo CD stand-in (or Argo CD itself, see
    /// [`Sandbox::use_real_argocd`]), one Application per cluster (`shop-source` → the source's
    /// `clusters/source`, `shop-target` → the target's `clusters/target`), in the host cluster like a
    /// hub Argo CD.
    pub(super) async fn start_argocd(&mut self) -> Result<()> {
        if self.real_argocd {
            return self.start_real_argocd().await;
        }
        crate::argocd::install_application_crd(&self.host_client).await?;
        let url = self.git.url(REPO);
        let credentials = ferry::git::Credentials::UserPassword {
            username: GIT_USER.into(),
            password: self.git_password.clone(),
        };
        for (side, cluster) in [("source", &self.source_client), ("target", &self.host_client)] {
            let name = format!("{APP_NAMESPACE}-{side}");
            crate::argocd::create_application(
                &self.host_client,
                FERRY_NAMESPACE,
                &name,
                &url,
                &format!("clusters/{side}"),
                APP_NAMESPACE,
            )
            .await?;
            self.appliers.push(crate::argocd::spawn_applier(
                self.host_client.clone(),
                cluster.clone(),
                FERRY_NAMESPACE,
                &name,
                credentials.clone(),
                self.dir.join(format!("argocd-{side}")),
            ));
        }
        Ok(())
    }

    /// Waits until both Applications are Synced at the repo's head with their operation (if any)
    /// Succeeded: Argo CD itself only (the stand-in applies on its own schedule and reports no
    /// operation); fails with their status and Argo CD's log tails.
    pub async fn wait_applications_synced(&self, timeout: Duration) -> Result<()> {
        let Some(argocd) = &self.argocd else {
            return Err(Error::Sandbox(
                "Argo CD itself is not running in this sandbox (start_real_argocd)".into(),
            ));
        };
        let head = self.git_head();
        for side in ["source", "target"] {
            let name = format!("{APP_NAMESPACE}-{side}");
            if let Err(last) = argocd_real::wait_synced(&self.host_client, &name, &head, timeout).await {
                return Err(Error::Sandbox(format!(
                    "Application {name} not Synced at {head} within {timeout:?}: {last:#}\n{}",
                    argocd.log_tails(40)
                )));
            }
        }
        Ok(())
    }
}
