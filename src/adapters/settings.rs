//! The component's configuration: Spin variables read through `wasi:config`,
//! parsed once per request into typed settings.

use std::collections::HashMap;
use std::time::Duration;

use crate::bindings::wasi::config::store as config;
use crate::domain::{CodeLength, SendLimits};

/// A variable is missing or does not parse; the message names it, never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsProvider {
    /// Prints the message to the component's log: for a developer's laptop only.
    Log,
    Http,
    Twilio,
}

#[derive(Clone)]
pub struct Settings {
    pub code_length: CodeLength,
    pub code_ttl_seconds: u64,
    pub max_attempts: u32,
    pub merge_request_ttl_seconds: u64,
    pub otp_hash_key: Vec<u8>,
    pub sms_template: String,
    pub limits: SendLimits,
    pub sms: SmsSettings,
    pub max_body_bytes: usize,
    pub auth: AuthSettings,
}

#[derive(Clone)]
pub struct SmsSettings {
    pub provider: SmsProvider,
    pub timeout: Duration,
    pub gateway_url: String,
    pub gateway_token: String,
    pub fallback_url: Option<String>,
    pub fallback_token: String,
    pub twilio_account_sid: String,
    pub twilio_auth_token: String,
    pub twilio_from: String,
    /// Country prefixes SMS may go to (`+380` by default): a guard against
    /// SMS pumping to premium destinations.
    pub allowed_prefixes: Vec<String>,
}

#[derive(Clone)]
pub struct AuthSettings {
    pub jwks: String,
    pub allow_hs256: bool,
    pub leeway_seconds: u64,
    pub issuer: String,
    /// `mis_id:sha256hex` pairs.
    pub mis_api_keys: Vec<(String, [u8; 32])>,
}

/// Used only with the `log` provider when `otp_hash_key` is left empty, so that
/// `spin up` works out of the box; any real provider refuses to run without a key.
const DEVELOPMENT_HASH_KEY: &[u8] = b"development only: set otp_hash_key";

impl Settings {
    /// Reads every variable in one host call.
    pub fn load() -> Result<Self, SettingsError> {
        let variables =
            config::get_all().map_err(|_| SettingsError("variables are unavailable".into()))?;
        Self::parse(&variables.into_iter().collect())
    }

    pub fn parse(vars: &HashMap<String, String>) -> Result<Self, SettingsError> {
        let v = Variables(vars);
        let provider = match v.text("sms_provider")? {
            "log" => SmsProvider::Log,
            "http" => SmsProvider::Http,
            "twilio" => SmsProvider::Twilio,
            _ => {
                return Err(SettingsError(
                    "sms_provider must be log, http or twilio".into(),
                ));
            }
        };
        let otp_hash_key = match (v.text("otp_hash_key")?, provider) {
            ("", SmsProvider::Log) => DEVELOPMENT_HASH_KEY.to_vec(),
            ("", _) => {
                return Err(SettingsError(
                    "otp_hash_key must be set with a real SMS provider".into(),
                ));
            }
            (key, _) => key.as_bytes().to_vec(),
        };
        let sms_template = v.text("sms_template")?.to_owned();
        if !sms_template.contains("{code}") {
            return Err(SettingsError("sms_template must contain {code}".into()));
        }
        let sms_timeout_ms = v.number("sms_timeout_ms", 1, 60_000)?;
        let fallback_url = Some(v.text("sms_fallback_url")?.to_owned()).filter(|u| !u.is_empty());
        Ok(Self {
            code_length: CodeLength::parse(v.number("otp_code_length", 4, 8)?)
                .ok_or_else(|| SettingsError("otp_code_length must be 4 to 8".into()))?,
            code_ttl_seconds: v.number("otp_ttl_seconds", 1, 86_400)?,
            max_attempts: v.number("otp_max_attempts", 1, 100)? as u32,
            merge_request_ttl_seconds: v.number("merge_request_ttl_hours", 1, 24 * 365)? * 3600,
            otp_hash_key,
            sms_template,
            limits: SendLimits {
                cooldown_seconds: v.number("otp_resend_cooldown_seconds", 0, 86_400)?,
                max_sends: v.number("otp_max_sends", 1, 1_000)? as u32,
                max_sends_per_phone_per_day: v.number(
                    "otp_max_sends_per_phone_per_day",
                    1,
                    100_000,
                )?,
                // Both gateways may take their full timeout; a little more
                // covers the writes around them.
                pending_timeout_seconds: (2 * sms_timeout_ms).div_ceil(1000) + 5,
            },
            sms: SmsSettings {
                provider,
                timeout: Duration::from_millis(sms_timeout_ms),
                gateway_url: v.text("sms_gateway_url")?.to_owned(),
                gateway_token: v.text("sms_gateway_token")?.to_owned(),
                fallback_url,
                fallback_token: v.text("sms_fallback_token")?.to_owned(),
                twilio_account_sid: v.text("twilio_account_sid")?.to_owned(),
                twilio_auth_token: v.text("twilio_auth_token")?.to_owned(),
                twilio_from: v.text("twilio_from")?.to_owned(),
                allowed_prefixes: parse_prefixes(v.text("sms_allowed_prefixes")?)?,
            },
            max_body_bytes: v.number("max_body_bytes", 0, 1 << 20)? as usize,
            auth: AuthSettings {
                jwks: v.text("auth_jwks")?.to_owned(),
                allow_hs256: v.flag("auth_allow_hs256")?,
                leeway_seconds: v.number("auth_leeway_seconds", 0, 3_600)?,
                issuer: v.text("auth_issuer")?.to_owned(),
                mis_api_keys: parse_mis_api_keys(v.text("mis_api_keys")?)?,
            },
        })
    }
}

