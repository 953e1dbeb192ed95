//! Every `[mining]` and `[mining.extra]` value is checked when the file is
//! loaded, so a typo is an error naming its `file:line:column` before any
//! command acts on it, not a surprise halfway through `start`.
//!
//! `[mining.extra]` is free-form for community providers: only the keys the
//! built-in providers and the host read are checked, and unknown keys are
//! warned about (with a "did you mean") only when a built-in provider is
//! configured, since a community provider's keys are its own.

use crate::facts::BUILTIN_PROVIDERS;
use crate::image_reference::ImageRef;
use toml::{Table, Value};

/// A problem and the key it is about (`["mining", "extra", "vllm_port"]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub path: Vec<String>,
    /// Point at the key rather than its value (an unknown key).
    pub at_key: bool,
    pub message: String,
    /// A model the registry does not know (its own exit code).
    pub unknown_model: bool,
}

impl Finding {
    fn value(path: &[&str], message: String) -> Finding {
        Finding {
            path: path.iter().map(|s| (*s).to_owned()).collect(),
            at_key: false,
            message,
            unknown_model: false,
        }
    }
}

/// What a key's value must be.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Text,
    Port,
    HttpUrl,
    EnvName,
    GpuList,
    Image,
    /// A number in (0, 1].
    Fraction,
    /// A whole number in the range.
    Integer(i64, i64),
    /// A finite number of at least 0 (a price per kWh).
    Price,
    /// A list of strings, or one shell-quoted string.
    Args,
    OneOf(&'static [&'static str]),
    ExistingDir,
    /// A model the Pearl registry knows (vllm-pearl), unless a local path is given.
    Model,
    /// "auto", "single" or groups of GPU ids (`pearl_catalog::workers`).
    Workers,
    /// A Docker container name (vllm-pearl's worker 0).
    ContainerName,
}

/// The `[mining.extra]` keys the built-in providers and the host read.
const EXTRA_KEYS: [(&str, Kind); 23] = [
    ("model", Kind::Model),
    ("local_model_path", Kind::ExistingDir),
    ("pearld_rpc_url", Kind::HttpUrl),
    ("pearld_rpc_user", Kind::Text),
    ("pearld_rpc_password_env", Kind::EnvName),
    ("hf_token_env", Kind::EnvName),
    ("cuda_visible_devices", Kind::GpuList),
    ("docker_image_tag", Kind::Image),
    ("container_name", Kind::ContainerName),
    ("vllm_port", Kind::Port),
    ("gateway_port", Kind::Port),
    ("gateway_metrics_port", Kind::Port),
    ("metrics_port", Kind::Port),
    ("gateway_host", Kind::Text),
    ("gpu_memory_utilization", Kind::Fraction),
    ("max_model_len", Kind::Integer(1, 10_000_000)),
    ("vllm_args", Kind::Args),
    ("pearl_source_dir", Kind::ExistingDir),
    ("gpu_request", Kind::OneOf(&["auto", "none"])),
    ("start_wait_seconds", Kind::Integer(0, 86_400)),
    ("electricity_price_per_kwh", Kind::Price),
    ("workers", Kind::Workers),
    (
        "idle_fill",
        Kind::OneOf(&crate::supervise::idle_fill::IdleFillMode::VALUES),
    ),
];

/// The keys the host itself reads, checked whatever the provider.
const HOST_KEYS: [&str; 4] = [
    "pearld_rpc_url",
    "pearld_rpc_password_env",
    "electricity_price_per_kwh",
    // `jarvis mine supervise` reads it.
    "idle_fill",
];

const MINING_KEYS: [&str; 6] = [
    "provider",
    "wallet_address",
    "submit_target",
    "fee_bps",
    "fee_payout_address",
    "extra",
];

