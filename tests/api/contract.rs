//! `openapi.yaml` against the component's real answers: every answer a test
//! app received is checked when the app is dropped (see `helpers`), and the
//! tests here show that the check fails when an answer leaves the document.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use serde_json::{Value, json};
use testhost::Exchange;

use crate::helpers::*;

/// Headers any HTTP server adds; every other header of an answer must be
/// documented for it.
const TRANSPORT_HEADERS: [&str; 3] = ["content-type", "content-length", "date"];

pub struct Contract {
    document: Value,
    validators: Mutex<HashMap<String, std::sync::Arc<jsonschema::Validator>>>,
}

pub fn contract() -> &'static Contract {
    static CONTRACT: OnceLock<Contract> = OnceLock::new();
    CONTRACT.get_or_init(|| {
        let text = std::fs::read_to_string(project_root().join("openapi.yaml"))
            .expect("openapi.yaml is readable");
        Contract {
            document: serde_yaml_ng::from_str(&text).expect("openapi.yaml parses"),
            validators: Mutex::default(),
        }
    })
}

impl Contract {
    /// Why `exchange` is not what the document says, if it is not.
    pub fn check(&self, exchange: &Exchange) -> Result<(), String> {
        let method = exchange.method.as_str().to_ascii_lowercase();
        let status = exchange.response.status().as_u16().to_string();
        let what = format!("{} {} → {status}", exchange.method, exchange.path);
        let responses = match self.operation(&exchange.path, &method) {
            Some(operation) => &operation["responses"],
            None => &self.document["x-unmatched-requests"]["responses"],
        };
        let response = self
            .resolve(&responses[&status])
            .ok_or_else(|| format!("{what}: status not documented"))?;
        let headers = exchange.response.headers();
        let documented = response["headers"].as_object().cloned().unwrap_or_default();
        for (name, header) in &documented {
            let header = self.resolve(header).unwrap_or(header);
            let value = headers.get(name.as_str());
            if header["required"] == true && value.is_none() {
                return Err(format!("{what}: header {name} missing"));
            }
            if let Some(value) = value
                && header["schema"]["type"] == "integer"
                && value
                    .to_str()
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok())
                    .is_none()
            {
                return Err(format!(
                    "{what}: header {name} is not a whole number: {value:?}"
                ));
            }
        }
        for name in headers.keys() {
            let name = name.as_str();
            if !TRANSPORT_HEADERS.contains(&name)
                && !documented.keys().any(|d| d.eq_ignore_ascii_case(name))
            {
                return Err(format!("{what}: header {name} not documented"));
            }
        }
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if content_type != "application/json; charset=utf-8" {
            return Err(format!("{what}: content type {content_type:?}"));
        }
        let body: Value = serde_json::from_slice(exchange.response.body())
            .map_err(|e| format!("{what}: body is not JSON: {e}"))?;
        self.validate(&response["content"]["application/json"]["schema"], &body)
            .map_err(|errors| format!("{what}: {errors}\n{body}"))
    }

    /// The operation of the first path template that matches `path`; `None`
    /// for an unknown path or a method the path does not have.
    fn operation(&self, path: &str, method: &str) -> Option<&Value> {
        let paths = self.document["paths"].as_object()?;
        let (_, item) = paths
            .iter()
            .find(|(template, _)| template_matches(template, path))?;
        item.get(method)
    }

    /// A response or header object, following one `$ref`.
    fn resolve<'a>(&'a self, object: &'a Value) -> Option<&'a Value> {
        match object.get("$ref").and_then(Value::as_str) {
            Some(reference) => self
                .document
                .pointer(reference.strip_prefix('#')?)
                .filter(|v| !v.is_null()),
            None => Some(object).filter(|v| !v.is_null()),
        }
    }

    /// Validates `instance` against `schema`, with the document's
    /// components in reach of its `$ref`s.
    pub fn validate(&self, schema: &Value, instance: &Value) -> Result<(), String> {
        let key = schema.to_string();
        let validator = {
            let mut validators = self.validators.lock().unwrap();
            validators
                .entry(key)
                .or_insert_with(|| {
                    let mut root = schema.clone();
                    root["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
                    root["components"] = self.document["components"].clone();
                    std::sync::Arc::new(
                        jsonschema::validator_for(&root).expect("a valid JSON Schema"),
                    )
                })
                .clone()
        };
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// Every `(schema, example)` pair of the document's answers.
    fn examples(&self) -> Vec<(&Value, &Value)> {
        let mut found = Vec::new();
        let mut responses: Vec<&Value> = self.document["components"]["responses"]
            .as_object()
            .into_iter()
            .flat_map(|r| r.values())
            .collect();
        for item in self.document["paths"]
            .as_object()
            .into_iter()
            .flat_map(|p| p.values())
        {
            for operation in item.as_object().into_iter().flat_map(|o| o.values()) {
                responses.extend(
                    operation["responses"]
                        .as_object()
                        .into_iter()
                        .flat_map(|r| r.values()),
                );
            }
        }
        for response in responses {
            let content = &response["content"]["application/json"];
            if let Some(example) = content.get("example") {
                found.push((&content["schema"], example));
            }
        }
        found
    }
}

fn template_matches(template: &str, path: &str) -> bool {
    let mut path_segments = path.split('/');
    let matched = template.split('/').all(|expected| {
        path_segments.next().is_some_and(|segment| {
            // The router takes any text, even empty, as an id, and answers
            // that it is not found.
            expected.starts_with('{') || expected == segment
        })
    });
    matched && path_segments.next().is_none()
}

#[test]
fn every_example_in_the_document_fits_its_schema() {
    let contract = contract();
    let examples = contract.examples();
    assert!(examples.len() >= 8, "the answers carry examples");
    for (schema, example) in examples {
        contract
            .validate(schema, example)
            .unwrap_or_else(|e| panic!("example {example}: {e}"));
    }
}

/// A real resend answer, and then the same answer changed in each way the
/// check must notice.
#[tokio::test]
async fn the_check_fails_when_an_answer_leaves_the_document() {
    let Some(app) = TestApp::local().await else {
        return;
    };
    let seeded = app.seed(Seed::default());
    assert_eq!(app.resend(&seeded.id).await.status(), 200);
    let exchanges = app.host().exchanges();
    let resent = exchanges
        .iter()
        .find(|e| e.response.status() == 200)
        .expect("the resend was recorded");
    let contract = contract();
    contract.check(resent).expect("the real answer fits");

    let with_body = |change: &dyn Fn(&mut Value)| {
        let mut body: Value = serde_json::from_slice(resent.response.body()).unwrap();
        change(&mut body);
        let mut changed = resent.clone();
        *changed.response.body_mut() = serde_json::to_vec(&body).unwrap().into();
        changed
    };
    let broken = [
        (
            "a missing field",
            with_body(&|b| drop(b["data"].as_object_mut().unwrap().remove("active"))),
        ),
        (
            "an extra field",
            with_body(&|b| b["data"]["code"] = json!("123456")),
        ),
        (
            "a wrong type",
            with_body(&|b| b["data"]["active"] = json!("yes")),
        ),
        (
            "an unknown status",
            with_body(&|b| b["data"]["status"] = json!("SENT")),
        ),
        (
            "a malformed time",
            with_body(&|b| b["data"]["code_expired_at"] = json!("2026-12-04 10:20")),
        ),
        (
            "an error body on success",
            with_body(&|b| {
                b["error"] = json!({"type": "not_found"});
                b.as_object_mut().unwrap().remove("data");
            }),
        ),
    ];
    for (what, exchange) in broken {
        assert!(
            contract.check(&exchange).is_err(),
            "{what} passed the check"
        );
    }

    let mut undocumented_status = resent.clone();
    *undocumented_status.response.status_mut() = http::StatusCode::IM_A_TEAPOT;
    assert!(contract.check(&undocumented_status).is_err());

    let mut undocumented_header = resent.clone();
    undocumented_header
        .response
        .headers_mut()
        .insert("x-debug", "1".parse().unwrap());
    assert!(contract.check(&undocumented_header).is_err());

    let mut missing_header = resent.clone();
    missing_header
        .response
        .headers_mut()
        .remove("x-otp-sends-remaining");
    assert!(contract.check(&missing_header).is_err());

    let mut wrong_kind = resent.clone();
    *wrong_kind.response.status_mut() = http::StatusCode::UNAUTHORIZED;
    for name in ["x-otp-sends-remaining", "x-otp-resend-after"] {
        wrong_kind.response.headers_mut().remove(name);
    }
    *wrong_kind.response.body_mut() = serde_json::to_vec(&json!({
        "meta": {"code": 401, "url": "http://x/", "type": "object", "request_id": "r"},
        "error": {"type": "forbidden", "message": "Invalid access token"},
    }))
    .unwrap()
    .into();
    assert!(
        contract.check(&wrong_kind).is_err(),
        "a 401 must be access_denied"
    );
}

#[test]
fn path_templates_match_whole_segments() {
    let template = "/api/merge_requests/{id}/actions/resend_otp";
    assert!(template_matches(
        template,
        "/api/merge_requests/x/actions/resend_otp"
    ));
    assert!(template_matches(
        template,
        "/api/merge_requests//actions/resend_otp"
    ));
    assert!(!template_matches(
        template,
        "/api/merge_requests/x/actions/resend_otp/extra"
    ));
    assert!(!template_matches(template, "/api/merge_requests/x/actions"));
    assert!(template_matches(
        "/api/merge_requests",
        "/api/merge_requests"
    ));
}
