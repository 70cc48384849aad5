//! Loopback simulators of provider APIs, for testing real HTTP adapters without the network.
//!
//! Behind the `simulators` feature, so crates that only need the in-memory fakes do not build an HTTP server.
//! Each simulator listens on `127.0.0.1:0`, speaks the provider's wire format, keeps state like the provider
//! does, and can inject faults (latency, timeouts after processing, 5xx, resets, malformed bodies).

pub mod adyen;
pub mod stripe;
pub mod webhooks;

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// Serves HTTP/1.1 on `listener` until the task is aborted, each request through `handle` with `shared`.
/// Connections live in a set owned by this task: aborting the task drops it and aborts them too. A connection
/// error (a client that went away, an injected reset) ends only that connection.
async fn serve<S, H, F>(listener: TcpListener, shared: Arc<S>, handle: H)
where
    S: Send + Sync + 'static,
    H: Fn(Arc<S>, Request<Incoming>) -> F + Copy + Send + Sync + 'static,
    F: Future<Output = Result<Response<Full<Bytes>>, std::io::Error>> + Send + 'static,
{
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let shared = Arc::clone(&shared);
                connections.spawn(async move {
                    let service = service_fn(move |request| handle(Arc::clone(&shared), request));
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Takes the first queued fault meant for `path` (no fragment, or a fragment `path` contains).
fn take_fault<F>(faults: &mut VecDeque<(Option<String>, F)>, path: &str) -> Option<F> {
    let index = faults.iter().position(|(fragment, _)| fragment.as_deref().is_none_or(|f| path.contains(f)))?;
    faults.remove(index).map(|(_, fault)| fault)
}
