//! The analyst web page: static assets compiled into the binary (`src/web/assets`, uPlot
//! vendored under `vendor/`), served under `/ui/` with a strict Content-Security-Policy. No
//! CDN and no build step: the page works offline and ships with the binary it talks to.

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::error::ApiError;
use super::extract::Path;
use super::state::ApiState;

/// Only same-origin scripts, styles, images and API calls; no inline script, no framing.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// `(path under /ui/, content type, bytes)`.
const ASSETS: &[(&str, &str, &[u8])] = &[
    ("index.html", "text/html; charset=utf-8", include_bytes!("../web/assets/index.html")),
    ("app.js", "text/javascript; charset=utf-8", include_bytes!("../web/assets/app.js")),
    ("app.css", "text/css; charset=utf-8", include_bytes!("../web/assets/app.css")),
    ("favicon.svg", "image/svg+xml", include_bytes!("../web/assets/favicon.svg")),
    (
        "vendor/uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/assets/vendor/uPlot.iife.min.js"),
    ),
    ("vendor/uPlot.min.css", "text/css; charset=utf-8", include_bytes!("../web/assets/vendor/uPlot.min.css")),
];

/// The page's routes.
pub(super) fn routes() -> Router<ApiState> {
    use axum::routing::get;
    Router::new()
        .route("/", get(|| async { Redirect::temporary("/ui/") }))
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(|| async { asset("index.html") }))
        .route("/ui/{*file}", get(|Path(file): Path<String>| async move { asset(&file) }))
}

fn asset(path: &str) -> Response {
    let Some((_, mime, bytes)) = ASSETS.iter().find(|(p, _, _)| *p == path) else {
        return ApiError::not_found(format!("no page asset {path:?}")).into_response();
    };
    let mut r = (StatusCode::OK, *bytes).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    // The page changes with the binary; vendor files never change within a version.
    let cache = if path.starts_with("vendor/") { "public, max-age=86400" } else { "no-cache" };
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    r
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_file_the_page_loads_is_embedded() {
        let index = std::str::from_utf8(super::ASSETS[0].2).unwrap();
        for (path, _, bytes) in super::ASSETS {
            assert!(!bytes.is_empty(), "{path} is empty");
        }
        // Every local src/href in index.html names an embedded asset.
        for attr in ["src=\"", "href=\""] {
            for part in index.split(attr).skip(1) {
                let target = part.split('"').next().unwrap();
                if target.starts_with('#') {
                    continue; // an in-page link
                }
                assert!(!target.contains("//"), "index.html loads {target} from elsewhere");
                let local = target.trim_start_matches("/ui/").trim_start_matches("./");
                assert!(super::ASSETS.iter().any(|(p, _, _)| *p == local), "index.html loads {target}, not embedded");
            }
        }
    }
}
