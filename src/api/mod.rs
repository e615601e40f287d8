//! HTTP concerns: routing, the request body rules, authentication, the
//! envelope and the request log. Domain decisions happen elsewhere.

mod auth;
mod body;
mod envelope;

use http::{Method, StatusCode};
use serde_json::json;
use spin_sdk::http::Request;

use crate::adapters::settings::{Settings, SettingsError};
use crate::adapters::{clock, random};
use crate::domain::{LimitReached, MergeRequestId, NotResendable, VerificationId};
use crate::resend::{ResendError, ResendTrace, resend_otp};
use envelope::{ApiError, HttpResponse, RequestMeta, header, success};

const MERGE_REQUEST_WRITE: &str = "merge_request:write";

/// One line of the request log: never a code, token, key or full number.
#[derive(Default)]
struct LogLine {
    route: &'static str,
    outcome: &'static str,
    legal_entity_id: Option<String>,
    merge_request_id: Option<String>,
    trace: ResendTrace,
}

pub async fn serve(request: Request) -> HttpResponse {
    let meta = RequestMeta::from_request(request.headers(), request.uri(), || {
        VerificationId::from_random_bytes(random::bytes()).to_string()
    });
    let method = request.method().clone();
    let mut log = LogLine {
        route: "unmatched",
        outcome: "refused",
        ..LogLine::default()
    };
    let response = match route(request, &meta, &mut log).await {
        Ok(response) => response,
        Err(error) => error.into_response(&meta),
    };
    write_log(&meta, &method, &log, response.status());
    response
}

async fn route(
    request: Request,
    meta: &RequestMeta,
    log: &mut LogLine,
) -> Result<HttpResponse, ApiError> {
    let segments: Vec<&str> = request.uri().path().split('/').collect();
    let raw_id = match segments.as_slice() {
        ["", "api", "merge_requests", id, "actions", "resend_otp"] => (*id).to_owned(),
        _ => return Err(ApiError::not_found("Route not found")),
    };
    log.route = "resend_otp";
    if request.method() != Method::POST {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "Method not allowed",
        )
        .with_header("allow", "POST"));
    }
    let settings = Settings::load().map_err(misconfigured)?;
    let caller = auth::authenticate(
        request.headers(),
        &settings.auth,
        clock::now().unix_seconds().max(0) as u64,
    )?;
    log.legal_entity_id = Some(caller.legal_entity_id.clone());
    caller.require_scope(MERGE_REQUEST_WRITE)?;
    body::read_json_or_empty(request, settings.max_body_bytes).await?;
    let id = MergeRequestId::parse(&raw_id)
        .ok_or_else(|| ApiError::not_found("Merge request not found"))?;
    log.merge_request_id = Some(id.to_string());

    let resent = resend_otp(&settings, &caller.legal_entity_id, id, &mut log.trace)
        .await
        .map_err(resend_error)?;
    log.outcome = "sent";
    let verification = &resent.verification;
    let headers = [
        header("x-otp-sends-remaining", resent.sends_remaining),
        resent
            .resend_after_seconds
            .and_then(|after| header("x-otp-resend-after", after)),
    ];
    let data = json!({
        "id": verification.id,
        "status": verification.status,
        "code_expired_at": verification.code_expired_at.to_rfc3339(),
        "active": verification.active,
    });
    Ok(success(
        StatusCode::OK,
        data,
        meta,
        headers.into_iter().flatten().collect(),
    ))
}

fn misconfigured(error: SettingsError) -> ApiError {
    eprintln!(
        "{}",
        json!({"level": "error", "message": "invalid configuration", "error": error.0})
    );
    ApiError::service_unavailable("Service is not configured")
}

fn resend_error(error: ResendError) -> ApiError {
    match error {
        ResendError::NotFound => ApiError::not_found("Merge request not found"),
        ResendError::NotResendable(NotResendable::IncorrectStatus) => {
            ApiError::validation_failed("$.status", "incorrect status")
        }
        ResendError::NotResendable(NotResendable::NotOtp) => {
            ApiError::validation_failed("$.authentication_method_current", "Auth method is not OTP")
        }
        ResendError::Limit(limit) => too_many_requests(limit),
        ResendError::SmsUnavailable(failure) => {
            eprintln!(
                "{}",
                json!({"level": "error", "message": "SMS gateway failed", "error": failure.to_string()})
            );
            ApiError::service_unavailable("SMS gateway is unavailable")
                .with_header("retry-after", 30)
        }
        ResendError::Storage => ApiError::service_unavailable("Storage is unavailable"),
    }
}

fn too_many_requests(limit: LimitReached) -> ApiError {
    let message = match limit {
        LimitReached::MaxSends => {
            "Maximum number of OTP sends for this merge request is reached; create a new merge request".to_owned()
        }
        LimitReached::Cooldown { retry_after_seconds } => {
            format!("OTP was sent recently; a resend is allowed in {retry_after_seconds} seconds")
        }
        LimitReached::PhoneDaily { retry_after_seconds } => format!(
            "Daily OTP limit for this phone number is reached; a resend is allowed in {retry_after_seconds} seconds"
        ),
    };
    let error = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", message);
    match limit.retry_after_seconds() {
        Some(seconds) => error.with_header("retry-after", seconds),
        None => error,
    }
}

fn write_log(meta: &RequestMeta, method: &Method, log: &LogLine, status: StatusCode) {
    let trace = &log.trace;
    let outcome = if status.is_success() {
        log.outcome
    } else {
        "refused"
    };
    println!(
        "{}",
        json!({
            "time": clock::now().to_rfc3339(),
            "request_id": meta.request_id,
            "method": method.as_str(),
            "route": log.route,
            "status": status.as_u16(),
            "outcome": outcome,
            "legal_entity_id": log.legal_entity_id,
            "merge_request_id": log.merge_request_id,
            "verification_id": trace.verification_id,
            "phone": trace.phone_masked,
            "gateway": trace.gateway,
            "gateway_latency_ms": trace.gateway_latency_ms,
        })
    );
}
