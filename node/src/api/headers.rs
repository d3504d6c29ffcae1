//! The security headers of every response, on both routers: one middleware, so that no handler,
//! fallback or error answer can forget them.
//!
//! The corpus browser shows what other towns' authors wrote. The renderer already turns it into
//! markup that cannot run or load anything; the Content-Security-Policy is the second wall, for
//! whatever the renderer or the page's script might one day let through: no script, style,
//! image, frame or connection but the node's own files (the page's script and style are files
//! under `/assets/`, so no inline script or style is allowed, nor `eval`), no plugin, no `<base>`,
//! forms only to the node, and no framing by another site. `nosniff` keeps a JSON answer from
//! being read as a script or a page; `no-referrer` keeps a followed link from telling its target
//! which record a reader was reading.
//!
//! Caching: the page and its assets are at fixed paths and change with the binary, so they are
//! revalidated (`no-cache`); API answers change with every record that arrives and may be
//! private to the local address, so they are not stored (`no-store`).

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

/// What the page may load and do.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Adds the headers to a response (`axum::middleware::from_fn`).
pub(super) async fn security_headers(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let cache = if path.starts_with("/api/") || path == "/metrics" {
        "no-store"
    } else {
        "no-cache"
    };
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static(cache));
    response
}

#[cfg(test)]
mod tests {
    use super::CONTENT_SECURITY_POLICY;
    use crate::daemon::{Daemon, NodeOptions};
    use crate::home::Home;
    use std::time::Duration;

    /// Every route of the local router, with a method; the public router serves a subset and
    /// answers 404 for the rest, with the headers too. Plus an unknown path and a wrong method.
    const ROUTES: &[(&str, &str)] = &[
        ("GET", "/"),
        ("GET", "/assets/app.js"),
        ("GET", "/assets/app.css"),
        ("GET", "/api/v1/records"),
        ("GET", "/api/v1/records/0123456789abcdef"),
        ("GET", "/api/v1/records/not-an-id"),
        ("GET", "/api/v1/stats"),
        ("GET", "/api/v1/export"),
        ("GET", "/api/v1/vocabulary"),
        ("GET", "/api/v1/members"),
        ("GET", "/api/v1/openapi.json"),
        ("GET", "/api/v1/catalog.jsonld"),
        ("GET", "/api/v1/status"),
        ("GET", "/api/v1/peers"),
        ("GET", "/api/v1/attachments/HASH"),
        ("GET", "/api/v1/attachments/not-a-hash"),
        ("POST", "/api/v1/publish"),
        ("POST", "/api/v1/submit"),
        ("POST", "/api/v1/import"),
        ("GET", "/metrics"),
        ("GET", "/no/such/page"),
        ("POST", "/"),
    ];

    #[test]
    fn the_route_list_covers_the_openapi_document() {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../openapi.json")).unwrap_or_else(|e| panic!("{e}"));
        for (path, methods) in doc["paths"].as_object().into_iter().flatten() {
            let path = path
                .replace("{id}", "0123456789abcdef")
                .replace("{hash}", "HASH");
            for method in methods.as_object().into_iter().flatten().map(|(m, _)| m) {
                let method = method.to_ascii_uppercase();
                assert!(
                    ROUTES.contains(&(method.as_str(), path.as_str())),
                    "{method} {path} is not checked for its headers"
                );
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_response_of_both_routers_carries_the_security_headers() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let options = NodeOptions {
            listen: vec![
                "/ip4/127.0.0.1/tcp/0"
                    .parse()
                    .unwrap_or_else(|e| panic!("{e}")),
            ],
            api: "127.0.0.1:0".into(),
            public_api: Some("127.0.0.1:0".into()),
            public_url: None,
            bootstrap: Vec::new(),
            mdns: false,
            town: Some("Ville-Test".into()),
            sync_interval: Duration::from_secs(3600),
            max_peers: crate::daemon::DEFAULT_MAX_PEERS,
            store_cache_mb: crate::daemon::DEFAULT_STORE_CACHE_MB,
            blob_cache_mb: crate::home::DEFAULT_BLOB_CACHE_MB,
            relay: false,
        };
        let node = Daemon::start(Home::new(dir.path()), options)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        let bases = [
            format!("http://{}", node.api_addr()),
            format!(
                "http://{}",
                node.public_addr()
                    .unwrap_or_else(|| panic!("no public address"))
            ),
        ];
        let problems = tokio::task::spawn_blocking(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .new_agent();
            let mut problems = Vec::new();
            for base in &bases {
                for (method, path) in ROUTES {
                    // A file no record attaches: a 404 that still carries the headers.
                    let url = format!("{base}{}", path.replace("HASH", &"0".repeat(64)));
                    let response = match *method {
                        "GET" => agent.get(&url).call(),
                        _ => agent.post(&url).send("{}"),
                    };
                    let response = response.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
                    let header = |name: &str| {
                        response
                            .headers()
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let cache = if path.starts_with("/api/") || *path == "/metrics" {
                        "no-store"
                    } else {
                        "no-cache"
                    };
                    for (name, wanted) in [
                        ("content-security-policy", CONTENT_SECURITY_POLICY),
                        ("x-content-type-options", "nosniff"),
                        ("referrer-policy", "no-referrer"),
                        ("x-frame-options", "DENY"),
                        ("cache-control", cache),
                    ] {
                        if header(name) != wanted {
                            problems.push(format!(
                                "{method} {url} ({}): {name} is {:?}",
                                response.status(),
                                header(name)
                            ));
                        }
                    }
                }
            }
            problems
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        node.stop().await.unwrap_or_else(|e| panic!("{e:#}"));
        assert!(problems.is_empty(), "{problems:#?}");
    }
}
