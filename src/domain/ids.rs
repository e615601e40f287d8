use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// The `{id}` of a merge request, known to be a UUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MergeRequestId(Uuid);

impl MergeRequestId {
    /// Only the canonical hyphenated form is accepted: any other spelling of the
    /// same UUID in a path would be a second name for one resource.
    pub fn parse(raw: &str) -> Option<Self> {
        if raw.len() != 36 {
            return None;
        }
        Uuid::try_parse(raw).ok().map(Self)
    }

    /// A version-4 UUID from 16 bytes of the host's random source.
    pub fn from_random_bytes(bytes: [u8; 16]) -> Self {
        Self(uuid::Builder::from_random_bytes(bytes).into_uuid())
    }
}

impl fmt::Display for MergeRequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// The id of one issued code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VerificationId(Uuid);

impl VerificationId {
    /// A version-4 UUID from 16 bytes of the host's random source.
    pub fn from_random_bytes(bytes: [u8; 16]) -> Self {
        Self(uuid::Builder::from_random_bytes(bytes).into_uuid())
    }
}

impl fmt::Display for VerificationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_canonical_uuids_only() {
        let id = "7d23a6b0-46f2-4b52-9a5e-2c4f7e0c1a11";
        assert_eq!(MergeRequestId::parse(id).unwrap().to_string(), id);
        assert!(MergeRequestId::parse("7d23a6b046f24b529a5e2c4f7e0c1a11").is_none());
        assert!(MergeRequestId::parse("{7d23a6b0-46f2-4b52-9a5e-2c4f7e0c1a11}").is_none());
        assert!(MergeRequestId::parse("not-a-uuid").is_none());
        assert!(MergeRequestId::parse("").is_none());
    }

    proptest::proptest! {
        #[test]
        fn parsing_arbitrary_paths_never_panics_and_round_trips(raw in "\\PC{0,64}") {
            if let Some(id) = MergeRequestId::parse(&raw) {
                proptest::prop_assert_eq!(id.to_string(), raw.to_ascii_lowercase());
            }
        }
    }

    #[test]
    fn random_verification_ids_are_version_4() {
        let id = VerificationId::from_random_bytes([0xff; 16]).to_string();
        assert_eq!(&id[14..15], "4");
    }
}
