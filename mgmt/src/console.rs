//! The web console's static files under `/console/`: built from `console/` (TypeScript) by
//! `npm ci && npm run build` (scripts/build-console.sh) before cargo runs, and embedded into
//! the binary at compile time, so the appliance needs no Node.js and no files at run time.
//!
//! Every response carries a strict Content-Security-Policy (scripts, styles and API calls
//! from this origin only, no inline code, no framing) and `nosniff`. Vite names assets by
//! content hash, so `assets/` are cached for a year as immutable; `index.html` and
//! `config.json` are revalidated on each load (ETag). The console authenticates nothing
//! itself: the page signs its API calls with SigV4 like any other client. The only
//! unauthenticated data it adds is `config.json`: the region (needed to sign), the zones
//! the operation form offers, and whether a fleet serves it (`flowgate-fleet` serves the
//! same console: the page then asks for the zone first and sends every per-appliance call
//! through the fleet for that zone).
//!
//! A binary built before the console (a fresh clone without the npm build) still compiles
//! and runs; `/console/` then answers 503 with how to build it.

use rust_embed::Embed;
use serde_json::json;

use api_server::{Request, Response};

#[derive(Embed)]
#[folder = "../console/dist/"]
#[allow_missing = true]
struct Assets;

/// Where the console is served.
pub const PREFIX: &str = "/console/";

/// Only this origin's scripts, styles, images (and `data:` for the empty favicon) and API.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";

/// What the page needs before sign-in: the SigV4 region and the zones it may operate in.
#[derive(Clone, Debug)]
pub struct ConsoleSettings {
    pub region: String,
    pub zones: Vec<String>,
    /// Served by `flowgate-fleet` (one firewall over several zones' appliances) rather
    /// than by one appliance: the console shows its zone selector.
    pub fleet: bool,
}

/// True if `path` belongs to the console.
pub fn owns(path: &str) -> bool {
    path == "/console" || path.starts_with(PREFIX)
}

/// True if the console's build output was embedded.
pub fn is_built() -> bool {
    Assets::get("index.html").is_some()
}

fn secured(r: Response) -> Response {
    r.with_header("Content-Security-Policy", CSP)
        .with_header("X-Content-Type-Options", "nosniff")
        .with_header("X-Frame-Options", "DENY")
        .with_header("Referrer-Policy", "no-referrer")
        .with_header("Cross-Origin-Opener-Policy", "same-origin")
        .with_header("Cross-Origin-Resource-Policy", "same-origin")
}

fn text(status: u16, body: &str) -> Response {
    secured(Response::bytes(
        status,
        "text/plain; charset=utf-8",
        body.as_bytes().to_vec(),
    ))
}

/// Answers a request for a console path (see [`owns`]).
pub fn handle(req: &Request, settings: &ConsoleSettings) -> Response {
    if req.method != "GET" && req.method != "HEAD" {
        return text(405, "the console's files are read with GET\n")
            .with_header("Allow", "GET, HEAD");
    }
    if req.path == "/console" {
        return secured(Response::new(308))
            .with_header("Location", PREFIX)
            .with_header("Cache-Control", REVALIDATE);
    }
    let name = match req.path.strip_prefix(PREFIX).unwrap_or_default() {
        "" => "index.html",
        n => n,
    };
    // HEAD gets the same head; the server leaves the body out.
    if name == "config.json" {
        let body =
            json!({"region": settings.region, "zones": settings.zones, "fleet": settings.fleet});
        secured(Response::json(200, &body)).with_header("Cache-Control", REVALIDATE)
    } else if !is_safe_name(name) {
        text(404, "not found\n")
    } else if let Some(file) = Assets::get(name) {
        let etag = format!("\"{}\"", hex(&file.metadata.sha256_hash()));
        let cache = if name.starts_with("assets/") {
            IMMUTABLE
        } else {
            REVALIDATE
        };
        let fresh = req
            .header("if-none-match")
            .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
        let r = if fresh {
            secured(Response::new(304))
        } else {
            secured(Response::bytes(
                200,
                &content_type(file.metadata.mimetype()),
                file.data.into_owned(),
            ))
        };
        r.with_header("ETag", etag)
            .with_header("Cache-Control", cache)
    } else if name == "index.html" {
        text(
            503,
            "The web console is not built into this binary. Build it with scripts/build-console.sh \
             (npm ci && npm run build in console/), then rebuild flowgate.\n",
        )
    } else {
        text(404, "not found\n")
    }
}

