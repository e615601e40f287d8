//! Read a merge request as its legal entity may see it.

use super::{Failure, Snapshot, owned, status_context};
use crate::adapters::clock;
use crate::adapters::settings::Settings;
use crate::adapters::store::Store;
use crate::domain::MergeRequestId;

pub fn read(
    settings: &Settings,
    legal_entity_id: &str,
    id: MergeRequestId,
) -> Result<Snapshot, Failure> {
    let store = Store::open()?;
    let record = store.read(id)?.ok_or(Failure::NotFound)?;
    owned(&record, legal_entity_id)?;
    let context = status_context(settings, &store, &record.merge_request, clock::now())?;
    Ok(Snapshot::of(&record, &context))
}
