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
}

/// Why a merge request takes no new code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotResendable {
    IncorrectStatus,
    NotOtp,
}

impl MergeRequest {
    pub fn is_owned_by(&self, legal_entity_id: &str) -> bool {
        self.legal_entity_id == legal_entity_id
    }

    /// The phone a resent code goes to, checked in the order of the contract:
    /// status first, then the method.
    pub fn otp_recipient(&self) -> Result<&PhoneNumber, NotResendable> {
        if self.status != MergeRequestStatus::New {
            return Err(NotResendable::IncorrectStatus);
        }
        self.authentication_method_current
            .otp_phone()
            .ok_or(NotResendable::NotOtp)
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
        }))
        .unwrap()
    }

    #[test]
    fn otp_and_third_person_with_phone_take_codes() {
        let otp = request(
            MergeRequestStatus::New,
            json!({"type": "OTP", "phone_number": "+380501234567"}),
        );
        assert_eq!(otp.otp_recipient().unwrap().as_str(), "+380501234567");
        let third = request(
            MergeRequestStatus::New,
            json!({"type": "THIRD_PERSON", "value": "c-1", "phone_number": "+380671112233"}),
        );
        assert_eq!(third.otp_recipient().unwrap().as_str(), "+380671112233");
    }

    #[test]
    fn offline_and_third_person_without_phone_do_not() {
        let offline = request(MergeRequestStatus::New, json!({"type": "OFFLINE"}));
        assert_eq!(offline.otp_recipient(), Err(NotResendable::NotOtp));
        let third = request(
            MergeRequestStatus::New,
            json!({"type": "THIRD_PERSON", "value": "c-1"}),
        );
        assert_eq!(third.otp_recipient(), Err(NotResendable::NotOtp));
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
            assert_eq!(r.otp_recipient(), Err(NotResendable::IncorrectStatus));
        }
    }

    #[test]
    fn ownership_is_by_legal_entity() {
        let r = request(MergeRequestStatus::New, json!({"type": "OFFLINE"}));
        assert!(r.is_owned_by("le-1"));
        assert!(!r.is_owned_by("le-2"));
    }
}
