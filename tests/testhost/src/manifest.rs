//! The parts of `spin.toml` that decide what the component may touch, read
//! and checked as Spin reads them.

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

#[derive(Deserialize)]
struct RawManifest {
    spin_manifest_version: u32,
    #[serde(default)]
    variables: BTreeMap<String, VariableDecl>,
    trigger: Triggers,
    component: BTreeMap<String, RawComponent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VariableDecl {
    default: Option<String>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    #[allow(
        dead_code,
        reason = "Spin only hides secret values; the host checks the field exists"
    )]
    secret: bool,
}

#[derive(Deserialize)]
struct Triggers {
    http: Vec<HttpTrigger>,
}

#[derive(Deserialize)]
struct HttpTrigger {
    route: String,
    component: String,
}

#[derive(Deserialize)]
struct RawComponent {
    source: PathBuf,
    #[serde(default)]
    key_value_stores: Vec<String>,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
}

/// One HTTP component of a manifest, with every template resolved.
#[derive(Debug, Clone)]
pub struct ComponentSpec {
    pub route: String,
    pub source: PathBuf,
    pub key_value_stores: Vec<String>,
    pub allowed_outbound_hosts: Vec<AllowedOrigin>,
    /// What `wasi:config/store` answers: the component's variables.
    pub variables: HashMap<String, String>,
}

/// An `allowed_outbound_hosts` entry: `scheme://host[:port]`, where any part
/// may be `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedOrigin {
    scheme: String,
    host: String,
    port: Option<String>,
}

impl AllowedOrigin {
    fn parse(entry: &str) -> Result<Self> {
        let (scheme, rest) = entry
            .split_once("://")
            .with_context(|| format!("allowed_outbound_hosts entry {entry:?} has no scheme"))?;
        if rest.is_empty() {
            bail!("allowed_outbound_hosts entry {entry:?} has no host");
        }
        if rest.contains('/') {
            bail!("allowed_outbound_hosts entry {entry:?} must not have a path");
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) => (host, Some(port.to_owned())),
            None => (rest, None),
        };
        Ok(Self {
            scheme: scheme.to_ascii_lowercase(),
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    pub fn allows(&self, uri: &http::Uri) -> bool {
        let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
            return false;
        };
        let default_port = match scheme {
            "https" => 443,
            "http" => 80,
            _ => return false,
        };
        let port = uri.port_u16().unwrap_or(default_port);
        let scheme_ok = self.scheme == "*" || self.scheme == scheme;
        let host_ok = self.host == "*" || self.host.eq_ignore_ascii_case(host);
        let port_ok = match self.port.as_deref() {
            Some("*") => true,
            Some(p) => p.parse::<u16>().ok() == Some(port),
            None => self.scheme != "*" && port == default_port,
        };
        scheme_ok && host_ok && port_ok
    }
}

impl ComponentSpec {
    /// Reads the manifest and resolves it against `overrides` (variable name
    /// to value, as Spin takes them from `SPIN_VARIABLE_<NAME>`). Fails where
    /// Spin fails: a required variable without a value, a template naming an
    /// undeclared variable, an outbound entry that is empty or has a path.
    pub fn load(manifest_path: &Path, overrides: &HashMap<String, String>) -> Result<Self> {
        let text = std::fs::read_to_string(manifest_path)
            .with_context(|| format!("reading {}", manifest_path.display()))?;
        let raw: RawManifest = toml::from_str(&text).context("parsing the manifest")?;
        if raw.spin_manifest_version != 2 {
            bail!("only spin_manifest_version = 2 is supported");
        }
        let mut values = HashMap::new();
        for (name, decl) in &raw.variables {
            let value = match (overrides.get(name), &decl.default) {
                (Some(value), _) => value.clone(),
                (None, Some(default)) if !decl.required => default.clone(),
                _ => bail!("variable {name} is required and has no value"),
            };
            values.insert(name.clone(), value);
        }
        for name in overrides.keys() {
            if !raw.variables.contains_key(name) {
                bail!("variable {name} is set but not declared in the manifest");
            }
        }
        let [trigger] = raw.trigger.http.as_slice() else {
            bail!("exactly one HTTP trigger is supported");
        };
        let component = raw
            .component
            .get(&trigger.component)
            .with_context(|| format!("component {} is not defined", trigger.component))?;
        let resolve = |template: &str| resolve_template(template, &values);
        let allowed_outbound_hosts = component
            .allowed_outbound_hosts
            .iter()
            .map(|entry| AllowedOrigin::parse(&resolve(entry)?))
            .collect::<Result<_>>()?;
        let variables = component
            .variables
            .iter()
            .map(|(name, template)| Ok((name.clone(), resolve(template)?)))
            .collect::<Result<_>>()?;
        let base = manifest_path.parent().unwrap_or(Path::new("."));
        Ok(Self {
            route: trigger.route.clone(),
            source: base.join(&component.source),
            key_value_stores: component.key_value_stores.clone(),
            allowed_outbound_hosts,
            variables,
        })
    }

    pub fn allows_outbound(&self, uri: &http::Uri) -> bool {
        self.allowed_outbound_hosts
            .iter()
            .any(|origin| origin.allows(uri))
    }
}

/// `{{ name }}` placeholders replaced by variable values.
fn resolve_template(template: &str, values: &HashMap<String, String>) -> Result<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find("}}")
            .with_context(|| format!("unclosed template in {template:?}"))?;
        let name = rest[start + 2..start + end].trim();
        let value = values
            .get(name)
            .with_context(|| format!("template {template:?} names undeclared variable {name}"))?;
        out.push_str(value);
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_match_scheme_host_and_port() {
        let origin = AllowedOrigin::parse("http://127.0.0.1:8080").unwrap();
        assert!(origin.allows(&"http://127.0.0.1:8080/send".parse().unwrap()));
        assert!(!origin.allows(&"http://127.0.0.1:8081/send".parse().unwrap()));
        assert!(!origin.allows(&"https://127.0.0.1:8080/send".parse().unwrap()));
        let default_port = AllowedOrigin::parse("https://api.example").unwrap();
        assert!(default_port.allows(&"https://api.example/x".parse().unwrap()));
        assert!(!default_port.allows(&"https://api.example:8443/x".parse().unwrap()));
    }

    #[test]
    fn entries_spin_refuses_are_refused() {
        assert!(AllowedOrigin::parse("").is_err());
        assert!(AllowedOrigin::parse("https://host/path").is_err());
    }

    #[test]
    fn templates_resolve_declared_variables_only() {
        let values = HashMap::from([("a".to_owned(), "x".to_owned())]);
        assert_eq!(resolve_template("{{ a }}-{{a}}", &values).unwrap(), "x-x");
        assert!(resolve_template("{{ b }}", &values).is_err());
    }
}
