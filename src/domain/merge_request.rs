use serde::{Deserialize, Serialize};

use super::{MergeRequestId, PhoneNumber, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MergeRequestStatus {
    New,
    Approved,
    Signed,
    Rejected,
    Expired,
}

/// How the patient confirms: by a code to their own phone, to a confidant's
/// phone, or on paper.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE", deny_unknown_fields)]
pub enum AuthenticationMethod {
    Otp {
        phone_number: PhoneNumber,
    },
    ThirdPerson {
        value: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        phone_number: Option<PhoneNumber>,
    },
    Offline,
}

impl AuthenticationMethod {
    /// The phone a code goes to, if this method takes codes at all.
    pub fn otp_phone(&self) -> Option<&PhoneNumber> {
        match self {
            Self::Otp { phone_number } => Some(phone_number),
            Self::ThirdPerson { phone_number, .. } => phone_number.as_ref(),
            Self::Offline => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeRequest {
    pub id: MergeRequestId,
    pub status: MergeRequestStatus,
    /// The legal entity that created it: the only one that may see it.
    pub legal_entity_id: String,
    pub inserted_by: String,
    pub master_person_id: String,
    pub merge_person_id: String,
    pub authentication_method_current: AuthenticationMethod,
    pub inserted_at: Timestamp,
    pub updated_at: Timestamp,
    /// Which create on `merge_person_id` this was (1 for the first). Only the
    /// latest one is live: an older one still `NEW` or `APPROVED` counts as
    /// `REJECTED`, so a new request rejects the old one without writing to it.
    #[serde(default)]
    pub generation: u64,
}

/// What a stored status depends on besides the record itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusContext {
    pub now: Timestamp,
    /// How long a request may stay `NEW` or `APPROVED`.
    pub ttl_seconds: u64,
    /// The generation of the latest request on the same `merge_person_id`.
    pub live_generation: u64,
}

/// Why a merge request takes no new code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotResendable {
    IncorrectStatus,
    NotOtp,
}

/// Why a merge request cannot be rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotRejectable;

impl MergeRequest {
    pub fn is_owned_by(&self, legal_entity_id: &str) -> bool {
        self.legal_entity_id == legal_entity_id
    }

    /// The status as of `context`: a live request past its time has expired,
    /// and one superseded by a newer request on the same person is rejected.
    pub fn status_at(&self, context: &StatusContext) -> MergeRequestStatus {
        use MergeRequestStatus::{Approved, Expired, New, Rejected};
        match self.status {
            New | Approved if self.generation < context.live_generation => Rejected,
            New | Approved if context.now >= self.inserted_at.plus_seconds(context.ttl_seconds) => {
                Expired
            }
            status => status,
        }
    }

    /// Writes the status as of `context` into the record, so that what is
    /// stored agrees with what was decided on it.
    pub fn settle(&mut self, context: &StatusContext) {
        self.status = self.status_at(context);
    }

    /// The phone a code goes to, checked in the order of the contract:
    /// status first, then the method.
    pub fn otp_recipient(&self, context: &StatusContext) -> Result<&PhoneNumber, NotResendable> {
        if self.status_at(context) != MergeRequestStatus::New {
            return Err(NotResendable::IncorrectStatus);
        }
        self.authentication_method_current
            .otp_phone()
            .ok_or(NotResendable::NotOtp)
    }

    /// `NEW` or `APPROVED` requests can be rejected.
    pub fn reject(&mut self, context: &StatusContext) -> Result<(), NotRejectable> {
        match self.status_at(context) {
            MergeRequestStatus::New | MergeRequestStatus::Approved => {
                self.status = MergeRequestStatus::Rejected;
                self.updated_at = context.now;
                Ok(())
            }
            _ => Err(NotRejectable),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(status: MergeRequestStatus, method: serde_json::Value) -> MergeRequest {
        serde_json::from_value(json!({
            "id": "7d23a6b0-46f2-4b52-9a5e-2c4f7e0c1a11",
            "status": status,
            "legal_entity_id": "le-1",
            "inserted_by": "user-1",
            "master_person_id": "m",
            "merge_person_id": "d",
            "authentication_method_current": method,
            "inserted_at": 0,
            "updated_at": 0,
            "generation": 1,
        }))
        .unwrap()
    }

    const LIVE: StatusContext = StatusContext {
        now: Timestamp::from_unix_micros(1_000_000),
        ttl_seconds: 86_400,
        live_generation: 1,
    };

    #[test]
    fn otp_and_third_person_with_phone_take_codes() {
        let otp = request(
            MergeRequestStatus::New,
            json!({"type": "OTP", "phone_number": "+380501234567"}),
        );
        assert_eq!(otp.otp_recipient(&LIVE).unwrap().as_str(), "+380501234567");
        let third = request(
            MergeRequestStatus::New,
            json!({"type": "THIRD_PERSON", "value": "c-1", "phone_number": "+380671112233"}),
        );
        assert_eq!(
            third.otp_recipient(&LIVE).unwrap().as_str(),
            "+380671112233"
        );
    }

    #[test]
    fn offline_and_third_person_without_phone_do_not() {
        let offline = request(MergeRequestStatus::New, json!({"type": "OFFLINE"}));
        assert_eq!(offline.otp_recipient(&LIVE), Err(NotResendable::NotOtp));
        let third = request(
            MergeRequestStatus::New,
            json!({"type": "THIRD_PERSON", "value": "c-1"}),
        );
        assert_eq!(third.otp_recipient(&LIVE), Err(NotResendable::NotOtp));
    }

    #[test]
    fn status_is_checked_before_the_method() {
        for status in [
            MergeRequestStatus::Approved,
            MergeRequestStatus::Signed,
            MergeRequestStatus::Rejected,
            MergeRequestStatus::Expired,
        ] {
            let r = request(status, json!({"type": "OFFLINE"}));
            assert_eq!(r.otp_recipient(&LIVE), Err(NotResendable::IncorrectStatus));
        }
    }

    #[test]
    fn a_newer_request_on_the_same_person_rejects_a_live_one() {
        let superseded = StatusContext {
            live_generation: 2,
            ..LIVE
        };
        for status in [MergeRequestStatus::New, MergeRequestStatus::Approved] {
            let r = request(status, json!({"type": "OFFLINE"}));
            assert_eq!(r.status_at(&superseded), MergeRequestStatus::Rejected);
            assert_eq!(r.status_at(&LIVE), status);
        }
        let signed = request(MergeRequestStatus::Signed, json!({"type": "OFFLINE"}));
        assert_eq!(signed.status_at(&superseded), MergeRequestStatus::Signed);
    }

    #[test]
    fn a_live_request_expires_after_its_ttl() {
        let r = request(
            MergeRequestStatus::New,
            json!({"type": "OTP", "phone_number": "+380501234567"}),
        );
        let later = StatusContext {
            now: Timestamp::from_unix_micros(0).plus_seconds(86_400),
            ..LIVE
        };
        assert_eq!(r.status_at(&later), MergeRequestStatus::Expired);
        assert_eq!(r.otp_recipient(&later), Err(NotResendable::IncorrectStatus));
    }

    #[test]
    fn only_new_or_approved_requests_can_be_rejected() {
        for (status, rejectable) in [
            (MergeRequestStatus::New, true),
            (MergeRequestStatus::Approved, true),
            (MergeRequestStatus::Signed, false),
            (MergeRequestStatus::Rejected, false),
            (MergeRequestStatus::Expired, false),
        ] {
            let mut r = request(status, json!({"type": "OFFLINE"}));
            assert_eq!(r.reject(&LIVE).is_ok(), rejectable, "{status:?}");
            if rejectable {
                assert_eq!(r.status, MergeRequestStatus::Rejected);
            }
        }
    }

    #[test]
    fn ownership_is_by_legal_entity() {
        let r = request(MergeRequestStatus::New, json!({"type": "OFFLINE"}));
        assert!(r.is_owned_by("le-1"));
        assert!(!r.is_owned_by("le-2"));
    }
}
