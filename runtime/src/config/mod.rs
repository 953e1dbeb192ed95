//! OpenJarvis's `config.toml`, `[mining]` and `[mining.extra]` (reference §6).
//!
//! Only the mining tables are interpreted; the rest of the file belongs to
//! OpenJarvis. A malformed file, or a `[mining]` value that is wrong
//! (validate.rs), is an error naming the line and column.

mod validate;

pub use validate::{env_name, http_url};

use crate::bounded_read::{self, InputFile, ReadError};
use crate::text_position::span_start;
use pearl_catalog::workers::{SettingValue, WorkersSetting, WorkersSettingError};
use std::path::{Path, PathBuf};
use toml::{Table, Value};

/// The reference's default pearld RPC endpoint (mainnet).
pub const DEFAULT_PEARLD_RPC_URL: &str = "http://localhost:44107";
pub const DEFAULT_PEARLD_RPC_USER: &str = "rpcuser";
pub const DEFAULT_PASSWORD_ENV: &str = "PEARLD_RPC_PASSWORD";

/// Where mined work is submitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitTarget {
    Solo {
        pearld_rpc_url: String,
    },
    Pool {
        url: String,
        worker_id: Option<String>,
    },
}

/// The parsed `[mining]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct MiningConfig {
    pub provider: String,
    pub wallet_address: String,
    pub submit_target: SubmitTarget,
    pub fee_bps: i64,
    pub fee_payout_address: Option<String>,
    /// `[mining.extra]`: free-form provider options.
    pub extra: Table,
}

/// `config.toml` as read: OpenJarvis's own files are a few KiB.
pub const CONFIG_FILE: InputFile = InputFile {
    noun: "the config file",
    expected: "a TOML file (OpenJarvis's config.toml)",
    max_bytes: 4 << 20,
    header: None,
};

/// The config file: absent, or present with or without `[mining]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    pub mining: Option<MiningConfig>,
    /// `file:line:column: unknown key …` for keys no built-in reads.
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Read(#[from] ReadError),
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
        /// `[mining.extra].model` names no Pearl model (exit 5, not 2).
        unknown_model: bool,
    },
}

impl Config {
    /// Loads `path`; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        match bounded_read::read_text(path, &CONFIG_FILE) {
            Ok(text) => Config::parse(&text, path),
            Err(err) if err.is_not_found() => Ok(Config::default()),
            Err(err) => Err(err.into()),
        }
    }

    /// Parses config text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let table: Table = text.parse().map_err(|err: toml::de::Error| {
            let (line, column) = span_start(text, err.span());
            ConfigError::Syntax {
                path: path.to_owned(),
                line,
                column,
                message: err.message().trim_end().to_owned(),
            }
        })?;
        let at = |finding: &validate::Finding| {
            let (line, column) = position(text, finding);
            format!("{}:{line}:{column}", path.display())
        };
        let invalid = |finding: validate::Finding| {
            let (line, column) = position(text, &finding);
            ConfigError::Invalid {
                path: path.to_owned(),
                line,
                column,
                message: finding.message,
                unknown_model: finding.unknown_model,
            }
        };
        let (mining, warnings) = match table.get("mining") {
            None => (None, Vec::new()),
            Some(Value::Table(mining)) => {
                let warnings = validate::mining(mining).map_err(invalid)?;
                let warnings = warnings
                    .iter()
                    .map(|w| format!("{}: warning: {}", at(w), w.message))
                    .collect();
                (Some(parse_mining(mining)), warnings)
            }
            Some(other) => {
                return Err(invalid(validate::Finding {
                    path: vec!["mining".into()],
                    at_key: false,
                    message: format!("[mining] must be a table, found a {}", other.type_str()),
                    unknown_model: false,
                }));
            }
        };
        Ok(Config { mining, warnings })
    }
}

/// Where a finding's key (or value) is in `text`; the file's start when
/// the path cannot be followed (it parsed, so this is only a fallback).
fn position(text: &str, finding: &validate::Finding) -> (usize, usize) {
    let Ok(document) = toml_edit::Document::parse(text) else {
        return (1, 1);
    };
    let (last, parents) = match finding.path.split_last() {
        Some(split) => split,
        None => return (1, 1),
    };
    let mut item = document.as_item();
    for key in parents {
        match item.get(key) {
            Some(next) => item = next,
            None => return (1, 1),
        }
    }
    let span = if finding.at_key {
        item.as_table_like()
            .and_then(|table| table.get_key_value(last))
            .and_then(|(key, _)| key.span())
    } else {
        item.get(last).and_then(toml_edit::Item::span)
    };
    span_start(text, span)
}

