//! Access tokens for development and tests, signed the way the eHealth
//! authorization server signs them.

use anyhow::{Context, Result};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use std::time::{SystemTime, UNIX_EPOCH};

/// The private half of the `development` key in `spin.toml`'s default
/// `auth_jwks`. It signs nothing but local tokens.
const DEVELOPMENT_KEY_PEM: &str = include_str!("../../../dev/development-signing-key.pem");

pub struct Signer {
    kid: String,
    algorithm: Algorithm,
    key: EncodingKey,
}

impl Signer {
    pub fn es256(kid: &str, pkcs8_der: &[u8]) -> Self {
        Self {
            kid: kid.into(),
            algorithm: Algorithm::ES256,
            key: EncodingKey::from_ec_der(pkcs8_der),
        }
    }

    pub fn ed25519(kid: &str, pkcs8_der: &[u8]) -> Self {
        Self {
            kid: kid.into(),
            algorithm: Algorithm::EdDSA,
            key: EncodingKey::from_ed_der(pkcs8_der),
        }
    }

    pub fn hs256(kid: &str, secret: &[u8]) -> Self {
        Self {
            kid: kid.into(),
            algorithm: Algorithm::HS256,
            key: EncodingKey::from_secret(secret),
        }
    }

    pub fn development() -> Result<Self> {
        let body: String = DEVELOPMENT_KEY_PEM
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .context("the development key is not PEM")?;
        Ok(Self::ed25519("development", &der))
    }

    /// Signs `claims` with this key's `kid` and algorithm.
    pub fn sign(&self, claims: &Value) -> Result<String> {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        Ok(encode(&header, claims, &self.key)?)
    }
}

/// The claims an eHealth token carries, valid for `ttl_seconds` from now.
pub fn claims(
    issuer: &str,
    client_id: &str,
    user_id: &str,
    scope: &str,
    ttl_seconds: i64,
) -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    json!({
        "iss": issuer,
        "sub": user_id,
        "client_id": client_id,
        "scope": scope,
        "iat": now,
        "exp": now + ttl_seconds,
    })
}
