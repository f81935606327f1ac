//! The HTTP APIs of the cloud on loopback: API Gateway's part, so `curl` works against the local
//! stack exactly as against the HTTP API in AWS, calling the same handlers the Lambdas run:
//! `/tokens...` and `/clients/...` go to the token issuer (`token::Function::handle`),
//! `/presence/...` to the presence query (`presence_query::Function::handle`).
//!
//! What API Gateway adds in AWS and this does not: IAM (SigV4) authorization. Locally the API
//! listens on 127.0.0.1 only, and moto accepts any credentials anyway (any local process can
//! write to the tables): the local stack is a developer's machine, not a security boundary.
//!
//! It also plays the part of the link between the issuer's revocations and the broker: in AWS
//! the custom authorizer reads them from DynamoDB at each CONNECT and policy refresh; the local
//! broker plugin must not do network IO on the broker's thread, so [`export_revocations`] polls
//! the token table once a second and writes the revocations file the plugin re-reads when it
//! changes (written to a temporary file and renamed, so the plugin never reads half a file).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::shutdown::{self, Shutdown};

/// The handlers behind the local API.
pub struct Handlers {
    /// The token issuer.
    pub token: token::Function,
    /// The presence query.
    pub presence: presence_query::Function,
}

/// Converts an HTTP request into the `lambda_http` request API Gateway would deliver (method,
/// path, query, headers, body), calls the handler for its path and converts the answer back.
pub async fn serve(
    handlers: &Handlers,
    req: hyper::Request<Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let bytes = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            warn!(error = %e, "could not read the request body");
            return plain(400, "could not read the request body");
        }
    };
    let body = if bytes.is_empty() {
        lambda_http::Body::Empty
    } else {
        match String::from_utf8(bytes.to_vec()) {
            Ok(text) => lambda_http::Body::Text(text),
            Err(e) => lambda_http::Body::Binary(e.into_bytes()),
        }
    };
    let request = lambda_http::Request::from_parts(parts, body);
    let path = request.uri().path().to_owned();
    let response = if path == "/presence" || path.starts_with("/presence/") {
        handlers.presence.handle(request).await
    } else {
        handlers.token.handle(request).await
    };
    let (parts, body) = response.into_parts();
    let bytes = match body {
        lambda_http::Body::Empty => Bytes::new(),
        lambda_http::Body::Text(t) => Bytes::from(t),
        lambda_http::Body::Binary(b) => Bytes::from(b),
        _ => Bytes::new(),
    };
    hyper::Response::from_parts(parts, Full::new(bytes))
}

fn plain(status: u16, text: &'static str) -> hyper::Response<Full<Bytes>> {
    let mut r = hyper::Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::BAD_REQUEST);
    r
}

/// Serves the handlers on `listener` until shutdown (HTTP/1.1, one task per connection).
pub async fn run(listener: TcpListener, handlers: Arc<Handlers>, mut stop: Shutdown) {
    loop {
        let accepted = tokio::select! {
            () = shutdown::wait(&mut stop) => break,
            a = listener.accept() => a,
        };
        let (stream, peer): (_, SocketAddr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                warn!(error = %e, "accept failed");
                continue;
            }
        };
        let handlers = Arc::clone(&handlers);
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let handlers = Arc::clone(&handlers);
                async move { Ok::<_, Infallible>(serve(&handlers, req).await) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                warn!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    info!("local API stopped");
}

/// Writes `text` to `path` through a temporary file in the same directory and a rename.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// Polls the token table every `every` and rewrites `file` when the revocations changed.
pub async fn export_revocations(
    store: stores::TokenTable,
    file: PathBuf,
    every: Duration,
    mut stop: Shutdown,
) {
    let mut last: Option<String> = None;
    loop {
        match store.all_revocations().await {
            Ok(rev) => {
                let json = rev.to_json();
                if last.as_deref() != Some(json.as_str()) {
                    match write_atomically(&file, &json) {
                        Ok(()) => {
                            info!(tokens = rev.tokens.len(), clients = rev.clients.len(), file = %file.display(), "revocations exported");
                            last = Some(json);
                        }
                        Err(e) => {
                            warn!(error = %e, file = %file.display(), "could not write the revocations file")
                        }
                    }
                }
            }
            Err(e) => {
                warn!(error = %e, "could not read the revocations; the broker keeps the last export")
            }
        }
        tokio::select! {
            () = shutdown::wait(&mut stop) => break,
            () = tokio::time::sleep(every) => {}
        }
    }
}
