//! Approve a merge request with the code the patient read out.
//!
//! One compare-and-swap decides: the request becomes `APPROVED` and its
//! verification `VERIFIED` together, or a wrong guess is counted. A racing
//! resend makes the swap fail and the guess is checked again against the
//! code that is active then, so a cancelled code never approves.

use super::{Actor, Failure, Snapshot, owned, status_context};
use crate::adapters::clock;
use crate::adapters::settings::Settings;
use crate::adapters::store::Store;
use crate::domain::{MergeRequestId, MergeRequestStatus, OtpCode};

pub fn approve(
    settings: &Settings,
    actor: &Actor<'_>,
    id: MergeRequestId,
    verification_code: &str,
) -> Result<Snapshot, Failure> {
    let store = Store::open()?;
    let now = clock::now();
    let guess = OtpCode::from_guess(verification_code);
    store.update(id, |record| {
        owned(record, actor.legal_entity_id)?;
        if record.merge_request.inserted_by != actor.user_id {
            return Err(Failure::NotCreator);
        }
        let context = status_context(settings, &store, &record.merge_request, now)?;
        if record.merge_request.status_at(&context) != MergeRequestStatus::New {
            return Err(Failure::IncorrectStatus);
        }
        let checked = record.otp.check_code(
            |verification| guess.keyed_hash(&settings.otp_hash_key, id, verification),
            now,
            settings.max_attempts,
        );
        match checked {
            Ok(()) => {
                record.merge_request.status = MergeRequestStatus::Approved;
                record.merge_request.updated_at = now;
                Ok(Ok(Snapshot::of(record, &context)))
            }
            // A counted wrong guess is written, then refused.
            Err(refused) if refused.is_counted() => Ok(Err(Failure::Code(refused))),
            Err(refused) => Err(Failure::Code(refused)),
        }
    })?
}
