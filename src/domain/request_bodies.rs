//! The bodies clients send (create, approve), parsed field by field so that
//! every bad field is reported at once.

use serde_json::{Map, Value};
use uuid::Uuid;

use super::{AuthenticationMethod, PhoneNumber};

/// A merge request as a clinic asks for it, every field known to be valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMergeRequest {
    pub master_person_id: String,
    pub merge_person_id: String,
    pub authentication_method_current: AuthenticationMethod,
}

/// One invalid field: its JSON path, the rule it breaks and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub entry: String,
    pub rule: &'static str,
    pub description: String,
}

const ROOT: &str = "$.merge_request";

impl NewMergeRequest {
    pub fn parse(body: Option<&Value>) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let Some(body) = body.and_then(Value::as_object) else {
            return Err(vec![required(ROOT)]);
        };
        refuse_unknown(body, "$", &["merge_request"], &mut errors);
        let Some(request) = body.get("merge_request").and_then(Value::as_object) else {
            errors.push(required(ROOT));
            return Err(errors);
        };
        refuse_unknown(
            request,
            ROOT,
            &[
                "master_person_id",
                "merge_person_id",
                "authentication_method_current",
            ],
            &mut errors,
        );
        let master = uuid_field(request, ROOT, "master_person_id", &mut errors);
        let merge = uuid_field(request, ROOT, "merge_person_id", &mut errors);
        if master.is_some() && master == merge {
            errors.push(FieldError {
                entry: format!("{ROOT}.merge_person_id"),
                rule: "invalid",
                description: "merge_person_id must differ from master_person_id".into(),
            });
        }
        let method =
            authentication_method(request.get("authentication_method_current"), &mut errors);
        match (master, merge, method) {
            (
                Some(master_person_id),
                Some(merge_person_id),
                Some(authentication_method_current),
            ) if errors.is_empty() => Ok(Self {
                master_person_id,
                merge_person_id,
                authentication_method_current,
            }),
            _ => Err(errors),
        }
    }
}

/// `{"verification_code": "…"}` and nothing else: the body of an approval.
pub fn parse_verification_code(body: Option<&Value>) -> Result<String, Vec<FieldError>> {
    let mut errors = Vec::new();
    let object = body.and_then(Value::as_object);
    if let Some(object) = object {
        refuse_unknown(object, "$", &["verification_code"], &mut errors);
    }
    let code = object
        .and_then(|o| o.get("verification_code"))
        .and_then(Value::as_str);
    if code.is_none() {
        errors.push(FieldError {
            entry: "$.verification_code".into(),
            rule: "required",
            description: "required string property is missing".into(),
        });
    }
    match code {
        Some(code) if errors.is_empty() => Ok(code.to_owned()),
        _ => Err(errors),
    }
}

fn required(entry: &str) -> FieldError {
    FieldError {
        entry: entry.into(),
        rule: "required",
        description: "required property is missing".into(),
    }
}

fn refuse_unknown(
    object: &Map<String, Value>,
    path: &str,
    known: &[&str],
    errors: &mut Vec<FieldError>,
) {
    for key in object.keys().filter(|k| !known.contains(&k.as_str())) {
        errors.push(FieldError {
            entry: format!("{path}.{key}"),
            rule: "schema",
            description: "unknown property".into(),
        });
    }
}

fn uuid_field(
    object: &Map<String, Value>,
    path: &str,
    name: &str,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let entry = format!("{path}.{name}");
    let Some(value) = object.get(name) else {
        errors.push(required(&entry));
        return None;
    };
    let parsed = value
        .as_str()
        .filter(|s| s.len() == 36)
        .and_then(|s| Uuid::try_parse(s).ok());
    if parsed.is_none() {
        errors.push(FieldError {
            entry,
            rule: "format",
            description: "expected a UUID".into(),
        });
    }
    parsed.map(|uuid| uuid.hyphenated().to_string())
}

