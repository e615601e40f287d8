//! HTTP concerns: routing, the request body rules, authentication, the
//! envelope and the request log. Domain decisions happen elsewhere.

pub mod auth;
mod body;
mod envelope;
mod idempotency;
pub mod views;

use http::{Method, StatusCode};
use serde_json::{Value, json};
use spin_sdk::http::Request;

use crate::adapters::settings::{Settings, SettingsError};
use crate::adapters::{clock, random};
use crate::app::{self, Actor, Failure, Trace};
use crate::domain::{
    CodeRefused, FieldError, LimitReached, MergeRequestId, NewMergeRequest, VerificationId,
    parse_verification_code,
};
use envelope::{ApiError, HttpResponse, Reply, RequestMeta, header, success};

const MERGE_REQUEST_WRITE: &str = "merge_request:write";
const MERGE_REQUEST_READ: &str = "merge_request:read";

/// One line of the request log: never a code, token, key or full number.
#[derive(Default)]
struct LogLine {
    route: &'static str,
    outcome: &'static str,
    legal_entity_id: Option<String>,
    merge_request_id: Option<String>,
    trace: Trace,
}

/// The routes, with the `{id}` segment as it came.
enum Route<'a> {
    Create,
    Read(&'a str),
    Resend(&'a str),
    Approve(&'a str),
    Reject(&'a str),
}

impl<'a> Route<'a> {
    /// The route of `path`; a known path with another method is 405 with `Allow`.
    fn resolve(method: &Method, path: &'a str) -> Result<Self, ApiError> {
        let segments: Vec<&str> = path.split('/').collect();
        let (route, allowed) = match segments.as_slice() {
            ["", "api", "merge_requests"] => (Self::Create, Method::POST),
            ["", "api", "merge_requests", id] => (Self::Read(id), Method::GET),
            ["", "api", "merge_requests", id, "actions", "resend_otp"] => {
                (Self::Resend(id), Method::POST)
            }
            ["", "api", "merge_requests", id, "actions", "approve"] => {
                (Self::Approve(id), Method::PATCH)
            }
            ["", "api", "merge_requests", id, "actions", "reject"] => {
                (Self::Reject(id), Method::PATCH)
            }
            _ => return Err(ApiError::not_found("Route not found")),
        };
        if *method != allowed {
            return Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
            )
            .with_header("allow", allowed.as_str()));
        }
        Ok(route)
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Read(_) => "read",
            Self::Resend(_) => "resend_otp",
            Self::Approve(_) => "approve",
            Self::Reject(_) => "reject",
        }
    }

    /// What the log says a successful request did.
    fn outcome(&self) -> &'static str {
        match self {
            Self::Create => "created",
            Self::Read(_) => "read",
            Self::Resend(_) => "sent",
            Self::Approve(_) => "approved",
            Self::Reject(_) => "rejected",
        }
    }

    fn scope(&self) -> &'static str {
        match self {
            Self::Read(_) => MERGE_REQUEST_READ,
            _ => MERGE_REQUEST_WRITE,
        }
    }
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
    let reply = handle(request, &meta, &mut log)
        .await
        .unwrap_or_else(|error| error.into_reply(&meta));
    write_log(&meta, &method, &log, reply.status());
    reply.into_http()
}

/// The checks every route shares, in the contract's order, then the route.
async fn handle(
    request: Request,
    meta: &RequestMeta,
    log: &mut LogLine,
) -> Result<Reply, ApiError> {
    let path = request.uri().path().to_owned();
    let route = Route::resolve(request.method(), &path)?;
    log.route = route.name();
    let settings = Settings::load().map_err(misconfigured)?;
    let caller = auth::authenticate(
        request.headers(),
        &settings.auth,
        clock::now().unix_seconds().max(0) as u64,
    )?;
    log.legal_entity_id = Some(caller.legal_entity_id.clone());
    caller.require_scope(route.scope())?;
    let idempotency_key = match route {
        Route::Create | Route::Resend(_) => idempotency::key(request.headers())?,
        _ => None,
    };
    let fingerprint_method = request.method().clone();
    let body = body::read_json(request, settings.max_body_bytes).await?;

    let Some(key) = idempotency_key else {
        return execute(&route, &settings, &caller, body.as_ref(), meta, log).await;
    };
    let fingerprint = idempotency::fingerprint(&fingerprint_method, &path, body.as_ref());
    let keeper = idempotency::Keeper::open(&caller.legal_entity_id, &key, fingerprint, &settings)?;
    let claim = match keeper.begin()? {
        idempotency::Begin::Replay(reply) => {
            log.outcome = "replayed";
            return Ok(reply);
        }
        idempotency::Begin::Proceed(claim) => claim,
    };
    let reply = execute(&route, &settings, &caller, body.as_ref(), meta, log)
        .await
        .unwrap_or_else(|error| error.into_reply(meta));
    keeper.finish(claim, &reply);
    Ok(reply)
}