/// Builds the record from a table [`validate::mining`] accepted.
fn parse_mining(mining: &Table) -> MiningConfig {
    let text = |key: &str| mining.get(key).and_then(Value::as_str).map(str::to_owned);
    let extra = mining
        .get("extra")
        .and_then(Value::as_table)
        .cloned()
        .unwrap_or_default();
    let submit_target = match text("submit_target") {
        Some(target) if target.starts_with("pool:") => SubmitTarget::Pool {
            url: target["pool:".len()..].to_owned(),
            worker_id: None,
        },
        _ => SubmitTarget::Solo {
            pearld_rpc_url: extra_string(&extra, "pearld_rpc_url")
                .ok()
                .flatten()
                .unwrap_or_else(|| DEFAULT_PEARLD_RPC_URL.to_owned()),
        },
    };
    MiningConfig {
        provider: text("provider").unwrap_or_default(),
        wallet_address: text("wallet_address").unwrap_or_default(),
        submit_target,
        fee_bps: mining
            .get("fee_bps")
            .and_then(Value::as_integer)
            .unwrap_or(0),
        fee_payout_address: text("fee_payout_address").filter(|s| !s.is_empty()),
        extra,
    }
}

/// A string key of `[mining.extra]`; other scalar types are accepted as text.
pub fn extra_string(extra: &Table, key: &str) -> Result<Option<String>, String> {
    match extra.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Integer(i)) => Ok(Some(i.to_string())),
        Some(other) => Err(format!(
            "[mining.extra].{key} must be a string, found a {}",
            other.type_str()
        )),
    }
}

impl MiningConfig {
    fn extra_or(&self, key: &str, default: &str) -> String {
        extra_string(&self.extra, key)
            .ok()
            .flatten()
            .unwrap_or_else(|| default.to_owned())
    }

    /// `[mining.extra].model`, else the default Pearl model.
    pub fn model(&self) -> String {
        self.extra_or("model", pearl_catalog::DEFAULT_PEARL_MODEL)
    }

    pub fn cuda_visible_devices(&self) -> Option<String> {
        extra_string(&self.extra, "cuda_visible_devices")
            .ok()
            .flatten()
    }

    pub fn pearld_rpc_url(&self) -> String {
        self.extra_or("pearld_rpc_url", DEFAULT_PEARLD_RPC_URL)
    }

    pub fn pearld_rpc_user(&self) -> String {
        self.extra_or("pearld_rpc_user", DEFAULT_PEARLD_RPC_USER)
    }

    /// The *name* of the variable holding the pearld password (never the value).
    pub fn pearld_password_env(&self) -> String {
        self.extra_or("pearld_rpc_password_env", DEFAULT_PASSWORD_ENV)
    }

    /// `[mining.extra].workers`; `auto` when unset (validation refused
    /// anything else at load).
    pub fn workers(&self) -> WorkersSetting {
        self.extra
            .get("workers")
            .and_then(|value| workers_setting(value).ok())
            .unwrap_or_default()
    }

    /// `[mining.extra].idle_fill`; `auto` when unset (validation refused
    /// anything but "auto" and "off" at load).
    pub fn idle_fill(&self) -> crate::supervise::idle_fill::IdleFillMode {
        extra_string(&self.extra, "idle_fill")
            .ok()
            .flatten()
            .and_then(|text| crate::supervise::idle_fill::IdleFillMode::parse(&text))
            .unwrap_or_default()
    }
}

/// A `[mining]` table for vllm-pearl whose `[mining.extra]` is `extra`
/// (TOML lines), for unit tests.
#[cfg(test)]
pub(crate) fn test_mining(extra: &str) -> MiningConfig {
    let text = format!(
        "[mining]\nprovider = \"vllm-pearl\"\nwallet_address = \"prl1q\"\n[mining.extra]\n{extra}\n"
    );
    Config::parse(&text, Path::new("config.toml"))
        .unwrap()
        .mining
        .unwrap()
}

/// `[mining.extra].workers` as `pearl_catalog::workers` reads it.
fn workers_setting(value: &Value) -> Result<WorkersSetting, WorkersSettingError> {
    fn setting(value: &Value) -> SettingValue {
        match value {
            Value::String(s) => SettingValue::Text(s.clone()),
            Value::Integer(n) => SettingValue::Integer(*n),
            Value::Float(x) => SettingValue::Float(*x),
            Value::Boolean(b) => SettingValue::Boolean(*b),
            Value::Array(items) => SettingValue::List(items.iter().map(setting).collect()),
            Value::Datetime(_) | Value::Table(_) => SettingValue::Table,
        }
    }
    WorkersSetting::parse(&setting(value))
}

