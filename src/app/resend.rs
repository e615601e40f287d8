//! Issue a fresh code for a merge request and send it.
//!
//! Three writes on success, none on refusal: a compare-and-swap that reserves
//! the send (so exactly one of parallel resends goes on), an atomic increment
//! of the phone's daily count, and a compare-and-swap that makes the new code
//! the active one once the gateway has accepted the SMS.

use super::send_code::CodeSender;
use super::{Failure, Trace, owned, status_context};
use crate::adapters::settings::Settings;
use crate::adapters::store::Store;
use crate::adapters::{clock, random};
use crate::domain::{
    MergeRequestId, MergeRequestStatus, NotResendable, PendingSend, Verification, VerificationId,
};

pub struct Resent {
    pub verification: Verification,
    pub sends_remaining: u32,
    /// `None` once the send budget is spent: no resend will be allowed.
    pub resend_after_seconds: Option<u64>,
}

pub async fn resend_otp(
    settings: &Settings,
    legal_entity_id: &str,
    id: MergeRequestId,
    trace: &mut Trace,
) -> Result<Resent, Failure> {
    let store = Store::open()?;
    let now = clock::now();
    let sender = CodeSender::new(settings, &store, now);
    let verification_id = VerificationId::from_random_bytes(random::bytes());

    let mut daily_key = String::new();
    let (reservation, phone) = store.update(id, |record| {
        owned(record, legal_entity_id)?;
        let context = status_context(settings, &store, &record.merge_request, now)?;
        let phone = record
            .merge_request
            .otp_recipient(&context)
            .map_err(|why| match why {
                NotResendable::IncorrectStatus => Failure::IncorrectStatus,
                NotResendable::NotOtp => Failure::NotOtp,
            })?
            .clone();
        record
            .otp
            .check_limits(now, &settings.limits)
            .map_err(Failure::Limit)?;
        daily_key = sender.daily_key(&phone);
        sender.check_allowed(&phone, &daily_key)?;
        let reservation = record
            .otp
            .reserve(verification_id, now, &settings.limits)
            .map_err(Failure::Limit)?;
        Ok((reservation, phone))
    })?;
    trace.phone_masked = Some(phone.masked());
    trace.verification_id = Some(verification_id);

    let sent = match sender
        .send(id, verification_id, &phone, &daily_key, trace)
        .await
    {
        Ok(sent) => sent,
        Err(failure) => {
            release(&store, id, &reservation);
            return Err(failure);
        }
    };

    let limits = settings.limits;
    let committed = store.update(id, |record| {
        let context = status_context(settings, &store, &record.merge_request, now)?;
        record
            .otp
            .commit(
                &reservation,
                sent.code_hash.clone(),
                sent.expires_at,
                sent.gateway_message_id.clone(),
            )
            .map_err(|_| Failure::Storage)?;
        if record.merge_request.status_at(&context) != MergeRequestStatus::New {
            // Approved or rejected while the SMS was on its way: the new code
            // must not approve anything.
            record.otp.cancel_active();
        }
        let sends_remaining = limits.max_sends.saturating_sub(record.otp.sends);
        Ok(Resent {
            verification: record
                .otp
                .verifications
                .last()
                .cloned()
                .ok_or(Failure::Storage)?,
            sends_remaining,
            resend_after_seconds: (sends_remaining > 0).then_some(limits.cooldown_seconds),
        })
    });
    committed.map_err(|failure| {
        // The SMS went out but its code could not be stored: give the send
        // back, so the previous code stays the active one.
        release(&store, id, &reservation);
        failure.into()
    })
}

/// Undo a reservation after a failed send: the previous code stays active and
/// the merge request's budget is as it was.
fn release(store: &Store, id: MergeRequestId, reservation: &PendingSend) {
    // If this fails the reservation expires by itself after the pending
    // timeout: the next resend is delayed, never doubled.
    let _ = store.update(id, |record| record.otp.release(reservation));
}
