//! The read-only HTTP endpoint for gateways: `GET /v1/route?tenant=T[&tier=P]`,
//! `POST /v1/trino-gateway/route` (Trino Gateway's external routing rules),
//! `GET /v1/kyuubi/conf?user=U[&tier=P]` (a Kyuubi session conf overlay),
//! `GET /v1/status` (bearer token when one is configured), `GET /healthz`.
//! JSON answers.
//!
//! Every route lookup first asks SQLite whether another connection committed since
//! the last lookup (`PRAGMA data_version`, no table read) and reloads the routing
//! table if so: a rollback is effective for the very next lookup, not after a
//! polling interval. The store is opened `query_only`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use crate::machine::RouteTable;
use crate::store::{Store, StoreError, now_ms};

/// A store with its routing table cached until the store changes.
pub struct Router {
    store: Store,
    version: i64,
    table: Option<Arc<RouteTable>>,
}

impl Router {
    /// A router over `store`, its table loaded now.
    pub fn new(store: Store) -> Result<Router, StoreError> {
        let version = store.data_version()?;
        let table = store.route_table()?.map(Arc::new);
        Ok(Router { store, version, table })
    }

    /// The routing table as of now: reloaded if anyone committed since the last call.
    pub fn fresh(&mut self) -> Result<Option<Arc<RouteTable>>, StoreError> {
        let v = self.store.data_version()?;
        if v != self.version {
            self.table = self.store.route_table()?.map(Arc::new);
            self.version = v;
        }
        Ok(self.table.clone())
    }

    /// The store it reads.
    pub fn store(&self) -> &Store {
        &self.store
    }
}

pub(crate) fn json(status: StatusCode, v: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    h.insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    r
}

pub(crate) fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    json(status, &serde_json::json!({ "error": message }))
}

/// What `serve` answers besides routes.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// When set, `/v1/status` needs `Authorization: Bearer <token>`.
    pub status_token: Option<String>,
}

/// Compares without stopping at the first differing byte.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// One request as `handle` sees it.
pub struct Req<'a> {
    /// The HTTP method.
    pub method: &'a Method,
    /// The path, without the query.
    pub path: &'a str,
    /// The query string, if any.
    pub query: Option<&'a str>,
    /// The request headers.
    pub headers: &'a hyper::HeaderMap,
    /// The request body.
    pub body: &'a [u8],
}

/// Answers one request.
pub fn handle(router: &Mutex<Router>, opts: &ServeOptions, req: &Req<'_>) -> Response<Full<Bytes>> {
    let (method, path, query) = (req.method, req.path, req.query);
    if path == "/v1/trino-gateway/route" {
        if method != Method::POST {
            return error(
                StatusCode::METHOD_NOT_ALLOWED,
                "Trino Gateway posts its routing request here",
            );
        }
        return crate::gateways::trino_answer(router, req.headers, req.body);
    }
    if method != Method::GET && method != Method::HEAD {
        return error(StatusCode::METHOD_NOT_ALLOWED, "read-only endpoint: GET only");
    }
    if path == "/v1/kyuubi/conf" {
        return crate::gateways::kyuubi_answer(router, query);
    }
    if path == "/v1/status"
        && let Some(token) = &opts.status_token
    {
        let given = req
            .headers
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !same_secret(given.trim().as_bytes(), token.as_bytes()) {
            let mut r = error(
                StatusCode::UNAUTHORIZED,
                "the status and audit need `Authorization: Bearer <token>`",
            );
            r.headers_mut().insert(
                hyper::header::WWW_AUTHENTICATE,
                hyper::header::HeaderValue::from_static("Bearer realm=\"sqlflight\""),
            );
            return r;
        }
    }
    let Ok(mut r) = router.lock() else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "router lock poisoned");
    };
    match path {
        "/healthz" => json(StatusCode::OK, &serde_json::json!({"ok": true})),
        "/v1/route" => {
            let (mut tenant, mut tier) = (None, None);
            for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
                match &*k {
                    "tenant" => tenant = Some(v.into_owned()),
                    "tier" => tier = Some(v.into_owned()),
                    _ => {}
                }
            }
            let Some(tenant) = tenant.filter(|t| !t.is_empty()) else {
                return error(StatusCode::BAD_REQUEST, "missing query parameter `tenant`");
            };
            match r.fresh() {
                Ok(Some(t)) => {
                    drop(r);
                    json(StatusCode::OK, &t.answer(&tenant, tier.as_deref()))
                }
                Ok(None) => error(StatusCode::SERVICE_UNAVAILABLE, "the store has no rollout"),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            }
        }
        "/v1/status" => {
            let s = r.store();
            let out = s.current().and_then(|c| Ok((c, s.audit(20)?)));
            match out {
                Ok((Some(c), audit)) => json(StatusCode::OK, &crate::status::status_json(&c, &audit, now_ms())),
                Ok((None, _)) => error(StatusCode::SERVICE_UNAVAILABLE, "the store has no rollout"),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            }
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "unknown path; try /v1/route?tenant=T, /v1/trino-gateway/route, /v1/kyuubi/conf?user=U or /v1/status",
        ),
    }
}