impl MiningConfig {
    /// The config as a provider receives it, with the GPUs it may mine on.
    /// Nested tables in `[mining.extra]` have no meaning to providers and
    /// are left out.
    pub fn to_guest(&self, gpus: Vec<crate::bindings::Gpu>) -> crate::bindings::MiningConfig {
        use crate::bindings::{
            ExtraValue, PoolTarget, SoloTarget, SubmitTarget as Target, WorkersSetting as Workers,
        };
        let extra = self
            .extra
            .iter()
            .filter_map(|(key, value)| {
                let value = match value {
                    Value::String(s) => ExtraValue::Text(s.clone()),
                    Value::Integer(i) => ExtraValue::Integer(*i),
                    Value::Float(x) => ExtraValue::Float(*x),
                    Value::Boolean(b) => ExtraValue::Boolean(*b),
                    Value::Array(items) => ExtraValue::Texts(
                        items
                            .iter()
                            .map(|item| match item {
                                Value::String(s) => s.clone(),
                                other => other.to_string(),
                            })
                            .collect(),
                    ),
                    Value::Datetime(d) => ExtraValue::Text(d.to_string()),
                    Value::Table(_) => return None,
                };
                Some((key.clone(), value))
            })
            .collect();
        crate::bindings::MiningConfig {
            provider: self.provider.clone(),
            wallet_address: self.wallet_address.clone(),
            submit_target: match &self.submit_target {
                SubmitTarget::Solo { pearld_rpc_url } => Target::Solo(SoloTarget {
                    pearld_rpc_url: pearld_rpc_url.clone(),
                }),
                SubmitTarget::Pool { url, worker_id } => Target::Pool(PoolTarget {
                    url: url.clone(),
                    worker_id: worker_id.clone(),
                }),
            },
            fee_bps: self.fee_bps,
            fee_payout_address: self.fee_payout_address.clone(),
            extra,
            workers: match self.workers() {
                WorkersSetting::Auto => Workers::Auto,
                WorkersSetting::Single => Workers::Single,
                WorkersSetting::Groups(groups) => Workers::Groups(groups),
            },
            gpus,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("config.toml"))
    }

    const MINIMAL: &str = r#"
[engine]
default = "ollama"

[mining]
provider = "vllm-pearl"
wallet_address = "prl1qexampleaddress"
submit_target = "solo"
fee_bps = 0
fee_payout_address = ""

[mining.extra]
model = "pearl-ai/Llama-3.3-70B-Instruct-pearl"
pearld_rpc_url = "http://localhost:44107"
pearld_rpc_user = "rpcuser"
pearld_rpc_password_env = "PEARLD_RPC_PASSWORD"
"#;

    #[test]
    fn reference_minimal_fixture() {
        let mining = parse(MINIMAL).unwrap().mining.unwrap();
        assert_eq!(mining.provider, "vllm-pearl");
        assert_eq!(
            mining.submit_target,
            SubmitTarget::Solo {
                pearld_rpc_url: "http://localhost:44107".into()
            }
        );
        assert_eq!(mining.fee_bps, 0);
        assert_eq!(mining.fee_payout_address, None);
        assert_eq!(mining.model(), "pearl-ai/Llama-3.3-70B-Instruct-pearl");
    }

    #[test]
    fn pool_target() {
        let text = MINIMAL.replace(
            "submit_target = \"solo\"",
            "submit_target = \"pool:https://pool.openjarvis.ai/submit\"",
        );
        let mining = parse(&text).unwrap().mining.unwrap();
        assert_eq!(
            mining.submit_target,
            SubmitTarget::Pool {
                url: "https://pool.openjarvis.ai/submit".into(),
                worker_id: None
            }
        );
    }

    #[test]
    fn idle_fill_defaults_to_auto() {
        use crate::supervise::idle_fill::IdleFillMode;
        assert_eq!(test_mining("").idle_fill(), IdleFillMode::Auto);
        assert_eq!(
            test_mining("idle_fill = \"off\"").idle_fill(),
            IdleFillMode::Off
        );
        assert_eq!(
            test_mining("idle_fill = \"auto\"").idle_fill(),
            IdleFillMode::Auto
        );
    }

    #[test]
    fn no_mining_table() {
        assert_eq!(
            parse("[engine]\ndefault = \"vllm\"\n").unwrap().mining,
            None
        );
    }

    #[test]
    fn syntax_errors_have_line_and_column() {
        let err = parse("[mining]\nprovider = \"vllm-pearl\nwallet_address = 1\n").unwrap_err();
        match err {
            ConfigError::Syntax { line, column, .. } => assert_eq!((line, column), (2, 23)),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn semantic_errors_say_what_to_do_and_where() {
        let err = parse("[mining]\nwallet_address = \"prl1q\"\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "config.toml:1:2: [mining].provider is missing: add it, or run `jarvis mine init`"
        );
        let err = parse(&MINIMAL.replace("fee_bps = 0", "fee_bps = 20000")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "config.toml:9:11: [mining].fee_bps must be from 0 to 10000, found 20000"
        );
        let text = format!("{MINIMAL}vllm_port = \"eighty\"\n");
        let err = parse(&text).unwrap_err();
        assert_eq!(
            err.to_string(),
            "config.toml:17:13: [mining.extra].vllm_port expected an integer, found a string"
        );
        let config = parse(&format!("{MINIMAL}vlm_port = 9000\n")).unwrap();
        assert_eq!(
            config.warnings,
            [
                "config.toml:17:1: warning: unknown key [mining.extra].vlm_port: did you mean `vllm_port`?"
            ]
        );
        let err =
            parse("[mining]\nprovider = \"x\"\nwallet_address = \"y\"\nsubmit_target = \"moon\"\n")
                .unwrap_err();
        assert!(
            err.to_string()
                .contains("must be 'solo' or 'pool:<url>', got \"moon\"")
        );
    }
}
