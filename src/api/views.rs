//! What callers see of merge requests and verifications: never a code or a hash.

use serde_json::{Value, json};

use crate::app::Snapshot;
use crate::domain::Verification;

pub fn verification(verification: &Verification) -> Value {
    json!({
        "id": verification.id,
        "status": verification.status,
        "code_expired_at": verification.code_expired_at.to_rfc3339(),
        "active": verification.active,
    })
}

pub fn merge_request(snapshot: &Snapshot) -> Value {
    let merge_request = &snapshot.merge_request;
    json!({
        "id": merge_request.id,
        "status": merge_request.status,
        "legal_entity_id": merge_request.legal_entity_id,
        "inserted_by": merge_request.inserted_by,
        "master_person_id": merge_request.master_person_id,
        "merge_person_id": merge_request.merge_person_id,
        "authentication_method_current": merge_request.authentication_method_current,
        "inserted_at": merge_request.inserted_at.to_rfc3339(),
        "updated_at": merge_request.updated_at.to_rfc3339(),
        "verification": snapshot.verification.as_ref().map(verification),
    })
}