/// Largest request body read (a Trino Gateway request carries no SQL by default).
const MAX_BODY: usize = 1 << 20;

/// Accepts connections on `listener` until the process ends, answering each
/// request (its body read up to [`MAX_BODY`]) with `answer`.
async fn accept<F>(listener: tokio::net::TcpListener, answer: F) -> std::io::Result<()>
where
    F: Fn(&hyper::http::request::Parts, &[u8]) -> Response<Full<Bytes>> + Clone + Send + Sync + 'static,
{
    use http_body_util::{BodyExt, Limited};
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let answer = answer.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let answer = answer.clone();
                async move {
                    let (parts, body) = req.into_parts();
                    let r = match Limited::new(body, MAX_BODY).collect().await {
                        Ok(b) => answer(&parts, &b.to_bytes()),
                        Err(_) => error(StatusCode::PAYLOAD_TOO_LARGE, "the request body is over 1 MiB"),
                    };
                    Ok::<_, Infallible>(r)
                }
            });
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

/// Serves `router` on `listener` until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Arc<Mutex<Router>>,
    opts: ServeOptions,
) -> std::io::Result<()> {
    let opts = Arc::new(opts);
    accept(listener, move |parts, body| {
        handle(
            &router,
            &opts,
            &Req {
                method: &parts.method,
                path: parts.uri.path(),
                query: parts.uri.query(),
                headers: &parts.headers,
                body,
            },
        )
    })
    .await
}

/// The same HTTP stack answering a fixed body without routing: the benchmark's
/// reference for what the stack itself costs on this machine.
pub async fn serve_fixed(listener: tokio::net::TcpListener, body: &'static str) -> std::io::Result<()> {
    accept(listener, move |_, _| {
        json(StatusCode::OK, &serde_json::Value::String(body.to_string()))
    })
    .await
}

/// Binds `addr` on a new multi-threaded runtime, calls `bound` with the bound
/// address (port 0 picks a free one), then runs `serve_on` until the process ends.
fn on_runtime<Fut>(
    addr: SocketAddr,
    bound: impl FnOnce(SocketAddr),
    serve_on: impl FnOnce(tokio::net::TcpListener) -> Fut,
) -> Result<(), ServeError>
where
    Fut: std::future::Future<Output = std::io::Result<()>>,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(ServeError::Io)?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| ServeError::Bind(addr, e))?;
        bound(listener.local_addr().map_err(ServeError::Io)?);
        serve_on(listener).await.map_err(ServeError::Io)
    })
}

/// Serves the store at `path` on `addr` (see [`on_runtime`]).
pub fn run_blocking(
    path: &Path,
    addr: SocketAddr,
    opts: ServeOptions,
    bound: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    let router = Arc::new(Mutex::new(Router::new(Store::open_read_only(path)?)?));
    on_runtime(addr, bound, |l| serve(l, router, opts))
}

/// [`serve_fixed`] on `addr`, for the benchmark.
pub fn run_fixed_blocking(
    addr: SocketAddr,
    body: &'static str,
    bound: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    on_runtime(addr, bound, |l| serve_fixed(l, body))
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The address could not be bound.
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, #[source] std::io::Error),
    /// Serving failed.
    #[error("{0}")]
    Io(#[source] std::io::Error),
}
