//! The eHealth envelope: `{"meta": …, "data": …}` or `{"meta": …, "error": …}`.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use spin_sdk::http::FullBody;

pub type HttpResponse = http::Response<FullBody<Bytes>>;

/// An answer before it becomes HTTP: what the idempotency store keeps and
/// replays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn into_http(self) -> HttpResponse {
        let status = self.status();
        let mut response = http::Response::new(FullBody::new(Bytes::from(self.body)));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        for (name, value) in self.headers {
            if let (Ok(name), Ok(value)) =
                (HeaderName::try_from(name), HeaderValue::try_from(value))
            {
                headers.insert(name, value);
            }
        }
        response
    }
}

/// What identifies a request in its answer and its log line.
pub struct RequestMeta {
    pub url: String,
    pub request_id: String,
}

impl RequestMeta {
    /// `meta.url` is the full URL Spin reports; `request_id` is the caller's
    /// `X-Request-ID` when it is 20–200 printable ASCII characters.
    pub fn from_request(
        headers: &HeaderMap,
        uri: &http::Uri,
        fresh_id: impl FnOnce() -> String,
    ) -> Self {
        let url = headers
            .get("spin-full-url")
            .and_then(|v| v.to_str().ok())
            .map_or_else(|| uri.to_string(), str::to_owned);
        let request_id = headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|id| (20..=200).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic()))
            .map_or_else(fresh_id, str::to_owned);
        Self { url, request_id }
    }
}

/// An error answer. `invalid` carries the eHealth validation entries.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: Option<String>,
    pub invalid: Option<Value>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: Some(message.into()),
            invalid: None,
            headers: Vec::new(),
        }
    }

    pub fn access_denied(message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "access_denied", message)
    }

    pub fn not_found(message: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn service_unavailable(message: &str) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            message,
        )
    }

    /// 422 with one `json_data_property` entry, as eHealth reports a rule broken by stored data.
    pub fn validation_failed(entry: &str, description: &str) -> Self {
        Self::invalid(vec![json!({
            "entry_type": "json_data_property",
            "entry": entry,
            "rules": [{"rule": "invalid", "description": description, "params": []}],
        })])
    }

    /// 422 listing every invalid entry.
    pub fn invalid(entries: Vec<Value>) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            kind: "validation_failed",
            message: None,
            invalid: Some(Value::Array(entries)),
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl ToString) -> Self {
        self.headers.extend(header(name, value));
        self
    }

    pub fn into_reply(self, meta: &RequestMeta) -> Reply {
        let mut error = json!({"type": self.kind});
        if let Some(message) = self.message {
            error["message"] = json!(message);
        }
        if let Some(invalid) = self.invalid {
            error["invalid"] = invalid;
        }
        let body = json!({"meta": meta_json(meta, self.status, "object"), "error": error});
        respond(self.status, &body, meta, self.headers)
    }
}

/// A response header; `None` for a value no header can carry.
pub fn header(name: &'static str, value: impl ToString) -> Option<(HeaderName, HeaderValue)> {
    let value = HeaderValue::from_str(&value.to_string()).ok()?;
    Some((HeaderName::from_static(name), value))
}

pub fn success(
    status: StatusCode,
    data: Value,
    meta: &RequestMeta,
    headers: Vec<(HeaderName, HeaderValue)>,
) -> Reply {
    let body = json!({"meta": meta_json(meta, status, "object"), "data": data});
    respond(status, &body, meta, headers)
}

fn meta_json(meta: &RequestMeta, status: StatusCode, kind: &str) -> Value {
    json!({"code": status.as_u16(), "url": meta.url, "type": kind, "request_id": meta.request_id})
}

fn respond(
    status: StatusCode,
    body: &Value,
    meta: &RequestMeta,
    headers: Vec<(HeaderName, HeaderValue)>,
) -> Reply {
    let mut reply = Reply {
        status: status.as_u16(),
        headers: Vec::new(),
        body: body.to_string(),
    };
    reply
        .headers
        .push(("x-request-id".to_owned(), meta.request_id.clone()));
    for (name, value) in headers {
        if let Ok(value) = value.to_str() {
            reply
                .headers
                .push((name.as_str().to_owned(), value.to_owned()));
        }
    }
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta_for(headers: &[(&'static str, &str)]) -> RequestMeta {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        RequestMeta::from_request(&map, &"/api/x".parse().unwrap(), || "fresh".into())
    }

    #[test]
    fn keeps_a_well_formed_request_id() {
        let id = "req-0123456789abcdefghij";
        assert_eq!(meta_for(&[("x-request-id", id)]).request_id, id);
    }

    #[test]
    fn replaces_short_long_or_unprintable_request_ids() {
        assert_eq!(meta_for(&[("x-request-id", "short")]).request_id, "fresh");
        assert_eq!(
            meta_for(&[("x-request-id", &"a".repeat(201))]).request_id,
            "fresh"
        );
        assert_eq!(
            meta_for(&[("x-request-id", "has space in the middle of it")]).request_id,
            "fresh"
        );
        assert_eq!(meta_for(&[]).request_id, "fresh");
    }

    proptest::proptest! {
        #[test]
        fn any_request_id_header_yields_a_printable_id(raw in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let mut map = HeaderMap::new();
            if let Ok(value) = HeaderValue::from_bytes(&raw) {
                map.insert("x-request-id", value);
            }
            let meta = RequestMeta::from_request(&map, &"/".parse().unwrap(), || "fresh-id".into());
            proptest::prop_assert!(meta.request_id.bytes().all(|b| b.is_ascii_graphic()));
            proptest::prop_assert!(HeaderValue::from_str(&meta.request_id).is_ok());
        }
    }

    #[test]
    fn url_comes_from_spin_full_url() {
        let meta = meta_for(&[("spin-full-url", "https://host/api/x")]);
        assert_eq!(meta.url, "https://host/api/x");
        assert_eq!(meta_for(&[]).url, "/api/x");
    }
}