struct Variables<'a>(&'a HashMap<String, String>);

impl Variables<'_> {
    fn text(&self, name: &str) -> Result<&str, SettingsError> {
        self.0
            .get(name)
            .map(|s| s.trim())
            .ok_or_else(|| SettingsError(format!("{name} is not set")))
    }

    fn number(&self, name: &str, min: u64, max: u64) -> Result<u64, SettingsError> {
        self.text(name)?
            .parse::<u64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| {
                SettingsError(format!("{name} must be a whole number from {min} to {max}"))
            })
    }

    fn flag(&self, name: &str) -> Result<bool, SettingsError> {
        match self.text(name)? {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(SettingsError(format!("{name} must be true or false"))),
        }
    }
}

fn parse_prefixes(raw: &str) -> Result<Vec<String>, SettingsError> {
    let prefixes: Vec<String> = raw
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    let valid = |p: &String| {
        p.len() >= 2 && p.starts_with('+') && p[1..].bytes().all(|b| b.is_ascii_digit())
    };
    if prefixes.is_empty() || !prefixes.iter().all(valid) {
        return Err(SettingsError(
            "sms_allowed_prefixes must be comma-separated prefixes such as +380".into(),
        ));
    }
    Ok(prefixes)
}

fn parse_mis_api_keys(raw: &str) -> Result<Vec<(String, [u8; 32])>, SettingsError> {
    let invalid =
        || SettingsError("mis_api_keys must be comma-separated mis_id:sha256hex pairs".into());
    raw.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let (mis_id, digest_hex) = entry.split_once(':').ok_or_else(invalid)?;
            let digest = decode_hex_32(digest_hex.trim()).ok_or_else(invalid)?;
            Ok((mis_id.trim().to_owned(), digest))
        })
        .collect()
}

fn decode_hex_32(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.as_bytes().chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> HashMap<String, String> {
        [
            ("otp_code_length", "6"),
            ("otp_ttl_seconds", "600"),
            ("otp_max_attempts", "3"),
            ("merge_request_ttl_hours", "24"),
            ("otp_hash_key", ""),
            ("sms_template", "Code: {code}"),
            ("otp_resend_cooldown_seconds", "60"),
            ("otp_max_sends", "5"),
            ("otp_max_sends_per_phone_per_day", "10"),
            ("sms_timeout_ms", "5000"),
            ("sms_provider", "log"),
            ("sms_gateway_url", "https://sms-gateway.invalid/messages"),
            ("sms_gateway_token", ""),
            ("sms_fallback_url", ""),
            ("sms_fallback_token", ""),
            ("twilio_account_sid", ""),
            ("twilio_auth_token", ""),
            ("twilio_from", ""),
            ("sms_allowed_prefixes", "+380"),
            ("max_body_bytes", "16384"),
            ("auth_jwks", "{\"keys\":[]}"),
            ("auth_allow_hs256", "false"),
            ("auth_leeway_seconds", "30"),
            ("auth_issuer", "https://auth.example"),
            (
                "mis_api_keys",
                "mis-1:a665a45920422f9d417e4867efdc4fb8a04a1f3fff1fa07e998e86f7f7a27ae3",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    fn with(name: &str, value: &str) -> Result<Settings, SettingsError> {
        let mut vars = defaults();
        vars.insert(name.into(), value.into());
        Settings::parse(&vars)
    }

    #[test]
    fn defaults_parse() {
        let s = Settings::parse(&defaults()).unwrap();
        assert_eq!(s.code_length.get(), 6);
        assert_eq!(s.limits.pending_timeout_seconds, 15);
        assert_eq!(s.sms.fallback_url, None);
        assert_eq!(s.auth.mis_api_keys[0].0, "mis-1");
    }

    #[test]
    fn a_real_provider_needs_a_hash_key() {
        let err = with("sms_provider", "http").err().unwrap();
        assert!(err.0.contains("otp_hash_key"));
    }

    #[test]
    fn errors_name_the_variable_and_never_its_value() {
        for (name, value) in [
            ("otp_code_length", "9"),
            ("otp_ttl_seconds", "soon"),
            ("sms_template", "no placeholder"),
            ("auth_allow_hs256", "yes"),
            ("mis_api_keys", "mis-1:zz"),
            ("sms_provider", "pigeon"),
            ("sms_allowed_prefixes", "no-plus"),
        ] {
            let err = with(name, value).err().unwrap();
            assert!(err.0.contains(name), "{err:?}");
            assert!(!err.0.contains(value), "{err:?}");
        }
    }

    #[test]
    fn a_missing_variable_is_an_error() {
        let mut vars = defaults();
        vars.remove("otp_ttl_seconds");
        assert_eq!(
            Settings::parse(&vars).err().unwrap().0,
            "otp_ttl_seconds is not set"
        );
    }
}
