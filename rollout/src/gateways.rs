//! The routing contracts gateways already speak, answered from the same
//! routing table as `/v1/route` (so a rollback is effective for the very next
//! request):
//!
//! - **Trino Gateway** external routing rules (`rulesType: EXTERNAL`): the
//!   gateway POSTs each request's headers (as HTTP headers) and a JSON body
//!   (`trinoRequestUser`, `remoteUser`, `method`, `requestURI`, ...) and expects
//!   `{"routingGroup": ..., "errors": [...], "externalHeaders": {...}}`. The
//!   tenant is taken from the field the policy names; the side maps to the
//!   policy's routing group. On any error the answer names it in `errors` and
//!   still names the baseline's group (Trino Gateway then falls back to its
//!   default group; either way no session lands on the candidate by mistake).
//! - **Kyuubi** session conf overlay (what a `SessionConfAdvisor` plugin
//!   returns): the side's engine home (`kyuubi.engineEnv.SPARK_HOME` by
//!   default) and `kyuubi.engine.share.level.subdomain` derived from the side
//!   and version, so a shared engine of the old version is never reused for
//!   the new one and a rollback takes effect for the next session.

use std::sync::Mutex;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{HeaderMap, Response, StatusCode};

use crate::machine::{RouteTable, Side};
use crate::serve::{Router, error, json};

/// The tenant (or tier) named by `spec` in a Trino Gateway request.
fn field(spec: &str, headers: &HeaderMap, body: &serde_json::Value) -> Option<String> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    match spec.split_once(':') {
        None if spec == "user" => header("X-Trino-User")
            .or_else(|| {
                body.pointer("/trinoRequestUser/user")
                    .and_then(|u| u.as_str().map(str::to_string))
            })
            .or_else(|| body["remoteUser"].as_str().map(str::to_string))
            .filter(|u| !u.is_empty()),
        None if spec == "source" => header("X-Trino-Source"),
        Some(("header", name)) => header(name),
        Some(("client_tag", key)) => header("X-Trino-Client-Tags").and_then(|tags| {
            tags.split(',').find_map(|t| {
                let (k, v) = t.trim().split_once('=')?;
                (k.trim() == key).then(|| v.trim().to_string())
            })
        }),
        _ => None,
    }
}

fn fresh(router: &Mutex<Router>) -> Result<std::sync::Arc<RouteTable>, String> {
    let mut r = router.lock().map_err(|_| "router lock poisoned".to_string())?;
    match r.fresh() {
        Ok(Some(t)) => Ok(t),
        Ok(None) => Err("the store has no rollout".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Answers Trino Gateway's external routing request.
pub fn trino_answer(router: &Mutex<Router>, headers: &HeaderMap, body: &[u8]) -> Response<Full<Bytes>> {
    let table = match fresh(router) {
        Ok(t) => t,
        Err(e) => {
            return json(
                StatusCode::OK,
                &serde_json::json!({"routingGroup": null, "errors": [e], "externalHeaders": {}}),
            );
        }
    };
    let Some(cfg) = &table.gateways.trino else {
        return json(
            StatusCode::OK,
            &serde_json::json!({"routingGroup": null, "errors": ["the rollout policy has no `gateways.trino`"], "externalHeaders": {}}),
        );
    };
    let fallback = |e: String| {
        json(
            StatusCode::OK,
            &serde_json::json!({"routingGroup": cfg.baseline_group, "errors": [e], "externalHeaders": {}}),
        )
    };
    let body: serde_json::Value = if body.is_empty() {
        serde_json::Value::Null
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => return fallback(format!("the request body is not JSON: {e}")),
        }
    };
    let Some(tenant) = field(&cfg.tenant, headers, &body) else {
        return fallback(format!("no tenant in the request (`{}`)", cfg.tenant));
    };
    let tier = cfg.tier.as_deref().and_then(|t| field(t, headers, &body));
    let side = table.side(&tenant, tier.as_deref());
    let group = match side {
        Side::Baseline => &cfg.baseline_group,
        Side::Candidate => &cfg.candidate_group,
    };
    json(
        StatusCode::OK,
        &serde_json::json!({
            "routingGroup": group,
            "errors": [],
            "externalHeaders": {
                "X-Sqlflight-Side": match side { Side::Baseline => "baseline", Side::Candidate => "candidate" },
                "X-Sqlflight-Version": table.version(side).version,
            },
        }),
    )
}

/// A Kyuubi engine subdomain for a side and version: letters, digits and `-`.
pub fn subdomain(side: Side, version: &str) -> String {
    let v: String = version
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!(
        "sqlflight-{}-{v}",
        match side {
            Side::Baseline => "baseline",
            Side::Candidate => "candidate",
        }
    )
}

/// Answers a Kyuubi session conf overlay request: `GET /v1/kyuubi/conf?user=U[&tier=P]`.
pub fn kyuubi_answer(router: &Mutex<Router>, query: Option<&str>) -> Response<Full<Bytes>> {
    let (mut user, mut tier) = (None, None);
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*k {
            "user" => user = Some(v.into_owned()),
            "tier" => tier = Some(v.into_owned()),
            _ => {}
        }
    }
    let Some(user) = user.filter(|u| !u.is_empty()) else {
        return error(StatusCode::BAD_REQUEST, "missing query parameter `user`");
    };
    let table = match fresh(router) {
        Ok(t) => t,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &e),
    };
    let Some(cfg) = &table.gateways.kyuubi else {
        return error(StatusCode::NOT_FOUND, "the rollout policy has no `gateways.kyuubi`");
    };
    let side = table.side(&user, tier.as_deref());
    let home = match side {
        Side::Baseline => &cfg.baseline_home,
        Side::Candidate => &cfg.candidate_home,
    };
    let mut overlay = serde_json::Map::new();
    overlay.insert(cfg.home_key.clone(), home.clone().into());
    overlay.insert(
        "kyuubi.engine.share.level.subdomain".into(),
        subdomain(side, &table.version(side).version).into(),
    );
    json(StatusCode::OK, &serde_json::Value::Object(overlay))
}