/// The ports each built-in provider uses when its key is unset.
fn default_ports(provider: &str) -> &'static [(&'static str, i64)] {
    match provider {
        "vllm-pearl" => &[
            ("vllm_port", 8000),
            ("gateway_port", 8337),
            ("gateway_metrics_port", 8339),
        ],
        "cpu-pearl" | "apple-mps-pearl" => &[("gateway_port", 8337), ("metrics_port", 8339)],
        _ => &[],
    }
}

/// Checks `[mining]` (`mining` is its table): the first error, or the warnings.
pub fn mining(mining: &Table) -> Result<Vec<Finding>, Finding> {
    let mut warnings = Vec::new();
    for key in ["provider", "wallet_address"] {
        match mining.get(key) {
            None => {
                return Err(Finding {
                    path: vec!["mining".into()],
                    at_key: true,
                    message: format!(
                        "[mining].{key} is missing: add it, or run `jarvis mine init`"
                    ),
                    unknown_model: false,
                });
            }
            Some(value) => string(value)
                .filter(|s| !s.trim().is_empty())
                .map(|_| ())
                .ok_or_else(|| {
                    Finding::value(
                        &["mining", key],
                        format!(
                            "[mining].{key} must be a non-empty string, found {}",
                            described(value)
                        ),
                    )
                })?,
        }
    }
    if let Some(value) = mining.get("submit_target") {
        submit_target(value).map_err(|m| Finding::value(&["mining", "submit_target"], m))?;
    }
    if let Some(value) = mining.get("fee_bps") {
        integer(value, 0, 10_000)
            .map_err(|m| Finding::value(&["mining", "fee_bps"], format!("[mining].fee_bps {m}")))?;
    }
    if let Some(value) = mining.get("fee_payout_address") {
        string(value).ok_or_else(|| {
            Finding::value(
                &["mining", "fee_payout_address"],
                format!(
                    "[mining].fee_payout_address: {}",
                    expected("a string", value)
                ),
            )
        })?;
    }
    for key in mining.keys().filter(|k| !MINING_KEYS.contains(&k.as_str())) {
        warnings.push(unknown_key(&["mining", key], "[mining]", key, &MINING_KEYS));
    }
    let extra = match mining.get("extra") {
        None => return Ok(warnings),
        Some(Value::Table(extra)) => extra,
        Some(other) => {
            return Err(Finding::value(
                &["mining", "extra"],
                format!("[mining.extra] must be a table, found {}", described(other)),
            ));
        }
    };
    let provider = string(&mining["provider"]).unwrap_or_default();
    let builtin = BUILTIN_PROVIDERS.contains(&provider);
    for (key, value) in extra {
        let Some((_, kind)) = EXTRA_KEYS.iter().find(|(k, _)| k == key) else {
            if builtin {
                let known: Vec<&str> = EXTRA_KEYS.iter().map(|(k, _)| *k).collect();
                warnings.push(unknown_key(
                    &["mining", "extra", key],
                    "[mining.extra]",
                    key,
                    &known,
                ));
            }
            continue;
        };
        // A community provider reads its own keys its own way; the host
        // still reads the node keys for doctor and the price for status.
        if !builtin && !HOST_KEYS.contains(&key.as_str()) {
            continue;
        }
        check(*kind, value, extra, provider).map_err(|message| Finding {
            unknown_model: matches!(kind, Kind::Model) && value.is_str(),
            ..Finding::value(
                &["mining", "extra", key],
                format!("[mining.extra].{key} {message}"),
            )
        })?;
    }
    if builtin {
        distinct_ports(extra, provider)?;
    }
    Ok(warnings)
}

