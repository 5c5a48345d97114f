//! The controller's HTTP endpoints for its pod: `/healthz` (the process serves requests) and `/readyz`
//! (it reaches the host cluster's API server), on `--http-addr`. Every replica serves them, leader or
//! follower. (The git push webhook and `/metrics` join this router as they land.)

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use kube::Client;

use crate::{Error, Result};

/// Binds `addr` and serves the probes in the background; returns the bound address.
pub async fn serve(addr: SocketAddr, client: Client) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(Error::io(format!("listening on {addr}")))?;
    let bound = listener
        .local_addr()
        .map_err(Error::io("reading the bound address"))?;
    let app = router(client);
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            tracing::error!("the HTTP server stopped: {err}");
        }
    });
    tracing::info!(address = %bound, "serving /healthz and /readyz");
    Ok(bound)
}

fn router(client: Client) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(client)
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
