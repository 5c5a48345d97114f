//! The controller's HTTP endpoints: `/healthz` (the process serves requests), `/readyz` (it reaches the
//! host cluster's API server) and `/metrics` (Prometheus text format), on `--http-addr`. Every replica
//! serves them, leader or follower, and the git push webhook (`POST /hooks/git`, [`super::webhook`]).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::routing::get;
use kube::Client;

use super::metrics::Metrics;
use crate::{Error, Result};

/// Binds `addr` and serves the probes in the background; returns the bound address.
pub async fn serve(addr: SocketAddr, client: Client, metrics: Arc<Metrics>) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(Error::io(format!("listening on {addr}")))?;
    let bound = listener
        .local_addr()
        .map_err(Error::io("reading the bound address"))?;
    let app = router(client, metrics);
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            tracing::error!("the HTTP server stopped: {err}");
        }
    });
    tracing::info!(address = %bound, "serving /healthz, /readyz, /metrics and /hooks/git");
    Ok(bound)
}

fn router(client: Client, metrics: Arc<Metrics>) -> Router {
    let exposition = Router::new()
        .route("/metrics", get(export))
        .with_state(metrics.clone());
    let hooks = super::webhook::router(client.clone(), metrics);
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(client)
        .merge(exposition)
        .merge(hooks)
}

async fn export(State(metrics): State<Arc<Metrics>>) -> ([(header::HeaderName, &'static str); 1], String) {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.encode(),
    )
}

/// Ready when the API server answers (a controller that cannot reach it can do nothing useful).
async fn ready(State(client): State<Client>) -> (StatusCode, String) {
    match client.apiserver_version().await {
        Ok(version) => (StatusCode::OK, format!("ok: API server {}", version.git_version)),
        Err(err) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("API server unreachable: {err}"),
        ),
    }
}