fn check(kind: Kind, value: &Value, extra: &Table, provider: &str) -> Result<(), String> {
    match kind {
        Kind::Text => string(value)
            .map(|_| ())
            .ok_or_else(|| expected("a string", value)),
        Kind::Port => integer(value, 1, 65_535),
        Kind::HttpUrl => {
            let text = string(value).ok_or_else(|| expected("a URL string", value))?;
            http_url(text)
        }
        Kind::EnvName => {
            let text = string(value).ok_or_else(|| expected("a variable name", value))?;
            env_name(text)
        }
        Kind::GpuList => {
            let text = string(value).ok_or_else(|| expected("a string such as \"0,1\"", value))?;
            match text
                .split(',')
                .map(str::trim)
                .filter(|id| !id.is_empty())
                .find(|id| {
                    !(id.parse::<u32>().is_ok() || id.starts_with("GPU-") || id.starts_with("MIG-"))
                }) {
                None => Ok(()),
                Some(bad) => Err(format!(
                    "must list GPU indexes or UUIDs, comma-separated (\"0,1\", \"GPU-…\"); {bad:?} is neither"
                )),
            }
        }
        Kind::Workers => super::workers_setting(value).map(drop).map_err(|err| {
            // The finding names the key already.
            let message = err.to_string();
            message
                .strip_prefix(pearl_catalog::workers::WORKERS_KEY)
                .unwrap_or(&message)
                .trim_start_matches(':')
                .trim_start()
                .to_owned()
        }),
        Kind::ContainerName => {
            let text = string(value).ok_or_else(|| expected("a container name", value))?;
            // Docker's rule, less room for the workers' `-<n>` suffixes.
            let valid = text.len() <= 60
                && text.starts_with(|c: char| c.is_ascii_alphanumeric())
                && text
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
            if valid {
                Ok(())
            } else {
                Err(format!(
                    "is not a container name: letters, digits, `_`, `.` and `-`, starting with a \
                     letter or digit, at most 60 characters (such as \"openjarvis-pearl-miner-alice\"), \
                     found {value}"
                ))
            }
        }
        Kind::Image => {
            let text = string(value).ok_or_else(|| expected("an image reference", value))?;
            ImageRef::parse(text)
                .map(|_| ())
                .map_err(|err| format!("is not an image reference: {err}"))
        }
        Kind::Fraction => {
            let x = match value {
                Value::Float(x) => *x,
                Value::Integer(n) => *n as f64,
                other => return Err(expected("a number", other)),
            };
            if x > 0.0 && x <= 1.0 {
                Ok(())
            } else {
                Err(format!(
                    "must be a fraction above 0 and at most 1, found {x}"
                ))
            }
        }
        Kind::Integer(low, high) => integer(value, low, high),
        Kind::Price => {
            let price = match value {
                Value::Float(x) => *x,
                Value::Integer(n) => *n as f64,
                other => return Err(expected("a number (the price of one kWh)", other)),
            };
            if price.is_finite() && price >= 0.0 {
                Ok(())
            } else {
                Err(format!(
                    "must be the price of one kWh in your currency, a number of at least 0 \
                     (such as 0.25), found {price}"
                ))
            }
        }
        Kind::Args => match value {
            Value::String(_) => Ok(()),
            Value::Array(items) if items.iter().all(Value::is_str) => Ok(()),
            other => Err(expected("a list of strings", other)),
        },
        Kind::OneOf(choices) => match string(value) {
            Some(text) if choices.contains(&text) => Ok(()),
            _ => Err(format!(
                "must be one of {}, found {}",
                choices
                    .iter()
                    .map(|c| format!("\"{c}\""))
                    .collect::<Vec<_>>()
                    .join(", "),
                described(value)
            )),
        },
        Kind::ExistingDir => {
            let text = string(value).ok_or_else(|| expected("a directory path", value))?;
            if std::path::Path::new(text).is_dir() {
                Ok(())
            } else {
                Err(format!("names {text:?}, which is not a directory"))
            }
        }
        Kind::Model => {
            let text = string(value).ok_or_else(|| expected("a model id", value))?;
            if provider != "vllm-pearl"
                || extra.contains_key("local_model_path")
                || pearl_catalog::find(text).is_some()
            {
                Ok(())
            } else {
                Err(format!(
                    "names unknown model '{text}': see `jarvis mine models`, or set local_model_path to a converted checkpoint"
                ))
            }
        }
    }
}

