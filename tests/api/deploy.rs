//! The deployment files: they parse, they configure what the manifest
//! declares, secrets come only from secrets, and the production variables
//! they set make a working app.

use serde_json::Value;

use crate::helpers::*;

fn project_file(path: &str) -> String {
    std::fs::read_to_string(project_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `spin.toml`'s application variables: name and whether it is secret.
fn manifest_variables() -> Vec<(String, bool)> {
    let manifest: toml::Table = project_file("spin.toml").parse().expect("spin.toml parses");
    manifest["variables"]
        .as_table()
        .expect("a [variables] table")
        .iter()
        .map(|(name, decl)| {
            let secret = decl.get("secret").and_then(toml::Value::as_bool) == Some(true);
            (name.clone(), secret)
        })
        .collect()
}

fn spinapp() -> Value {
    serde_yaml_ng::from_str(&project_file("deploy/spinapp.yaml")).expect("spinapp.yaml parses")
}

/// The SpinApp's variables that have a plain value.
fn spinapp_values(app: &Value) -> Vec<(String, String)> {
    app["spec"]["variables"]
        .as_array()
        .expect("spec.variables")
        .iter()
        .filter_map(|v| {
            Some((
                v["name"].as_str()?.to_owned(),
                v["value"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

#[test]
fn the_redis_runtime_config_puts_the_default_store_on_redis() {
    let config: toml::Table = project_file("deploy/runtime-config.redis.toml")
        .parse()
        .expect("the runtime config parses");
    let stores = config["key_value_store"]
        .as_table()
        .expect("key-value stores");
    let manifest =
        testhost::ComponentSpec::load(&project_root().join("spin.toml"), &Default::default())
            .expect("spin.toml loads");
    for label in &manifest.key_value_stores {
        let store = &stores[label.as_str()];
        assert_eq!(store["type"].as_str(), Some("redis"), "{label}");
        let url = store["url"].as_str().expect("a url");
        assert!(
            url.starts_with("redis://") || url.starts_with("rediss://"),
            "{url}"
        );
    }
}

#[test]
fn the_spinapp_takes_every_secret_from_a_kubernetes_secret() {
    let app = spinapp();
    assert_eq!(app["apiVersion"], "core.spinkube.dev/v1alpha1");
    assert_eq!(app["kind"], "SpinApp");
    assert!(
        app["spec"]["replicas"].as_u64().unwrap_or(0) > 1,
        "more than one instance"
    );
    let declared = manifest_variables();
    let variables = app["spec"]["variables"].as_array().expect("spec.variables");
    for variable in variables {
        let name = variable["name"].as_str().expect("a name");
        let secret = declared
            .iter()
            .find(|(declared, _)| declared == name)
            .map(|(_, secret)| *secret)
            .unwrap_or_else(|| panic!("{name} is not a variable of spin.toml"));
        if secret {
            assert!(
                variable.get("value").is_none(),
                "{name} is secret: no plain value"
            );
            assert!(
                variable["valueFrom"]["secretKeyRef"]["key"].is_string(),
                "{name} comes from a Kubernetes Secret"
            );
        }
    }
    for (name, _) in declared.iter().filter(|(_, secret)| *secret) {
        assert!(
            variables.iter().any(|v| v["name"] == name.as_str()),
            "secret {name} is set"
        );
    }
    let stores = app["spec"]["runtimeConfig"]["keyValueStores"]
        .as_array()
        .expect("runtimeConfig.keyValueStores");
    let default = stores
        .iter()
        .find(|store| store["name"] == "default")
        .expect("the default store is configured");
    assert_eq!(default["type"], "redis");
    let url = default["options"]
        .as_array()
        .and_then(|options| options.iter().find(|o| o["name"] == "url"))
        .expect("a url option");
    assert!(
        url["valueFrom"]["secretKeyRef"]["key"].is_string(),
        "the Redis URL (and its password) comes from a Secret"
    );
}

#[test]
fn the_spinapp_sets_the_production_settings() {
    let values = spinapp_values(&spinapp());
    let value = |name: &str| {
        values
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("{name} is set"))
    };
    assert_ne!(value("sms_provider"), "log", "codes never go to the log");
    assert_eq!(value("auth_allow_hs256"), "false");
    for name in [
        "sms_gateway_url",
        "sms_gateway_origin",
        "auth_issuer",
        "auth_jwks",
    ] {
        assert!(
            value(name).starts_with("https://") || name == "auth_jwks",
            "{name}"
        );
    }
}

#[tokio::test]
async fn the_spinapp_variables_make_a_configured_app() {
    let values = spinapp_values(&spinapp());
    let overrides: Vec<(&str, &str)> = values
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    // The suite's secrets stand in for the Kubernetes Secret.
    let Some(app) = TestApp::local_with(&overrides).await else {
        return;
    };
    // An app short of a setting answers 503 before it looks at the caller;
    // this one gets as far as the missing token.
    let response = app
        .client()
        .post(app.resend_url(&uuid_v4()))
        .send()
        .await
        .unwrap();
    expect_error(response, 401, "access_denied").await;
}
