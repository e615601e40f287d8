//! Reject a merge request: it ends, and its code can no longer approve it.

use super::{Failure, Snapshot, owned, status_context};
use crate::adapters::clock;
use crate::adapters::settings::Settings;
use crate::adapters::store::Store;
use crate::domain::MergeRequestId;

pub fn reject(
    settings: &Settings,
    legal_entity_id: &str,
    id: MergeRequestId,
) -> Result<Snapshot, Failure> {
    let store = Store::open()?;
    let now = clock::now();
    let snapshot = store.update(id, |record| {
        owned(record, legal_entity_id)?;
        let context = status_context(settings, &store, &record.merge_request, now)?;
        record
            .merge_request
            .reject(&context)
            .map_err(|_| Failure::NotRejectable)?;
        record.otp.cancel_active();
        Ok(Snapshot::of(record, &context))
    })?;
    Ok(snapshot)
}
