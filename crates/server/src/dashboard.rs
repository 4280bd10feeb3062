//! The embedded dashboard: static files compiled into the binary.
//!
//! The page is `index.html` plus native ES modules under `dashboard/js/`
//! (no bundler, no build step), served from `/assets/` at their paths in
//! the folder: `/assets/js/main.js` imports `./page.js`, which the browser
//! asks for as `/assets/js/page.js`. Browsers run a module only when it is
//! served with a JavaScript type, and under the policy below only from this
//! origin ('self' covers module scripts and their imports).

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(rust_embed::Embed)]
#[folder = "../../dashboard/"]
struct Assets;

/// A strict policy: only this origin's scripts and styles, no inline code,
/// no framing. Data from events is rendered as text by the page itself.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn serve(name: &str) -> Response {
    let Some(file) = Assets::get(name) else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    let mime = match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    };
    let mut res = (StatusCode::OK, file.data.into_owned()).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

/// `GET /`
pub async fn index() -> Response {
    serve("index.html")
}

/// `GET /assets/{*file}`: `file` may hold folders (`js/main.js`).
pub async fn asset(Path(file): Path<String>) -> Response {
    if file.contains("..") {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    }
    serve(&file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::http::Request;
    use axum::routing::get;
    use tower::ServiceExt;

    fn scripts() -> Vec<String> {
        Assets::iter()
            .map(|name| name.into_owned())
            .filter(|name| name.ends_with(".js"))
            .collect()
    }

    /// The relative imports of a module (`from './x.js'`), resolved against
    /// the folder of `name`. The dashboard writes every import that way.
    fn imports_of(name: &str) -> Vec<String> {
        let file = Assets::get(name).expect("embedded");
        let text = String::from_utf8(file.data.into_owned()).expect("utf-8");
        let dir = name.rsplit_once('/').map_or("", |(dir, _)| dir);
        text.split("from './")
            .skip(1)
            .map(|rest| {
                let target = rest.split('\'').next().unwrap_or_default();
                if dir.is_empty() {
                    target.to_owned()
                } else {
                    format!("{dir}/{target}")
                }
            })
            .collect()
    }

    // With no bundler, a mistyped import path would only show as a blank
    // page: every import must name a file that is embedded.
    #[test]
    fn every_module_import_names_an_embedded_module() {
        let scripts = scripts();
        assert!(scripts.iter().any(|s| s == "js/main.js"), "{scripts:?}");
        let index =
            String::from_utf8(Assets::get("index.html").unwrap().data.into_owned()).unwrap();
        assert!(
            index.contains(r#"<script type="module" src="/assets/js/main.js"></script>"#),
            "index.html loads js/main.js as a module"
        );
        for script in &scripts {
            for target in imports_of(script) {
                assert!(
                    Assets::get(&target).is_some(),
                    "{script} imports {target}, which is not embedded"
                );
            }
        }
    }

    // Requests go through the same wildcard route as the server's router,
    // so a nested path reaches `serve` as `js/…`, without a leading slash.
    #[tokio::test]
    async fn every_module_is_served_as_javascript_under_the_policy() {
        let app: Router = Router::new().route("/assets/{*file}", get(asset));
        for script in scripts() {
            let res = app
                .clone()
                .oneshot(
                    Request::get(format!("/assets/{script}"))
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK, "{script}");
            let h = res.headers();
            assert_eq!(
                h[header::CONTENT_TYPE],
                "text/javascript; charset=utf-8",
                "{script}"
            );
            assert_eq!(h[header::CONTENT_SECURITY_POLICY], CSP, "{script}");
            assert_eq!(h[header::CACHE_CONTROL], "no-cache", "{script}");
        }
        let missing = app
            .oneshot(
                Request::get("/assets/js/../index.html")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    }
}
