//! The SMS gateway client: one outbound HTTP call per attempt, with a timeout,
//! and one try of the fallback gateway before giving up.

use std::fmt;
use std::pin::pin;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use futures::future::{Either, select};
use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use http_body_util::{BodyExt, Limited};
use spin_sdk::http::{FullBody, send};

use super::settings::{SmsProvider, SmsSettings};
use crate::domain::{PhoneNumber, VerificationId};

pub struct SmsMessage<'a> {
    pub to: &'a PhoneNumber,
    pub text: String,
    /// The verification the code belongs to: the gateway's idempotency key,
    /// so a retried call never sends the same code twice.
    pub reference: VerificationId,
}

/// How the message left.
pub struct Delivery {
    pub gateway: &'static str,
    pub latency: Duration,
    /// The gateway's id for the message (`id`, or Twilio's `sid`), when its
    /// answer names one: what a support request to the provider quotes.
    pub message_id: Option<String>,
}

/// Gateway answers are read this far for the message id; the rest is ignored.
const MAX_GATEWAY_ANSWER_BYTES: usize = 4096;

/// Every attempt failed; what the last one saw.
#[derive(Debug)]
pub enum SmsError {
    Timeout,
    Rejected(u16),
    Unreachable(String),
    InvalidRequest,
}

impl fmt::Display for SmsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout => f.write_str("timed out"),
            Self::Rejected(status) => write!(f, "answered {status}"),
            Self::Unreachable(detail) => write!(f, "unreachable: {detail}"),
            Self::InvalidRequest => f.write_str("gateway URL is invalid"),
        }
    }
}

pub struct SmsClient<'a> {
    settings: &'a SmsSettings,
}

impl<'a> SmsClient<'a> {
    pub fn new(settings: &'a SmsSettings) -> Self {
        Self { settings }
    }

    pub async fn send(&self, message: &SmsMessage<'_>) -> Result<Delivery, SmsError> {
        let started = Instant::now();
        let primary = match self.settings.provider {
            SmsProvider::Log => {
                // The one place a code and a full number may be printed: the
                // developer's own SMS sink, marked so no one mistakes it.
                println!("DEV SMS to {}: {}", message.to.as_str(), message.text);
                return Ok(Delivery {
                    gateway: "log",
                    latency: started.elapsed(),
                    message_id: None,
                });
            }
            SmsProvider::Http => self.post(http_gateway_request(
                &self.settings.gateway_url,
                &self.settings.gateway_token,
                message,
            )),
            SmsProvider::Twilio => self.post(twilio_request(self.settings, message)),
        }
        .await;
        let failure = match primary {
            Ok(message_id) => {
                return Ok(Delivery {
                    gateway: "primary",
                    latency: started.elapsed(),
                    message_id,
                });
            }
            Err(failure) => failure,
        };
        let Some(fallback_url) = &self.settings.fallback_url else {
            return Err(failure);
        };
        log_attempt_failed("primary", &failure, message.to);
        self.post(http_gateway_request(
            fallback_url,
            &self.settings.fallback_token,
            message,
        ))
        .await
        .map(|message_id| Delivery {
            gateway: "fallback",
            latency: started.elapsed(),
            message_id,
        })
    }

    async fn post(
        &self,
        request: Result<http::Request<FullBody<Bytes>>, SmsError>,
    ) -> Result<Option<String>, SmsError> {
        let request = request?;
        // The timeout covers the whole exchange, the answer's body included.
        let exchange = pin!(async {
            let response = send(request)
                .await
                .map_err(|error| SmsError::Unreachable(format!("{error:?}")))?;
            if !response.status().is_success() {
                return Err(SmsError::Rejected(response.status().as_u16()));
            }
            // A 2xx is a sent message whatever its body says; the body only
            // lends the message id.
            let body = Limited::new(response.into_body(), MAX_GATEWAY_ANSWER_BYTES)
                .collect()
                .await
                .map(|collected| collected.to_bytes())
                .unwrap_or_default();
            Ok(message_id(&body))
        });
        let deadline = pin!(spin_sdk::time::sleep(self.settings.timeout));
        match select(exchange, deadline).await {
            Either::Left((outcome, _)) => outcome,
            Either::Right(((), _)) => Err(SmsError::Timeout),
        }
    }
}

