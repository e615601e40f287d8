use serde::{Deserialize, Serialize};
use std::fmt;

/// A Ukrainian mobile number in E.164 form: `+380` and nine digits.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhoneNumber(String);

impl PhoneNumber {
    pub fn parse(raw: &str) -> Option<Self> {
        let digits = raw.strip_prefix("+380")?;
        (digits.len() == 9 && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form logs may carry: country code and last four digits.
    pub fn masked(&self) -> String {
        format!("+380*****{}", &self.0[self.0.len() - 4..])
    }
}

impl TryFrom<String> for PhoneNumber {
    type Error = String;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw).ok_or_else(|| "phone number must be +380 followed by nine digits".into())
    }
}

impl From<PhoneNumber> for String {
    fn from(phone: PhoneNumber) -> Self {
        phone.0
    }
}

/// Debug output is masked too, so that no `{:?}` can leak a full number into a log.
impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_ukrainian_e164_numbers() {
        assert!(PhoneNumber::parse("+380501234567").is_some());
    }

    #[test]
    fn rejects_everything_else() {
        for raw in [
            "380501234567",
            "+38050123456",
            "+3805012345678",
            "+380 50 123 4567",
            "+1501234567",
            "+38050123456a",
            "",
        ] {
            assert!(PhoneNumber::parse(raw).is_none(), "{raw}");
        }
    }

    #[test]
    fn masks_all_but_the_last_four_digits() {
        let phone = PhoneNumber::parse("+380501234567").unwrap();
        assert_eq!(phone.masked(), "+380*****4567");
        assert_eq!(format!("{phone:?}"), "+380*****4567");
    }

    proptest! {
        #[test]
        fn parse_never_panics(raw in "\\PC*") {
            let _ = PhoneNumber::parse(&raw);
        }
    }
}