fn authentication_method(
    value: Option<&Value>,
    errors: &mut Vec<FieldError>,
) -> Option<AuthenticationMethod> {
    let path = format!("{ROOT}.authentication_method_current");
    let Some(method) = value.and_then(Value::as_object) else {
        errors.push(required(&path));
        return None;
    };
    let phone = |errors: &mut Vec<FieldError>| {
        let entry = format!("{path}.phone_number");
        match method.get("phone_number") {
            None => {
                errors.push(required(&entry));
                None
            }
            Some(raw) => {
                let phone = raw.as_str().and_then(PhoneNumber::parse);
                if phone.is_none() {
                    errors.push(FieldError {
                        entry,
                        rule: "format",
                        description: "expected +380 followed by nine digits".into(),
                    });
                }
                phone
            }
        }
    };
    match method.get("type").and_then(Value::as_str) {
        Some("OTP") => {
            refuse_unknown(method, &path, &["type", "phone_number"], errors);
            phone(errors).map(|phone_number| AuthenticationMethod::Otp { phone_number })
        }
        Some("THIRD_PERSON") => {
            refuse_unknown(method, &path, &["type", "value", "phone_number"], errors);
            let value = uuid_field(method, &path, "value", errors);
            let phone_number = phone(errors);
            Some(AuthenticationMethod::ThirdPerson {
                value: value?,
                phone_number: Some(phone_number?),
            })
        }
        Some("OFFLINE") => {
            refuse_unknown(method, &path, &["type"], errors);
            Some(AuthenticationMethod::Offline)
        }
        _ => {
            errors.push(FieldError {
                entry: format!("{path}.type"),
                rule: "inclusion",
                description: "expected one of OTP, THIRD_PERSON, OFFLINE".into(),
            });
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const MASTER: &str = "33333333-3333-4333-8333-333333333333";
    const MERGE: &str = "44444444-4444-4444-8444-444444444444";

    fn entries(body: Value) -> Vec<String> {
        NewMergeRequest::parse(Some(&body))
            .unwrap_err()
            .into_iter()
            .map(|e| e.entry)
            .collect()
    }

    #[test]
    fn parses_a_valid_otp_request() {
        let body = json!({"merge_request": {"master_person_id": MASTER, "merge_person_id": MERGE,
            "authentication_method_current": {"type": "OTP", "phone_number": "+380501234567"}}});
        let parsed = NewMergeRequest::parse(Some(&body)).unwrap();
        assert_eq!(parsed.merge_person_id, MERGE);
        assert_eq!(
            parsed
                .authentication_method_current
                .otp_phone()
                .unwrap()
                .as_str(),
            "+380501234567"
        );
    }

    #[test]
    fn reports_every_bad_field_at_once() {
        let body = json!({"merge_request": {"master_person_id": "nope", "merge_person_id": 7, "extra": 1,
            "authentication_method_current": {"type": "OTP", "phone_number": "0501234567"}}, "also": true});
        let mut found = entries(body);
        found.sort();
        assert_eq!(
            found,
            [
                "$.also",
                "$.merge_request.authentication_method_current.phone_number",
                "$.merge_request.extra",
                "$.merge_request.master_person_id",
                "$.merge_request.merge_person_id",
            ]
        );
    }

    #[test]
    fn the_two_persons_must_differ() {
        let body = json!({"merge_request": {"master_person_id": MASTER, "merge_person_id": MASTER,
            "authentication_method_current": {"type": "OFFLINE"}}});
        assert_eq!(entries(body), ["$.merge_request.merge_person_id"]);
    }

    #[test]
    fn third_person_needs_a_confidant_and_a_phone() {
        let body = json!({"merge_request": {"master_person_id": MASTER, "merge_person_id": MERGE,
            "authentication_method_current": {"type": "THIRD_PERSON"}}});
        let mut found = entries(body);
        found.sort();
        assert_eq!(
            found,
            [
                "$.merge_request.authentication_method_current.phone_number",
                "$.merge_request.authentication_method_current.value",
            ]
        );
    }

    #[test]
    fn a_missing_body_or_method_type_is_reported() {
        assert_eq!(
            NewMergeRequest::parse(None).unwrap_err()[0].entry,
            "$.merge_request"
        );
        let body = json!({"merge_request": {"master_person_id": MASTER, "merge_person_id": MERGE,
            "authentication_method_current": {"type": "SMS"}}});
        assert_eq!(
            entries(body),
            ["$.merge_request.authentication_method_current.type"]
        );
    }

    #[test]
    fn an_approval_body_is_one_string_code() {
        assert_eq!(
            parse_verification_code(Some(&json!({"verification_code": "123456"}))).unwrap(),
            "123456"
        );
        let entries = |body: Value| -> Vec<String> {
            parse_verification_code(Some(&body))
                .unwrap_err()
                .into_iter()
                .map(|e| e.entry)
                .collect()
        };
        assert_eq!(entries(json!({})), ["$.verification_code"]);
        assert_eq!(
            entries(json!({"verification_code": 1})),
            ["$.verification_code"]
        );
        assert_eq!(
            entries(json!({"verification_code": "1", "extra": 1})),
            ["$.extra"]
        );
        assert_eq!(
            parse_verification_code(None).unwrap_err()[0].entry,
            "$.verification_code"
        );
    }

    fn arbitrary_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "\\PC{0,20}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("merge_request".to_owned()),
                        Just("type".to_owned()),
                        "[a-z_]{1,12}"
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn arbitrary_documents_never_panic(body in arbitrary_json()) {
            let _ = NewMergeRequest::parse(Some(&body));
        }
    }
}
