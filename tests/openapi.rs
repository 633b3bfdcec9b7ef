//! The kept OpenAPI document (`openapi.json`) matches the implementation:
//! it describes exactly the routes the server answers, every operation is
//! complete, every `$ref` resolves, and the served document is this file.
//! Pure checks on the document: no database, no server, no clock.

use std::collections::BTreeSet;

use serde_json::Value;

const DOC: &str = include_str!("../openapi.json");

/// Routes the front door answers itself (ingest/src/server.rs `handle`);
/// everything else under `/api/collector/` is `adit_control::ROUTES`, and
/// `/api/inventory/…` is `adit_control::inventory::ROUTES`.
const FRONT_DOOR: &[(&str, &str)] = &[
    ("POST", "/api/collector/upload"),
    ("POST", "/api/datasets/{name}/upload"),
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
];

/// The keys of a path item that are operations.
const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn doc() -> Value {
    serde_json::from_str(DOC).expect("openapi.json is valid JSON")
}

/// Every (METHOD, path, operation) of the document.
fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let paths = doc["paths"].as_object().expect("`paths` is an object");
    let mut out = Vec::new();
    for (path, item) in paths {
        let item = item.as_object().expect("a path item is an object");
        for (key, op) in item {
            if METHODS.contains(&key.as_str()) {
                out.push((key.to_ascii_uppercase(), path.clone(), op));
            }
        }
    }
    out
}

/// Follows a `$ref` to its target, or panics naming the broken reference.
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let target = r
                .strip_prefix('#')
                .and_then(|p| doc.pointer(p))
                .unwrap_or_else(|| panic!("$ref {r} does not resolve"));
            resolve(doc, target)
        }
        None => v,
    }
}

/// Every `$ref` string in `v`, with the JSON pointer where it was found.
fn collect_refs(v: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                if k == "$ref" {
                    if let Value::String(r) = child {
                        out.push((at.to_string(), r.clone()));
                        continue;
                    }
                }
                let escaped = k.replace('~', "~0").replace('/', "~1");
                collect_refs(child, &format!("{at}/{escaped}"), out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                collect_refs(child, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn the_document_is_openapi_3() {
    let doc = doc();
    let version = doc["openapi"].as_str().expect("`openapi` is a string");
    assert!(version.starts_with("3."), "openapi version {version:?}");
    assert!(doc["info"]["title"].is_string(), "info.title");
    assert!(doc["info"]["version"].is_string(), "info.version");
}

#[test]
fn the_document_describes_exactly_the_implemented_routes() {
    let doc = doc();
    let described: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect();
    let implemented: BTreeSet<(String, String)> = adit_control::ROUTES
        .iter()
        .chain(adit_control::inventory::ROUTES)
        .chain(FRONT_DOOR)
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        implemented.len(),
        adit_control::ROUTES.len() + adit_control::inventory::ROUTES.len() + FRONT_DOOR.len(),
        "ROUTES repeats a route or overlaps the front door"
    );
    let missing: Vec<_> = implemented.difference(&described).collect();
    let invented: Vec<_> = described.difference(&implemented).collect();
    assert!(
        missing.is_empty() && invented.is_empty(),
        "routes not described: {missing:?}; described but not implemented: {invented:?}"
    );
}

#[test]
fn every_operation_is_complete() {
    let doc = doc();
    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .expect("components.securitySchemes");
    let mut ids = BTreeSet::new();
    for (method, path, op) in operations(&doc) {
        let name = format!("{method} {path}");
        let id = op["operationId"]
            .as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| panic!("{name}: no operationId"));
        assert!(
            ids.insert(id.to_string()),
            "{name}: operationId {id} repeated"
        );
        assert!(
            op["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{name}: no summary"
        );
        let responses = op["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{name}: no responses"));
        assert!(!responses.is_empty(), "{name}: no responses");
        assert!(
            responses.keys().any(|k| k.starts_with('2')),
            "{name}: no success response"
        );
        // Security requirements name declared schemes.
        for req in op["security"].as_array().into_iter().flatten() {
            for scheme in req.as_object().expect("a security requirement").keys() {
                assert!(
                    schemes.contains_key(scheme),
                    "{name}: unknown security scheme {scheme}"
                );
            }
        }
        // Every `{param}` of the path template is a declared path parameter.
        let declared: BTreeSet<&str> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| resolve(&doc, p))
            .filter(|p| p["in"] == "path")
            .map(|p| p["name"].as_str().expect("a parameter name"))
            .collect();
        let templated: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        assert_eq!(declared, templated, "{name}: path parameters");
    }
}

#[test]
fn every_ref_resolves_under_components() {
    let doc = doc();
    let mut refs = Vec::new();
    collect_refs(&doc, "", &mut refs);
    assert!(!refs.is_empty(), "the document uses no $ref at all");
    for (at, r) in &refs {
        let pointer = r
            .strip_prefix("#/components/")
            .unwrap_or_else(|| panic!("{at}: $ref {r} is not under #/components/"));
        assert!(
            doc.pointer(&format!("/components/{pointer}")).is_some(),
            "{at}: $ref {r} does not resolve"
        );
    }
}

#[test]
fn the_served_document_is_the_kept_one() {
    assert_eq!(adit_server::OPENAPI_JSON, DOC);
}
