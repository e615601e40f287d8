//! The use cases: each ties the domain rules to the store, the gateway, the
//! clock and the random source, and says what happened in a [`Failure`] or a
//! [`Snapshot`]. HTTP is not their concern.

mod approve;
mod create;
mod read;
mod reject;
mod resend;
mod send_code;

pub use approve::approve;
pub use create::create;
pub use read::read;
pub use reject::reject;
pub use resend::{Resent, resend_otp};

use crate::adapters::settings::Settings;
use crate::adapters::sms::SmsError;
use crate::adapters::store::{MergeRequestRecord, StorageUnavailable, Store, UpdateError};
use crate::domain::{
    CodeRefused, LimitReached, MergeRequest, StatusContext, Timestamp, Verification, VerificationId,
};

/// Who is acting: the user and the legal entity their token names.
pub struct Actor<'a> {
    pub user_id: &'a str,
    pub legal_entity_id: &'a str,
}

/// Why a use case did not do what was asked.
#[derive(Debug)]
pub enum Failure {
    /// No such merge request, or it belongs to another legal entity.
    NotFound,
    /// The merge request is not in the status the action needs.
    IncorrectStatus,
    /// Its authentication method takes no codes.
    NotOtp,
    /// Only the user who created a merge request may approve it.
    NotCreator,
    NotRejectable,
    /// The phone is outside the countries SMS may go to.
    DestinationNotAllowed,
    Code(CodeRefused),
    Limit(LimitReached),
    SmsUnavailable(SmsError),
    Storage,
}

impl From<StorageUnavailable> for Failure {
    fn from(_: StorageUnavailable) -> Self {
        Self::Storage
    }
}

impl From<UpdateError<Failure>> for Failure {
    fn from(error: UpdateError<Failure>) -> Self {
        match error {
            UpdateError::NotFound => Self::NotFound,
            UpdateError::Refused(failure) => failure,
            UpdateError::Storage => Self::Storage,
        }
    }
}

/// What the request log may carry about a use case.
#[derive(Default)]
pub struct Trace {
    pub phone_masked: Option<String>,
    pub verification_id: Option<VerificationId>,
    pub gateway: Option<&'static str>,
    pub gateway_latency_ms: Option<u128>,
}

/// A merge request as callers may see it: statuses as of now, and its
/// latest verification. Hashes stay in it only for the caller to drop.
pub struct Snapshot {
    pub merge_request: MergeRequest,
    pub verification: Option<Verification>,
}

impl Snapshot {
    fn of(record: &MergeRequestRecord, context: &StatusContext) -> Self {
        let mut merge_request = record.merge_request.clone();
        merge_request.settle(context);
        let verification = record.otp.verifications.last().cloned().map(|mut v| {
            v.status = v.status_at(context.now);
            v
        });
        Self {
            merge_request,
            verification,
        }
    }
}

/// What decides the status of `merge_request` now: the clock, its time to
/// live, and the latest request on the same person.
fn status_context(
    settings: &Settings,
    store: &Store,
    merge_request: &MergeRequest,
    now: Timestamp,
) -> Result<StatusContext, Failure> {
    Ok(StatusContext {
        now,
        ttl_seconds: settings.merge_request_ttl_seconds,
        live_generation: store.live_generation(&merge_request.merge_person_id)?,
    })
}

/// The record of `id` if `legal_entity_id` may see it; another entity's
/// request is "not found", never "forbidden".
fn owned(record: &MergeRequestRecord, legal_entity_id: &str) -> Result<(), Failure> {
    if record.merge_request.is_owned_by(legal_entity_id) {
        Ok(())
    } else {
        Err(Failure::NotFound)
    }
}