/// Two services on one port cannot both start: the ports set (and the
/// provider's defaults for those unset) must differ.
fn distinct_ports(extra: &Table, provider: &str) -> Result<(), Finding> {
    let mut ports: Vec<(&str, i64)> = default_ports(provider)
        .iter()
        .map(|(key, default)| {
            let port = match extra.get(*key) {
                Some(Value::Integer(n)) => *n,
                _ => *default,
            };
            (*key, port)
        })
        .collect();
    for (key, kind) in EXTRA_KEYS {
        if matches!(kind, Kind::Port)
            && !ports.iter().any(|(k, _)| *k == key)
            && let Some(Value::Integer(n)) = extra.get(key)
        {
            ports.push((key, *n));
        }
    }
    for (i, (key, port)) in ports.iter().enumerate() {
        if let Some((other, _)) = ports[..i].iter().find(|(_, p)| p == port) {
            let set = if extra.contains_key(*key) {
                *key
            } else {
                *other
            };
            let clash = if set == *key { *other } else { *key };
            return Err(Finding::value(
                &["mining", "extra", set],
                format!(
                    "[mining.extra].{set} is {port}, the same port as {clash}{}: give each its own port",
                    if extra.contains_key(clash) {
                        ""
                    } else {
                        " (its default)"
                    }
                ),
            ));
        }
    }
    Ok(())
}

/// `"solo"` or `"pool:<url>"`.
fn submit_target(value: &Value) -> Result<(), String> {
    let text = string(value).ok_or_else(|| {
        format!(
            "[mining].submit_target: {}",
            expected("\"solo\" or \"pool:<url>\"", value)
        )
    })?;
    if text == "solo" {
        return Ok(());
    }
    let Some(url) = text.strip_prefix("pool:") else {
        return Err(format!(
            "[mining].submit_target must be 'solo' or 'pool:<url>', got {text:?}"
        ));
    };
    if url.trim().is_empty() {
        return Err(
            "[mining].submit_target is 'pool:' with no URL: write pool:<url> (e.g. pool:stratum+tcp://pool.example:3333), or solo"
                .into(),
        );
    }
    match url.parse::<ureq::http::Uri>() {
        Ok(uri) if uri.scheme().is_some() && uri.host().is_some() => Ok(()),
        _ => Err(format!(
            "[mining].submit_target's pool URL {url:?} is not a URL with a scheme and host"
        )),
    }
}

/// An environment variable's name: letters, digits and `_`, not starting
/// with a digit.
pub fn env_name(text: &str) -> Result<(), String> {
    let mut chars = text.chars();
    if chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
    {
        Ok(())
    } else {
        Err(format!(
            "must name an environment variable (letters, digits, _), found {text:?}"
        ))
    }
}

/// An `http://` or `https://` URL with a host.
pub fn http_url(text: &str) -> Result<(), String> {
    match text.parse::<ureq::http::Uri>() {
        Ok(uri)
            if matches!(uri.scheme_str(), Some("http" | "https"))
                && uri.host().is_some_and(|h| !h.is_empty()) =>
        {
            Ok(())
        }
        _ => Err(format!(
            "must be an http:// or https:// URL with a host, found {text:?}"
        )),
    }
}

fn string(value: &Value) -> Option<&str> {
    value.as_str()
}

fn integer(value: &Value, low: i64, high: i64) -> Result<(), String> {
    match value {
        Value::Integer(n) if (low..=high).contains(n) => Ok(()),
        Value::Integer(n) => Err(format!("must be from {low} to {high}, found {n}")),
        other => Err(expected("an integer", other)),
    }
}

/// "expected an integer, found a string".
fn expected(what: &str, found: &Value) -> String {
    format!("expected {what}, found {}", described(found))
}

