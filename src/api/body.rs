//! The request body rules of the envelope: size, media type, JSON.

use http::StatusCode;
use http_body_util::{BodyExt, Limited};
use spin_sdk::http::Request;

use super::envelope::ApiError;

/// A body is optional (`None`); when present it must be JSON within `max_bytes`.
pub async fn read_json(
    request: Request,
    max_bytes: usize,
) -> Result<Option<serde_json::Value>, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            format!("Request body is larger than {max_bytes} bytes"),
        )
    };
    let declared_length = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared_length.is_some_and(|length| length > max_bytes as u64) {
        return Err(too_large());
    }
    let is_json = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_json_media_type);
    let body = Limited::new(request.into_body(), max_bytes)
        .collect()
        .await
        .map_err(|error| {
            if error.is::<http_body_util::LengthLimitError>() {
                too_large()
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "request_malformed",
                    "Request body could not be read",
                )
            }
        })?
        .to_bytes();
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if !is_json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content_type_invalid",
            "Invalid content type: expected application/json",
        ));
    }
    serde_json::from_slice(&body).map(Some).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "request_malformed",
            "Request body is not valid JSON",
        )
    })
}

/// `application/json`, any `+json` type, with or without parameters.
fn is_json_media_type(value: &str) -> bool {
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_media_types() {
        assert!(is_json_media_type("application/json"));
        assert!(is_json_media_type("Application/JSON; charset=utf-8"));
        assert!(is_json_media_type("application/problem+json"));
        assert!(!is_json_media_type("text/plain"));
        assert!(!is_json_media_type("application/jsonx"));
    }

    proptest::proptest! {
        #[test]
        fn media_type_parsing_never_panics(value in "\\PC*") {
            let _ = is_json_media_type(&value);
        }
    }
}