/// `id` (the `http` contract) or `sid` (Twilio) of a JSON answer, if it is a
/// short printable string.
fn message_id(body: &[u8]) -> Option<String> {
    let answer: serde_json::Value = serde_json::from_slice(body).ok()?;
    let id = answer.get("id").or_else(|| answer.get("sid"))?.as_str()?;
    (!id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()))
        .then(|| id.to_owned())
}

fn log_attempt_failed(gateway: &str, failure: &SmsError, to: &PhoneNumber) {
    eprintln!(
        "{}",
        serde_json::json!({
            "level": "warn",
            "message": "SMS gateway failed, trying the fallback",
            "gateway": gateway,
            "error": failure.to_string(),
            "phone": to.masked(),
        })
    );
}

/// The `http` provider's contract: a JSON body, bearer token, idempotency key.
fn http_gateway_request(
    url: &str,
    token: &str,
    message: &SmsMessage<'_>,
) -> Result<http::Request<FullBody<Bytes>>, SmsError> {
    let body = serde_json::json!({
        "to": message.to.as_str(),
        "text": message.text,
        "reference": message.reference.to_string(),
    });
    let mut builder = http::Request::post(url)
        .header(CONTENT_TYPE, "application/json")
        .header("idempotency-key", message.reference.to_string());
    if !token.is_empty() {
        builder = builder.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    with_length(builder, Bytes::from(body.to_string()))
}

/// Twilio's Messages API: a form body and Basic auth with the account SID.
fn twilio_request(
    settings: &SmsSettings,
    message: &SmsMessage<'_>,
) -> Result<http::Request<FullBody<Bytes>>, SmsError> {
    let url = format!(
        "{}/2010-04-01/Accounts/{}/Messages.json",
        settings.gateway_url.trim_end_matches('/'),
        settings.twilio_account_sid
    );
    let body = format!(
        "To={}&From={}&Body={}",
        form_encode(message.to.as_str()),
        form_encode(&settings.twilio_from),
        form_encode(&message.text)
    );
    let credentials = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        settings.twilio_account_sid, settings.twilio_auth_token
    ));
    let builder = http::Request::post(url)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(AUTHORIZATION, format!("Basic {credentials}"))
        .header("idempotency-key", message.reference.to_string());
    with_length(builder, Bytes::from(body))
}

/// Spin streams a body without a length as chunked, which many gateways refuse.
fn with_length(
    builder: http::request::Builder,
    body: Bytes,
) -> Result<http::Request<FullBody<Bytes>>, SmsError> {
    builder
        .header(CONTENT_LENGTH, body.len())
        .body(FullBody::new(body))
        .map_err(|_| SmsError::InvalidRequest)
}

/// `application/x-www-form-urlencoded`: unreserved bytes as they are, space as
/// `+`, everything else (Cyrillic included) percent-encoded as UTF-8.
fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(char::from(byte))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_come_from_id_or_sid() {
        assert_eq!(message_id(br#"{"id": "m-1"}"#).as_deref(), Some("m-1"));
        assert_eq!(message_id(br#"{"sid": "SM123"}"#).as_deref(), Some("SM123"));
        assert_eq!(message_id(br#"{"id": 7}"#), None);
        assert_eq!(message_id(br#"{"id": "has space"}"#), None);
        assert_eq!(message_id(b"not json"), None);
    }

    #[test]
    fn form_encoding_escapes_plus_and_utf8() {
        assert_eq!(form_encode("+380501234567"), "%2B380501234567");
        assert_eq!(form_encode("Код 12"), "%D0%9A%D0%BE%D0%B4+12");
    }
}