/// A value's type with its article: "a string", "an integer", "an array".
fn described(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date-time",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}

fn unknown_key(path: &[&str], table: &str, key: &str, known: &[&str]) -> Finding {
    let guess = known
        .iter()
        .map(|k| (strsim::jaro_winkler(key, k), *k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| format!(": did you mean `{k}`?"))
        .unwrap_or_else(|| ": no built-in provider reads it".to_owned());
    Finding {
        path: path.iter().map(|s| (*s).to_owned()).collect(),
        at_key: true,
        message: format!("unknown key {table}.{key}{guess}"),
        unknown_model: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings(text: &str) -> Result<Vec<Finding>, Finding> {
        let table: Table = text.parse().unwrap();
        mining(table["mining"].as_table().unwrap())
    }

    fn error(text: &str) -> String {
        findings(text).unwrap_err().message
    }

    const HEAD: &str = "[mining]\nprovider = \"vllm-pearl\"\nwallet_address = \"prl1q\"\n";

    #[test]
    fn types_read_well() {
        assert_eq!(
            error(&format!("{HEAD}[mining.extra]\nvllm_port = \"8000\"\n")),
            "[mining.extra].vllm_port expected an integer, found a string"
        );
        assert_eq!(
            error(&format!("{HEAD}fee_bps = 1.5\n")),
            "[mining].fee_bps expected an integer, found a float"
        );
        assert_eq!(
            error("[mining]\nprovider = 7\nwallet_address = \"w\"\n"),
            "[mining].provider must be a non-empty string, found an integer"
        );
    }

    #[test]
    fn ranges_forms_and_urls() {
        for (extra, wanted) in [
            (
                "vllm_port = 0",
                "vllm_port must be from 1 to 65535, found 0",
            ),
            ("vllm_port = 70000", "must be from 1 to 65535, found 70000"),
            (
                "gpu_memory_utilization = 1.5",
                "must be a fraction above 0 and at most 1",
            ),
            (
                "pearld_rpc_url = \"localhost:44107\"",
                "must be an http:// or https:// URL",
            ),
            (
                "pearld_rpc_url = \"ftp://h/\"",
                "must be an http:// or https:// URL",
            ),
            (
                "pearld_rpc_password_env = \"MY-PASS\"",
                "must name an environment variable",
            ),
            ("cuda_visible_devices = \"0,one\"", "\"one\" is neither"),
            (
                "gpu_request = \"some\"",
                "must be one of \"auto\", \"none\", found a string",
            ),
            (
                "model = \"pearl-ai/nonexistent\"",
                "names unknown model 'pearl-ai/nonexistent'",
            ),
            (
                "local_model_path = \"/nonexistent/model\"",
                "which is not a directory",
            ),
            (
                "docker_image_tag = \"Bad Image\"",
                "is not an image reference",
            ),
            (
                "vllm_args = [1, 2]",
                "expected a list of strings, found an array",
            ),
            (
                "container_name = \"-miner\"",
                "container_name is not a container name: letters, digits",
            ),
            (
                "container_name = \"miner/alice\"",
                "is not a container name",
            ),
            ("container_name = 7", "expected a container name"),
            (
                "electricity_price_per_kwh = -0.1",
                "electricity_price_per_kwh must be the price of one kWh in your currency, a number of at least 0 (such as 0.25), found -0.1",
            ),
            (
                "electricity_price_per_kwh = nan",
                "a number of at least 0 (such as 0.25), found NaN",
            ),
            (
                "electricity_price_per_kwh = \"0.25\"",
                "electricity_price_per_kwh expected a number (the price of one kWh), found a string",
            ),
        ] {
            let message = error(&format!("{HEAD}[mining.extra]\n{extra}\n"));
            assert!(message.contains(wanted), "{extra}: {message}");
        }
        assert!(error(&format!("{HEAD}fee_bps = 10001\n")).contains("from 0 to 10000"));
        assert!(
            error(&format!("{HEAD}submit_target = \"pool:\"\n")).contains("'pool:' with no URL")
        );
        assert!(error(&format!("{HEAD}submit_target = \"pool:nope\"\n")).contains("not a URL"));
        assert!(error(&format!("{HEAD}submit_target = \"moon\"\n")).contains("got \"moon\""));
        findings(&format!(
            "{HEAD}submit_target = \"pool:stratum+tcp://p.example:3333\"\nfee_bps = 10000\n"
        ))
        .unwrap();
        assert_eq!(
            findings(&format!(
                "{HEAD}[mining.extra]\ncontainer_name = \"openjarvis-pearl-miner-alice\"\n"
            )),
            Ok(vec![])
        );
        for price in ["0", "0.0", "0.31", "12"] {
            assert_eq!(
                findings(&format!(
                    "{HEAD}[mining.extra]\nelectricity_price_per_kwh = {price}\n"
                )),
                Ok(vec![])
            );
        }
    }

    #[test]
    fn idle_fill_is_auto_or_off_whatever_the_provider() {
        for head in [
            HEAD,
            "[mining]\nprovider = \"acme\"\nwallet_address = \"w\"\n",
        ] {
            for value in ["\"auto\"", "\"off\""] {
                assert_eq!(
                    findings(&format!("{head}[mining.extra]\nidle_fill = {value}\n")),
                    Ok(vec![])
                );
            }
            for value in ["\"on\"", "false", "1"] {
                assert!(
                    error(&format!("{head}[mining.extra]\nidle_fill = {value}\n")).starts_with(
                        "[mining.extra].idle_fill must be one of \"auto\", \"off\", found"
                    ),
                    "{value}"
                );
            }
        }
    }

    #[test]
    fn the_host_checks_its_price_key_for_community_providers_too() {
        let community = "[mining]\nprovider = \"acme\"\nwallet_address = \"w\"\n[mining.extra]\n";
        assert!(
            error(&format!("{community}electricity_price_per_kwh = -1\n"))
                .contains("a number of at least 0")
        );
        assert_eq!(
            findings(&format!("{community}electricity_price_per_kwh = 0.2\n")),
            Ok(vec![])
        );
    }

    #[test]
    fn ports_must_differ_including_from_defaults() {
        assert_eq!(
            error(&format!("{HEAD}[mining.extra]\nvllm_port = 8337\n")),
            "[mining.extra].vllm_port is 8337, the same port as gateway_port (its default): give each its own port"
        );
        assert!(
            error(&format!(
                "{HEAD}[mining.extra]\nvllm_port = 9000\ngateway_metrics_port = 9000\n"
            ))
            .contains("the same port as vllm_port:")
        );
        findings(&format!(
            "{HEAD}[mining.extra]\nvllm_port = 9000\ngateway_port = 9001\n"
        ))
        .unwrap();
    }

    #[test]
    fn unknown_keys_warn_with_a_guess_for_builtins_only() {
        let warnings = findings(&format!(
            "{HEAD}[mining.extra]\nvlm_port = 9000\nflavour = 1\n"
        ))
        .unwrap();
        let messages: Vec<&str> = warnings.iter().map(|w| w.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "unknown key [mining.extra].flavour: no built-in provider reads it",
                "unknown key [mining.extra].vlm_port: did you mean `vllm_port`?",
            ]
        );
        let community = "[mining]\nprovider = \"acme\"\nwallet_address = \"w\"\n[mining.extra]\nport = \"any\"\nmodel = \"their-own\"\n";
        assert_eq!(findings(community).unwrap(), []);
        let warnings = findings(&format!("{HEAD}walet = \"x\"\n")).unwrap();
        assert_eq!(
            warnings[0].message,
            "unknown key [mining].walet: did you mean `wallet_address`?"
        );
    }
}
