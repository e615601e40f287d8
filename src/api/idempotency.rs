//! `Idempotency-Key` on create and resend: a retried request with the same
//! key gets the first answer again, with no second SMS and no second change.
//!
//! The first request with a key claims it with an atomic `increment` (Spin's
//! SQLite store cannot compare-and-swap an absent key), runs, and stores its
//! answer under the key for 24 hours. A request that finds the answer replays
//! it; one that finds the key claimed and unanswered is told to retry (409);
//! one that reuses the key for another request is refused (422). An answer of
//! 5xx is not kept: the key is released so the retry can run.

use http::{HeaderMap, Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::envelope::{ApiError, Reply};
use crate::adapters::clock;
use crate::adapters::settings::Settings;
use crate::adapters::store::Store;
use crate::domain::{Timestamp, hex};

/// How long an answer is kept for replay.
const KEPT_SECONDS: u64 = 24 * 3600;
const MAX_KEY_LENGTH: usize = 255;

/// The `Idempotency-Key` header, if any: 1–255 printable ASCII characters.
pub fn key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .filter(|key| {
            !key.is_empty()
                && key.len() <= MAX_KEY_LENGTH
                && key.bytes().all(|b| b.is_ascii_graphic())
        })
        .map(|key| Some(key.to_owned()))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "request_malformed",
                "Idempotency-Key must be 1 to 255 printable characters",
            )
        })
}

/// What makes two requests "the same": method, path and body (as parsed, so
/// that spacing does not count).
pub fn fingerprint(method: &Method, path: &str, body: Option<&Value>) -> String {
    let mut digest = Sha256::new();
    digest.update(method.as_str());
    digest.update(b" ");
    digest.update(path);
    digest.update(b"\n");
    if let Some(body) = body {
        digest.update(body.to_string());
    }
    hex(&digest.finalize())
}

#[derive(Serialize, Deserialize)]
struct Record {
    /// The claim counter's value that owns this record.
    claim: i64,
    fingerprint: String,
    claimed_at: Timestamp,
    reply: Option<Reply>,
    /// The claimant gave the key back (its answer was a 5xx).
    released: bool,
}

/// The right to run the request a key names, and to store its answer.
pub struct Claim {
    claim: i64,
    claimed_at: Timestamp,
}

pub enum Begin {
    Replay(Reply),
    Proceed(Claim),
}

pub struct Keeper {
    store: Store,
    record_key: String,
    claim_key: String,
    fingerprint: String,
    /// After this long an unanswered claim counts as abandoned.
    abandoned_after_seconds: u64,
}

fn storage(_: crate::adapters::store::StorageUnavailable) -> ApiError {
    ApiError::service_unavailable("Storage is unavailable")
}

impl Keeper {
    /// Keys are per calling legal entity, stored hashed.
    pub fn open(
        legal_entity_id: &str,
        key: &str,
        fingerprint: String,
        settings: &Settings,
    ) -> Result<Self, ApiError> {
        let store = Store::open().map_err(storage)?;
        let scoped = hex(&Sha256::digest(format!("{legal_entity_id}\n{key}"))[..16]);
        Ok(Self {
            store,
            record_key: format!("idempotency:{scoped}"),
            claim_key: format!("idempotency_claim:{scoped}"),
            fingerprint,
            abandoned_after_seconds: settings.limits.pending_timeout_seconds,
        })
    }

    pub fn begin(&self) -> Result<Begin, ApiError> {
        let now = clock::now();
        let record: Option<Record> = self.store.get_json(&self.record_key).map_err(storage)?;
        let live = record
            .as_ref()
            .filter(|r| !r.released && now < r.claimed_at.plus_seconds(KEPT_SECONDS));
        if let Some(live) = live {
            if live.fingerprint != self.fingerprint {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation_failed",
                    "Idempotency-Key was already used with another request",
                ));
            }
            if let Some(reply) = &live.reply {
                return Ok(Begin::Replay(
                    reply.clone().with_header("idempotent-replayed", "true"),
                ));
            }
            if now < live.claimed_at.plus_seconds(self.abandoned_after_seconds) {
                return Err(in_progress());
            }
        }
        // Exactly one request gets the next claim value; a loser takes its
        // increment back, so that it never stands in a later claimant's way.
        let expected = record.as_ref().map_or(0, |r| r.claim) + 1;
        let claim = self.store.increment(&self.claim_key, 1).map_err(storage)?;
        if claim != expected {
            let _ = self.store.increment(&self.claim_key, -1);
            return Err(in_progress());
        }
        let claimed = Record {
            claim,
            fingerprint: self.fingerprint.clone(),
            claimed_at: now,
            reply: None,
            released: false,
        };
        self.store
            .set_json(&self.record_key, &claimed)
            .map_err(storage)?;
        Ok(Begin::Proceed(Claim {
            claim,
            claimed_at: now,
        }))
    }

    /// Keeps the answer for replay, or releases the key after a 5xx.
    pub fn finish(&self, claim: Claim, reply: &Reply) {
        let released = reply.status().is_server_error();
        let record = Record {
            claim: claim.claim,
            fingerprint: self.fingerprint.clone(),
            claimed_at: claim.claimed_at,
            reply: (!released).then(|| reply.clone()),
            released,
        };
        // If this write fails, the claim is abandoned and expires: a retry
        // waits a little and then runs again; the answer already went out.
        let _ = self.store.set_json(&self.record_key, &record);
    }
}

fn in_progress() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "request_conflict",
        "A request with this Idempotency-Key is in progress; retry later",
    )
    .with_header("retry-after", 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn keys_are_short_printable_strings() {
        let mut headers = HeaderMap::new();
        assert_eq!(key(&headers).unwrap(), None);
        headers.insert("idempotency-key", HeaderValue::from_static("abc-123"));
        assert_eq!(key(&headers).unwrap().as_deref(), Some("abc-123"));
        headers.insert("idempotency-key", HeaderValue::from_static("has space"));
        assert!(key(&headers).is_err());
        headers.insert(
            "idempotency-key",
            HeaderValue::from_str(&"k".repeat(256)).unwrap(),
        );
        assert!(key(&headers).is_err());
    }

    #[test]
    fn fingerprints_ignore_spacing_but_not_content() {
        let a: Value = serde_json::from_str(r#"{"a": 1}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{ "a":1 }"#).unwrap();
        let c: Value = serde_json::from_str(r#"{"a": 2}"#).unwrap();
        let path = "/api/merge_requests";
        assert_eq!(
            fingerprint(&Method::POST, path, Some(&a)),
            fingerprint(&Method::POST, path, Some(&b))
        );
        assert_ne!(
            fingerprint(&Method::POST, path, Some(&a)),
            fingerprint(&Method::POST, path, Some(&c))
        );
        assert_ne!(
            fingerprint(&Method::POST, path, None),
            fingerprint(&Method::POST, "/other", None)
        );
    }
}