/// A relative file name without empty, `.` or `..` segments or backslashes.
fn is_safe_name(name: &str) -> bool {
    !name.contains('\\')
        && name
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..")
}

/// Text types get an explicit charset (the build writes UTF-8).
fn content_type(mime: &str) -> String {
    if mime.starts_with("text/") || mime == "application/javascript" || mime == "application/json" {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn get(path: &str, headers: &[(&str, &str)]) -> Response {
        let req = Request {
            method: "GET".into(),
            path: path.into(),
            query: String::new(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: Vec::new(),
            peer: SocketAddr::from(([127, 0, 0, 1], 1)),
        };
        handle(
            &req,
            &ConsoleSettings {
                region: "us-east-1".into(),
                zones: vec!["zone-a".into()],
                fleet: false,
            },
        )
    }

    #[test]
    fn every_response_has_the_csp() {
        for p in [
            "/console",
            "/console/",
            "/console/config.json",
            "/console/nope",
            "/console/../x",
        ] {
            let r = get(p, &[]);
            assert_eq!(r.header("content-security-policy"), Some(CSP), "{p}");
            assert_eq!(r.header("x-content-type-options"), Some("nosniff"), "{p}");
        }
    }

    #[test]
    fn bare_prefix_redirects() {
        let r = get("/console", &[]);
        assert_eq!(r.status, 308);
        assert_eq!(r.header("location"), Some("/console/"));
    }

    #[test]
    fn config_names_region_and_zones_only() {
        let r = get("/console/config.json", &[]);
        assert_eq!(r.status, 200);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            v,
            json!({"region": "us-east-1", "zones": ["zone-a"], "fleet": false})
        );
    }

    #[test]
    fn traversal_and_odd_names_are_not_found() {
        for p in [
            "/console/../Cargo.toml",
            "/console/assets/../../x",
            "/console/a//b",
            "/console/.\\x",
        ] {
            assert_eq!(get(p, &[]).status, 404, "{p}");
        }
    }

    #[test]
    fn other_methods_are_refused() {
        let mut req = Request {
            method: "POST".into(),
            path: "/console/".into(),
            query: String::new(),
            headers: Vec::new(),
            body: Vec::new(),
            peer: SocketAddr::from(([127, 0, 0, 1], 1)),
        };
        let s = ConsoleSettings {
            region: "r".into(),
            zones: vec![],
            fleet: false,
        };
        assert_eq!(handle(&req, &s).status, 405);
        req.method = "DELETE".into();
        assert_eq!(handle(&req, &s).status, 405);
    }

    #[test]
    fn index_and_assets_when_built() {
        let r = get("/console/", &[]);
        if !is_built() {
            // CI builds the console before cargo (scripts/test.sh): there it must be embedded.
            assert!(
                std::env::var_os("CI").is_none(),
                "the console is not embedded: run scripts/build-console.sh before cargo"
            );
            assert_eq!(r.status, 503);
            return;
        }
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(r.header("cache-control"), Some(REVALIDATE));
        let etag = r.header("etag").unwrap().to_string();
        assert_eq!(
            get("/console/index.html", &[("if-none-match", &etag)]).status,
            304
        );
        let html = String::from_utf8(r.body).unwrap();
        let js = html
            .split("src=\"/console/")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap();
        let a = get(&format!("/console/{js}"), &[]);
        assert_eq!(a.status, 200);
        assert!(a.header("content-type").unwrap().contains("javascript"));
        assert_eq!(a.header("cache-control"), Some(IMMUTABLE));
    }
}
