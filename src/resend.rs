//! The use case: issue a fresh code for a merge request and send it.
//!
//! Three writes on success, none on refusal: a compare-and-swap that reserves
//! the send (so exactly one of parallel resends goes on), an atomic increment
//! of the phone's daily count, and a compare-and-swap that makes the new code
//! the active one once the gateway has accepted the SMS.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::adapters::settings::Settings;
use crate::adapters::sms::{SmsClient, SmsError, SmsMessage};
use crate::adapters::store::{StorageUnavailable, Store, UpdateError, phone_sends_key};
use crate::adapters::{clock, random};
use crate::domain::{
    LimitReached, MergeRequestId, NotResendable, OtpCode, PendingSend, PhoneNumber,
    ReservationLost, Verification, VerificationId, check_phone_daily, hex,
};

pub struct Resent {
    pub verification: Verification,
    pub sends_remaining: u32,
    /// `None` once the send budget is spent: no resend will be allowed.
    pub resend_after_seconds: Option<u64>,
}

#[derive(Debug)]
pub enum ResendError {
    NotFound,
    NotResendable(NotResendable),
    Limit(LimitReached),
    SmsUnavailable(SmsError),
    Storage,
}

impl From<StorageUnavailable> for ResendError {
    fn from(_: StorageUnavailable) -> Self {
        Self::Storage
    }
}

/// What the request log may carry about the resend.
#[derive(Default)]
pub struct ResendTrace {
    pub phone_masked: Option<String>,
    pub verification_id: Option<VerificationId>,
    pub gateway: Option<&'static str>,
    pub gateway_latency_ms: Option<u128>,
}

enum Refusal {
    NotOwned,
    NotResendable(NotResendable),
    Limit(LimitReached),
    Storage,
}

pub async fn resend_otp(
    settings: &Settings,
    legal_entity_id: &str,
    id: MergeRequestId,
    trace: &mut ResendTrace,
) -> Result<Resent, ResendError> {
    let store = Store::open()?;
    let now = clock::now();
    let verification_id = VerificationId::from_random_bytes(random::bytes());

    let mut phone_key = String::new();
    let (reservation, phone) = store
        .update(id, |record| {
            let merge_request = &record.merge_request;
            if !merge_request.is_owned_by(legal_entity_id) {
                return Err(Refusal::NotOwned);
            }
            let phone = merge_request
                .otp_recipient()
                .map_err(Refusal::NotResendable)?
                .clone();
            record
                .otp
                .check_limits(now, &settings.limits)
                .map_err(Refusal::Limit)?;
            phone_key = phone_sends_key(&phone_digest(settings, &phone), &now.utc_date());
            let sent_today = store.counter(&phone_key).map_err(|_| Refusal::Storage)?;
            check_phone_daily(
                u64::try_from(sent_today).unwrap_or(0),
                now,
                &settings.limits,
            )
            .map_err(Refusal::Limit)?;
            let reservation = record
                .otp
                .reserve(verification_id, now, &settings.limits)
                .map_err(Refusal::Limit)?;
            Ok((reservation, phone))
        })
        .map_err(|e| match e {
            UpdateError::NotFound | UpdateError::Refused(Refusal::NotOwned) => {
                ResendError::NotFound
            }
            UpdateError::Refused(Refusal::NotResendable(why)) => ResendError::NotResendable(why),
            UpdateError::Refused(Refusal::Limit(limit)) => ResendError::Limit(limit),
            UpdateError::Refused(Refusal::Storage) | UpdateError::Storage => ResendError::Storage,
        })?;
    trace.phone_masked = Some(phone.masked());
    trace.verification_id = Some(verification_id);

    let sent_today = match store.increment(&phone_key, 1) {
        Ok(count) => count,
        Err(StorageUnavailable) => {
            release(&store, id, &reservation);
            return Err(ResendError::Storage);
        }
    };
    if let Err(limit) = check_phone_daily(
        u64::try_from(sent_today - 1).unwrap_or(0),
        now,
        &settings.limits,
    ) {
        // Another merge request on the same phone took the last send of the day
        // between our read and our increment.
        give_back(&store, id, &reservation, &phone_key);
        return Err(ResendError::Limit(limit));
    }

    let code = OtpCode::generate(settings.code_length, random::fill);
    let message = SmsMessage {
        to: &phone,
        text: settings.sms_template.replace("{code}", code.expose()),
        reference: verification_id,
    };
    let delivery = SmsClient::new(&settings.sms).send(&message).await;
    drop(message);
    let delivery = match delivery {
        Ok(delivery) => delivery,
        Err(failure) => {
            give_back(&store, id, &reservation, &phone_key);
            return Err(ResendError::SmsUnavailable(failure));
        }
    };
    trace.gateway = Some(delivery.gateway);
    trace.gateway_latency_ms = Some(delivery.latency.as_millis());

    let code_hash = code.keyed_hash(&settings.otp_hash_key, id, verification_id);
    let expires_at = now.plus_seconds(settings.code_ttl_seconds);
    let limits = settings.limits;
    store
        .update(id, |record| {
            let sends_remaining = limits.max_sends.saturating_sub(record.otp.sends);
            let verification = record
                .otp
                .commit(&reservation, code_hash.clone(), expires_at)?
                .clone();
            Ok(Resent {
                verification,
                sends_remaining,
                resend_after_seconds: (sends_remaining > 0).then_some(limits.cooldown_seconds),
            })
        })
        .map_err(|_: UpdateError<ReservationLost>| ResendError::Storage)
}

/// The phone's identity in key names: keyed, so the store holds no numbers.
fn phone_digest(settings: &Settings, phone: &PhoneNumber) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(&settings.otp_hash_key)
        .expect("HMAC takes keys of any length");
    mac.update(b"phone:");
    mac.update(phone.as_str().as_bytes());
    hex(&mac.finalize().into_bytes()[..16])
}

/// Undo a reservation after a failed send: the previous code stays active and
/// the patient's budgets are as they were.
fn give_back(store: &Store, id: MergeRequestId, reservation: &PendingSend, phone_key: &str) {
    release(store, id, reservation);
    // Should this fail, the day's count stays one high: the patient may get one
    // SMS fewer that day, never one more.
    let _ = store.increment(phone_key, -1);
}

fn release(store: &Store, id: MergeRequestId, reservation: &PendingSend) {
    // If this fails the reservation expires by itself after the pending
    // timeout: the next resend is delayed, never doubled.
    let _ = store.update(id, |record| record.otp.release(reservation));
}