async fn execute(
    route: &Route<'_>,
    settings: &Settings,
    caller: &auth::Caller,
    body: Option<&Value>,
    meta: &RequestMeta,
    log: &mut LogLine,
) -> Result<Reply, ApiError> {
    let actor = Actor {
        user_id: &caller.user_id,
        legal_entity_id: &caller.legal_entity_id,
    };
    let mut merge_request_id = |raw: &str| {
        let id = MergeRequestId::parse(raw)
            .ok_or_else(|| ApiError::not_found("Merge request not found"))?;
        log.merge_request_id = Some(id.to_string());
        Ok::<_, ApiError>(id)
    };

    let (status, data, headers) = match *route {
        Route::Create => {
            let new = NewMergeRequest::parse(body).map_err(invalid_fields)?;
            let created = app::create(settings, &actor, new, &mut log.trace)
                .await
                .map_err(failure)?;
            log.merge_request_id = Some(created.merge_request.id.to_string());
            (
                StatusCode::CREATED,
                views::merge_request(&created),
                Vec::new(),
            )
        }
        Route::Read(raw) => {
            let id = merge_request_id(raw)?;
            let found = app::read(settings, &caller.legal_entity_id, id).map_err(failure)?;
            (StatusCode::OK, views::merge_request(&found), Vec::new())
        }
        Route::Resend(raw) => {
            let id = merge_request_id(raw)?;
            let resent = app::resend_otp(settings, &caller.legal_entity_id, id, &mut log.trace)
                .await
                .map_err(failure)?;
            let headers = [
                header("x-otp-sends-remaining", resent.sends_remaining),
                resent
                    .resend_after_seconds
                    .and_then(|after| header("x-otp-resend-after", after)),
            ];
            (
                StatusCode::OK,
                views::verification(&resent.verification),
                headers.into_iter().flatten().collect(),
            )
        }
        Route::Approve(raw) => {
            let id = merge_request_id(raw)?;
            let code = parse_verification_code(body).map_err(invalid_fields)?;
            let approved = app::approve(settings, &actor, id, &code).map_err(failure)?;
            (StatusCode::OK, views::merge_request(&approved), Vec::new())
        }
        Route::Reject(raw) => {
            let id = merge_request_id(raw)?;
            let rejected = app::reject(settings, &caller.legal_entity_id, id).map_err(failure)?;
            (StatusCode::OK, views::merge_request(&rejected), Vec::new())
        }
    };
    log.outcome = route.outcome();
    Ok(success(status, data, meta, headers))
}

fn invalid_fields(errors: Vec<FieldError>) -> ApiError {
    ApiError::invalid(
        errors
            .into_iter()
            .map(|e| {
                json!({
                    "entry_type": "json_data_property",
                    "entry": e.entry,
                    "rules": [{"rule": e.rule, "description": e.description, "params": []}],
                })
            })
            .collect(),
    )
}

fn misconfigured(error: SettingsError) -> ApiError {
    eprintln!(
        "{}",
        json!({"level": "error", "message": "invalid configuration", "error": error.0})
    );
    ApiError::service_unavailable("Service is not configured")
}

fn failure(failure: Failure) -> ApiError {
    let forbidden = |message| ApiError::new(StatusCode::FORBIDDEN, "forbidden", message);
    let unprocessable = |message| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            message,
        )
    };
    match failure {
        Failure::NotFound => ApiError::not_found("Merge request not found"),
        Failure::IncorrectStatus => ApiError::validation_failed("$.status", "incorrect status"),
        Failure::NotOtp => {
            ApiError::validation_failed("$.authentication_method_current", "Auth method is not OTP")
        }
        Failure::NotCreator => {
            unprocessable("User doesn't belong to legal entity where the merge request was created")
        }
        Failure::DestinationNotAllowed => ApiError::validation_failed(
            "$.authentication_method_current.phone_number",
            "SMS to this country code is not allowed",
        ),
        Failure::NotRejectable => unprocessable("Incorrect status to reject merge request"),
        Failure::Code(CodeRefused::NoActiveCode | CodeRefused::Invalid) => {
            forbidden("Invalid verification code")
        }
        Failure::Code(CodeRefused::Expired) => forbidden("Verification code expired"),
        Failure::Code(CodeRefused::MaxAttempts) => forbidden("Maximum attempts exceed"),
        Failure::Limit(limit) => too_many_requests(limit),
        Failure::SmsUnavailable(_) => ApiError::service_unavailable("SMS gateway is unavailable")
            .with_header("retry-after", 30),
        Failure::Storage => ApiError::service_unavailable("Storage is unavailable"),
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
