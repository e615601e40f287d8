//! Create a merge request and send its first code.
//!
//! Three writes: the phone's daily count, the person's generation (which
//! makes this request the live one and any older one rejected, atomically)
//! and the new record.

use super::send_code::CodeSender;
use super::{Actor, Failure, Snapshot, Trace};
use crate::adapters::settings::Settings;
use crate::adapters::store::{MergeRequestRecord, RECORD_VERSION, Store};
use crate::adapters::{clock, random};
use crate::domain::{
    MergeRequest, MergeRequestId, MergeRequestStatus, NewMergeRequest, OtpLedger, StatusContext,
    VerificationId,
};

pub async fn create(
    settings: &Settings,
    actor: &Actor<'_>,
    new: NewMergeRequest,
    trace: &mut Trace,
) -> Result<Snapshot, Failure> {
    let store = Store::open()?;
    let now = clock::now();
    let id = MergeRequestId::from_random_bytes(random::bytes());
    let mut otp = OtpLedger::default();

    if let Some(phone) = new.authentication_method_current.otp_phone() {
        let sender = CodeSender::new(settings, &store, now);
        let daily_key = sender.daily_key(phone);
        sender.check_allowed(phone, &daily_key)?;
        let verification_id = VerificationId::from_random_bytes(random::bytes());
        trace.phone_masked = Some(phone.masked());
        trace.verification_id = Some(verification_id);
        match sender
            .send(id, verification_id, phone, &daily_key, trace)
            .await
        {
            Ok(sent) => {
                let reservation = otp
                    .reserve(verification_id, now, &settings.limits)
                    .map_err(Failure::Limit)?;
                otp.commit(
                    &reservation,
                    sent.code_hash,
                    sent.expires_at,
                    sent.gateway_message_id,
                )
                .map_err(|_| Failure::Storage)?;
            }
            // The request is still created, with no code yet: the clinic
            // resends once the gateway is back.
            Err(Failure::SmsUnavailable(_)) => trace.verification_id = None,
            Err(failure) => return Err(failure),
        }
    }

    let generation = store.next_generation(&new.merge_person_id)?;
    let record = MergeRequestRecord {
        version: RECORD_VERSION,
        merge_request: MergeRequest {
            id,
            status: MergeRequestStatus::New,
            legal_entity_id: actor.legal_entity_id.to_owned(),
            inserted_by: actor.user_id.to_owned(),
            master_person_id: new.master_person_id,
            merge_person_id: new.merge_person_id,
            authentication_method_current: new.authentication_method_current,
            inserted_at: now,
            updated_at: now,
            generation,
        },
        otp,
        writes: Vec::new(),
    };
    store.insert(&record)?;
    let context = StatusContext {
        now,
        ttl_seconds: settings.merge_request_ttl_seconds,
        live_generation: generation,
    };
    Ok(Snapshot::of(&record, &context))
}
