//! Who is calling: the access token (a JWT verified here, against keys from
//! variables) and the `Api-Key` of the calling MIS, checked in the order of
//! the contract's table.

use chrono::{DateTime, TimeDelta};
use http::{HeaderMap, StatusCode};
use jwt_compact::alg::{Ed25519, Es256, Hs256, Hs256Key};
use jwt_compact::jwk::JsonWebKey;
use jwt_compact::{AlgorithmExt, TimeOptions, Token, UntrustedToken};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::envelope::ApiError;
use crate::adapters::settings::AuthSettings;

/// Longer tokens are refused before any parsing: no legitimate token is this big.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

pub struct Caller {
    pub user_id: String,
    pub legal_entity_id: String,
    scopes: Vec<String>,
}

#[derive(Clone, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    client_id: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    azp: Option<String>,
}

pub fn authenticate(
    headers: &HeaderMap,
    settings: &AuthSettings,
    now_unix: u64,
) -> Result<Caller, ApiError> {
    let token = bearer_token(headers).ok_or_else(|| {
        ApiError::access_denied("Authorization header is not set or doesn't contain Bearer token")
    })?;
    let claims = verify_token(token, settings, now_unix)
        .ok_or_else(|| ApiError::access_denied("Invalid access token"))?;
    let mut api_keys = headers
        .get_all("api-key")
        .iter()
        .map(|v| v.as_bytes())
        .filter(|v| !v.is_empty());
    let api_key = api_keys
        .next()
        .ok_or_else(|| ApiError::access_denied("Api key is not set"))?;
    // Two keys in one request leave it unclear which MIS is calling.
    let mis_id = Some(api_key)
        .filter(|_| api_keys.next().is_none())
        .and_then(|key| registered_mis(key, &settings.mis_api_keys))
        .ok_or_else(|| ApiError::access_denied("Invalid api key"))?;
    if claims.azp.as_ref().is_some_and(|azp| *azp != mis_id) {
        return Err(ApiError::access_denied("Invalid api key"));
    }
    Ok(Caller {
        user_id: claims.sub,
        legal_entity_id: claims.client_id,
        scopes: claims.scope.split_whitespace().map(str::to_owned).collect(),
    })
}

impl Caller {
    pub fn require_scope(&self, scope: &str) -> Result<(), ApiError> {
        if self.scopes.iter().any(|s| s == scope) {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "Your scope does not allow to access this resource. Missing allowances: {scope}"
            ),
        ))
    }
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The key is chosen by `kid` and the algorithm comes from the key, never from
/// the token: a token cannot talk the verifier into `none` or into using a
/// public key as an HMAC secret.
fn verify_token(token: &str, settings: &AuthSettings, now_unix: u64) -> Option<Claims> {
    if token.len() > MAX_TOKEN_BYTES {
        return None;
    }
    let untrusted = UntrustedToken::new(token).ok()?;
    let kid = untrusted.header().key_id.as_deref()?;
    let keys: Value = serde_json::from_str(&settings.jwks).ok()?;
    let entry = keys["keys"]
        .as_array()?
        .iter()
        .find(|key| key["kid"] == kid)?;
    let jwk: JsonWebKey<'_> = serde_json::from_value(entry.clone()).ok()?;
    // Each validator accepts only its own `alg` in the header.
    let token: Token<Claims> = match &jwk {
        JsonWebKey::EllipticCurve { .. } => {
            let key = p256::ecdsa::VerifyingKey::try_from(&jwk).ok()?;
            Es256.validator(&key).validate(&untrusted).ok()?
        }
        JsonWebKey::KeyPair { .. } => {
            let key = ed25519_dalek::VerifyingKey::try_from(&jwk).ok()?;
            Ed25519.validator(&key).validate(&untrusted).ok()?
        }
        JsonWebKey::Symmetric { .. } if settings.allow_hs256 => {
            let key = Hs256Key::try_from(&jwk).ok()?;
            Hs256.validator(&key).validate(&untrusted).ok()?
        }
        _ => return None,
    };
    let claims = token.claims();
    let now = DateTime::from_timestamp(i64::try_from(now_unix).ok()?, 0)?;
    let leeway = TimeDelta::seconds(i64::try_from(settings.leeway_seconds).ok()?);
    let options = TimeOptions::new(leeway, move || now);
    // `exp` is required; `nbf` and `iat` are checked when present.
    claims.validate_expiration(&options).ok()?;
    if claims.not_before.is_some() {
        claims.validate_maturity(&options).ok()?;
    }
    let issued_in_future = claims.issued_at.is_some_and(|iat| iat > now + leeway);
    (!issued_in_future && claims.custom.iss == settings.issuer).then(|| claims.custom.clone())
}

/// The MIS whose registered key hash equals SHA-256 of `api_key`. Every entry
/// is compared, in constant time, so timing reveals neither which nor how much.
fn registered_mis<'a>(api_key: &[u8], registered: &'a [(String, [u8; 32])]) -> Option<&'a str> {
    let digest: [u8; 32] = Sha256::digest(api_key).into();
    registered.iter().fold(None, |found, (mis_id, expected)| {
        let matches: bool = digest.ct_eq(expected).into();
        found.or(matches.then_some(mis_id.as_str()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_needs_a_token() {
        assert_eq!(
            bearer_token(&headers(&[("authorization", "Bearer abc")])),
            Some("abc")
        );
        assert_eq!(
            bearer_token(&headers(&[("authorization", "bearer  abc ")])),
            Some("abc")
        );
        assert_eq!(
            bearer_token(&headers(&[("authorization", "Bearer ")])),
            None
        );
        assert_eq!(
            bearer_token(&headers(&[("authorization", "Basic abc")])),
            None
        );
        assert_eq!(bearer_token(&headers(&[])), None);
    }

    fn settings() -> AuthSettings {
        AuthSettings {
            jwks: r#"{"keys":[{"kty":"oct","kid":"hs","k":"c2VjcmV0"}]}"#.into(),
            allow_hs256: true,
            leeway_seconds: 30,
            issuer: "https://issuer".into(),
            mis_api_keys: vec![("mis".into(), [0; 32])],
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_tokens_are_refused_without_panicking(token in "\\PC{0,300}") {
            proptest::prop_assert!(verify_token(&token, &settings(), 0).is_none());
        }

        #[test]
        fn arbitrary_header_bytes_never_panic(
            authorization in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
            api_key in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
        ) {
            let mut map = HeaderMap::new();
            if let Ok(value) = HeaderValue::from_bytes(&authorization) {
                map.insert(http::header::AUTHORIZATION, value);
            }
            if let Ok(value) = HeaderValue::from_bytes(&api_key) {
                map.insert("api-key", value);
            }
            proptest::prop_assert!(authenticate(&map, &settings(), 0).is_err());
        }
    }

    #[test]
    fn api_keys_match_by_sha256() {
        let digest: [u8; 32] = Sha256::digest(b"secret-key").into();
        let registered = vec![
            ("mis-a".to_owned(), [0u8; 32]),
            ("mis-b".to_owned(), digest),
        ];
        assert_eq!(registered_mis(b"secret-key", &registered), Some("mis-b"));
        assert_eq!(registered_mis(b"other-key", &registered), None);
    }
}
