//! Sending a fresh code: the phone's daily limit, the code itself, the SMS.
//! Shared by the first SMS of a new merge request and by every resend.

use super::{Failure, Trace};
use crate::adapters::random;
use crate::adapters::settings::Settings;
use crate::adapters::sms::{SmsClient, SmsMessage};
use crate::adapters::store::{Store, phone_sends_key};
use crate::domain::{
    CodeHash, MergeRequestId, OtpCode, PhoneNumber, Timestamp, VerificationId, check_phone_daily,
    hex, keyed_digest,
};

/// A code the gateway accepted, in the only form that is kept.
pub struct SentCode {
    pub code_hash: CodeHash,
    pub expires_at: Timestamp,
    pub gateway_message_id: Option<String>,
}

pub struct CodeSender<'a> {
    settings: &'a Settings,
    store: &'a Store,
    now: Timestamp,
}

impl<'a> CodeSender<'a> {
    pub fn new(settings: &'a Settings, store: &'a Store, now: Timestamp) -> Self {
        Self {
            settings,
            store,
            now,
        }
    }

    /// The key of `phone`'s count for today.
    pub fn daily_key(&self, phone: &PhoneNumber) -> String {
        // Keyed, so that the store holds no phone numbers, not even in key names.
        let digest = keyed_digest(
            &self.settings.otp_hash_key,
            &[b"phone:", phone.as_str().as_bytes()],
        );
        let digest = hex(&digest[..16]);
        phone_sends_key(&digest, &self.now.utc_date())
    }

    /// Refuses, without writing, a phone outside the allowed country prefixes
    /// or one that has had its sends for today.
    pub fn check_allowed(&self, phone: &PhoneNumber, daily_key: &str) -> Result<(), Failure> {
        let prefixes = &self.settings.sms.allowed_prefixes;
        if !prefixes
            .iter()
            .any(|prefix| phone.as_str().starts_with(prefix.as_str()))
        {
            return Err(Failure::DestinationNotAllowed);
        }
        let sent_today = u64::try_from(self.store.counter(daily_key)?).unwrap_or(0);
        check_phone_daily(sent_today, self.now, &self.settings.limits).map_err(Failure::Limit)
    }

    /// Counts the send against the phone's day, draws the code and hands it to
    /// the gateway. Whatever fails, the day's count is given back.
    pub async fn send(
        &self,
        id: MergeRequestId,
        verification_id: VerificationId,
        phone: &PhoneNumber,
        daily_key: &str,
        trace: &mut Trace,
    ) -> Result<SentCode, Failure> {
        let sent_today = self.store.increment(daily_key, 1)?;
        let sent_before = u64::try_from(sent_today - 1).unwrap_or(0);
        if let Err(limit) = check_phone_daily(sent_before, self.now, &self.settings.limits) {
            // Another request on the same phone took the day's last send
            // between the check and this increment.
            self.give_back(daily_key);
            return Err(Failure::Limit(limit));
        }
        let code = OtpCode::generate(self.settings.code_length, random::fill);
        let message = SmsMessage {
            to: phone,
            text: self.settings.sms_template.replace("{code}", code.expose()),
            reference: verification_id,
        };
        match SmsClient::new(&self.settings.sms).send(&message).await {
            Ok(delivery) => {
                trace.gateway = Some(delivery.gateway);
                trace.gateway_latency_ms = Some(delivery.latency.as_millis());
                Ok(SentCode {
                    code_hash: code.keyed_hash(&self.settings.otp_hash_key, id, verification_id),
                    expires_at: self.now.plus_seconds(self.settings.code_ttl_seconds),
                    gateway_message_id: delivery.message_id,
                })
            }
            Err(failure) => {
                self.give_back(daily_key);
                eprintln!(
                    "{}",
                    serde_json::json!({"level": "error", "message": "SMS gateway failed", "error": failure.to_string(), "phone": phone.masked()})
                );
                Err(Failure::SmsUnavailable(failure))
            }
        }
    }

    fn give_back(&self, daily_key: &str) {
        // Should this fail, the day's count stays one high: the patient may get
        // one SMS fewer that day, never one more.
        let _ = self.store.increment(daily_key, -1);
    }
}
