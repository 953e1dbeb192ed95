//! Writing `[mining]` into OpenJarvis's `config.toml` (what `jarvis mine init`
//! does, reference §5.1 step 5–6), without the reference's bugs (§11.6.9):
//!
//! - values are TOML-escaped (the reference interpolated them raw inside
//!   double quotes, so a `"` or `\` in a wallet or path broke the file);
//! - only an actual `mining` key in the document counts as "already
//!   configured" (the reference refused whenever the text contained the
//!   substring `[mining]`, comments included);
//! - the user's file is preserved: when appending, the original bytes are
//!   kept verbatim as a prefix of the new file; when replacing (`force`),
//!   the document is edited with `toml_edit`, which keeps every other table,
//!   comment and format, and the new `[mining]` takes the old one's place
//!   and leading comments;
//! - a malformed file is an error with line and column, and nothing is
//!   written;
//! - the write is atomic (temporary file in the same directory, fsync,
//!   rename), keeps the file's permissions, follows a symlinked config to
//!   its target, and creates the parent directories of a new file (mode
//!   0600 for a new file);
//! - the result is re-read with [`crate::config::Config::parse`] before it is
//!   written, so what `init` writes is always loadable.

use crate::text_position::span_start;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use toml_edit::{Array, DocumentMut, Item, Table, Value};

/// A `[mining.extra]` value.
#[derive(Debug, Clone, PartialEq)]
pub enum ExtraValue {
    String(String),
    Integer(i64),
    Float(f64),
    StringArray(Vec<String>),
}

impl From<&str> for ExtraValue {
    fn from(s: &str) -> Self {
        ExtraValue::String(s.to_owned())
    }
}

impl From<String> for ExtraValue {
    fn from(s: String) -> Self {
        ExtraValue::String(s)
    }
}

impl From<i64> for ExtraValue {
    fn from(i: i64) -> Self {
        ExtraValue::Integer(i)
    }
}

impl From<f64> for ExtraValue {
    fn from(f: f64) -> Self {
        ExtraValue::Float(f)
    }
}

impl From<Vec<String>> for ExtraValue {
    fn from(items: Vec<String>) -> Self {
        ExtraValue::StringArray(items)
    }
}

impl ExtraValue {
    fn to_toml(&self) -> Value {
        match self {
            ExtraValue::String(s) => basic_string(s),
            ExtraValue::Integer(i) => Value::from(*i),
            ExtraValue::Float(f) => Value::from(*f),
            ExtraValue::StringArray(items) => {
                Value::Array(items.iter().map(|s| basic_string(s)).collect::<Array>())
            }
        }
    }
}

/// `s` as a TOML basic string, `"…"`, escaped by the TOML 1.0 rules.
///
/// `toml_edit` would pick literal or multi-line forms for strings holding
/// quotes or backslashes, and may use TOML 1.1 escapes (`\e`, `\x`) that
/// OpenJarvis's reader (Python's `tomllib`, TOML 1.0) rejects; one
/// predictable double-quoted form is also what the reference writes.
fn basic_string(s: &str) -> Value {
    let mut quoted = String::with_capacity(s.len() + 2);
    quoted.push('"');
    for c in s.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\u{8}' => quoted.push_str("\\b"),
            '\t' => quoted.push_str("\\t"),
            '\n' => quoted.push_str("\\n"),
            '\u{c}' => quoted.push_str("\\f"),
            '\r' => quoted.push_str("\\r"),
            c if c.is_control() => quoted.push_str(&format!("\\u{:04X}", c as u32)),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
        .parse()
        .expect("an escaped basic string is a valid TOML value")
}

/// The `[mining]` table `init` writes, and its `[mining.extra]` entries in
/// the order they are written.
#[derive(Debug, Clone, PartialEq)]
pub struct MiningSection {
    pub provider: String,
    pub wallet_address: String,
    /// `solo` or `pool:<url>`.
    pub submit_target: String,
    pub fee_bps: i64,
    pub fee_payout_address: String,
    pub extra: Vec<(String, ExtraValue)>,
}

impl MiningSection {
    /// The reference's defaults: solo, no fee, no extras.
    pub fn new(provider: impl Into<String>, wallet_address: impl Into<String>) -> Self {
        MiningSection {
            provider: provider.into(),
            wallet_address: wallet_address.into(),
            submit_target: "solo".to_owned(),
            fee_bps: 0,
            fee_payout_address: String::new(),
            extra: Vec::new(),
        }
    }

    /// Appends a `[mining.extra]` entry.
    pub fn with_extra(mut self, key: impl Into<String>, value: impl Into<ExtraValue>) -> Self {
        self.extra.push((key.into(), value.into()));
        self
    }

    fn check(&self) -> Result<(), String> {
        let mut seen = HashSet::new();
        for (key, value) in &self.extra {
            if key.is_empty() {
                return Err("[mining.extra] has an empty key".into());
            }
            if key == "extra" {
                return Err("[mining.extra] cannot have a key named `extra`".into());
            }
            if !seen.insert(key.as_str()) {
                return Err(format!("[mining.extra].{key} is given twice"));
            }
            if let ExtraValue::Float(f) = value
                && !f.is_finite()
            {
                return Err(format!("[mining.extra].{key} is not a finite number"));
            }
        }
        // What loading checks (config/validate.rs), so that nothing is
        // written that the next command would refuse.
        let mut doc = DocumentMut::new();
        doc.insert("mining", Item::Table(self.to_table()));
        match crate::config::Config::parse(&doc.to_string(), Path::new("[mining]")) {
            Ok(_) => Ok(()),
            Err(crate::config::ConfigError::Invalid { message, .. }) => Err(message),
            Err(other) => Err(other.to_string()),
        }
    }

    /// The `[mining]` table (with `[mining.extra]` as a sub-table when there
    /// are extras).
    fn to_table(&self) -> Table {
        let mut mining = Table::new();
        mining.insert("provider", Item::Value(basic_string(&self.provider)));
        mining.insert(
            "wallet_address",
            Item::Value(basic_string(&self.wallet_address)),
        );
        mining.insert(
            "submit_target",
            Item::Value(basic_string(&self.submit_target)),
        );
        mining.insert("fee_bps", Item::Value(self.fee_bps.into()));
        mining.insert(
            "fee_payout_address",
            Item::Value(basic_string(&self.fee_payout_address)),
        );
        if !self.extra.is_empty() {
            let mut extra = Table::new();
            for (key, value) in &self.extra {
                extra.insert(key, Item::Value(value.to_toml()));
            }
            mining.insert("extra", Item::Table(extra));
        }
        mining
    }

    /// The section as TOML text, as appended to a config file.
    pub fn to_toml(&self) -> Result<String, ConfigEditError> {
        self.check().map_err(ConfigEditError::InvalidSection)?;
        let mut doc = DocumentMut::new();
        doc.insert("mining", Item::Table(self.to_table()));
        Ok(doc.to_string())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The file did not exist and was created.
    Created,
    /// The section was appended to an existing file.
    Appended,
    /// An existing `[mining]` was replaced (`force`).
    Replaced,
    /// `[mining]` exists and `force` was not given: nothing written.
    AlreadyConfigured,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigEditError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}; not modified")]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: `mining` is a {found}, not a table; not modified (use --force to replace it)")]
    NotATable { path: PathBuf, found: &'static str },
    #[error("{0}")]
    InvalidSection(String),
    /// The edited file would not load; a bug, reported rather than written.
    #[error("{path}: the edited config would not load ({message}); not modified")]
    Verify { path: PathBuf, message: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Writes `section` as the `[mining]` table of the config at `config_path`
/// (see the module documentation for the rules).
pub fn write_mining_section(
    config_path: &Path,
    section: &MiningSection,
    force: bool,
) -> Result<WriteOutcome, ConfigEditError> {
    section.check().map_err(ConfigEditError::InvalidSection)?;
    let target = resolve_symlink(config_path)?;
    let read_err = |source| ConfigEditError::Read {
        path: config_path.to_owned(),
        source,
    };
    let existing = match std::fs::read(&target) {
        Ok(bytes) => Some(String::from_utf8(bytes).map_err(|e| {
            read_err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not UTF-8: {e}"),
            ))
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(read_err(e)),
    };

    let (text, outcome) = match existing {
        None => (section.to_toml()?, WriteOutcome::Created),
        Some(text) => {
            let mut doc: DocumentMut = text.parse().map_err(|err: toml_edit::TomlError| {
                let (line, column) = span_start(&text, err.span());
                ConfigEditError::Syntax {
                    path: config_path.to_owned(),
                    line,
                    column,
                    message: err.message().trim_end().to_owned(),
                }
            })?;
            match doc.get("mining") {
                None => (append(&text, &section.to_toml()?), WriteOutcome::Appended),
                Some(item) if !force => {
                    return if item.is_table_like() {
                        Ok(WriteOutcome::AlreadyConfigured)
                    } else {
                        Err(ConfigEditError::NotATable {
                            path: config_path.to_owned(),
                            found: item.type_name(),
                        })
                    };
                }
                Some(_) => {
                    replace(&mut doc, section);
                    (doc.to_string(), WriteOutcome::Replaced)
                }
            }
        }
    };

    verify(&text, section, config_path)?;
    atomic_write(&target, text.as_bytes()).map_err(|source| ConfigEditError::Write {
        path: config_path.to_owned(),
        source,
    })?;
    Ok(outcome)
}

/// A symlinked config (dotfile managers) is edited at its target, so the
/// link survives the rename.
fn resolve_symlink(path: &Path) -> Result<PathBuf, ConfigEditError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            std::fs::canonicalize(path).map_err(|source| ConfigEditError::Read {
                path: path.to_owned(),
                source,
            })
        }
        _ => Ok(path.to_owned()),
    }
}

/// The original text, verbatim, then a blank line and the section, in the
/// file's line-ending style.
fn append(original: &str, section: &str) -> String {
    let newline = if original.contains("\r\n") {
        "\r\n"
    } else {
        "\n"
    };
    let mut text = original.to_owned();
    if !text.is_empty() {
        if !text.ends_with('\n') {
            text.push_str(newline);
        }
        if !text.ends_with("\n\n") && !text.ends_with("\n\r\n") {
            text.push_str(newline);
        }
    }
    text.push_str(&section.replace('\n', newline));
    text
}

/// Replaces the whole `mining` tree in `doc`, where it was, keeping the
/// comments above its headers.
fn replace(doc: &mut DocumentMut, section: &MiningSection) {
    let old = doc.remove("mining");
    let mut mining = section.to_table();
    let mut position = None;
    if let Some(old) = &old {
        let mut positions = Vec::new();
        collect_positions(old, &mut positions);
        position = positions.into_iter().min();
        if let Some(old) = old.as_table() {
            *mining.decor_mut() = old.decor().clone();
            if let (Some(old_extra), Some(Item::Table(extra))) = (
                old.get("extra").and_then(Item::as_table),
                mining.get_mut("extra"),
            ) {
                *extra.decor_mut() = old_extra.decor().clone();
            }
        }
    }
    if position.is_none() {
        // Not a header table before (inline, dotted or a plain value): put
        // it after every existing table.
        let mut positions = Vec::new();
        collect_positions(doc.as_item(), &mut positions);
        position = Some(positions.into_iter().max().map_or(0, |p| p + 1));
    }
    mining.set_position(position);
    if let Some(Item::Table(extra)) = mining.get_mut("extra") {
        extra.set_position(position);
    }
    doc.insert("mining", Item::Table(mining));
}

fn collect_positions(item: &Item, out: &mut Vec<isize>) {
    match item {
        Item::Table(table) => {
            out.extend(table.position());
            for (_, child) in table.iter() {
                collect_positions(child, out);
            }
        }
        Item::ArrayOfTables(tables) => {
            for table in tables.iter() {
                out.extend(table.position());
                for (_, child) in table.iter() {
                    collect_positions(child, out);
                }
            }
        }
        _ => {}
    }
}

fn verify(text: &str, section: &MiningSection, path: &Path) -> Result<(), ConfigEditError> {
    let fail = |message: String| ConfigEditError::Verify {
        path: path.to_owned(),
        message,
    };
    let config = crate::config::Config::parse(text, path).map_err(|e| fail(e.to_string()))?;
    match config.mining {
        Some(mining)
            if mining.provider == section.provider
                && mining.wallet_address == section.wallet_address =>
        {
            Ok(())
        }
        _ => Err(fail("[mining] did not read back as written".into())),
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory
/// and a rename; keeps an existing file's permissions (new files: 0600).
/// The config is the user's own file, wherever they keep it
/// (`$OPENJARVIS_CONFIG`), so its directory is opened as they named it.
fn atomic_write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    // The user's file keeps exactly its mode.
    crate::atomic_file::write_path(path, crate::atomic_file::Mode::KeepExisting, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// What `init` writes for vllm-pearl (§5.1 step 6), abridged.
    fn vllm_section(wallet: &str) -> MiningSection {
        MiningSection::new("vllm-pearl", wallet)
            .with_extra("docker_image_tag", "openjarvis/pearl-miner:master")
            .with_extra("model", "pearl-ai/Llama-3.3-70B-Instruct-pearl")
            .with_extra("cuda_visible_devices", "")
            .with_extra("gateway_port", 8337)
            .with_extra("vllm_port", 8000)
            .with_extra("gpu_memory_utilization", 0.96)
            .with_extra("max_model_len", 8192)
            .with_extra("pearld_rpc_url", "http://localhost:44107")
            .with_extra("pearld_rpc_password_env", "PEARLD_RPC_PASSWORD")
    }

    struct Home(tempfile::TempDir);

    impl Home {
        fn new() -> Self {
            Home(tempfile::tempdir().unwrap())
        }
        fn config(&self) -> PathBuf {
            self.0.path().join("config.toml")
        }
        fn with_config(text: &str) -> Self {
            let home = Home::new();
            std::fs::write(home.config(), text).unwrap();
            home
        }
        fn text(&self) -> String {
            std::fs::read_to_string(self.config()).unwrap()
        }
        fn files(&self) -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(self.0.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        }
    }

    fn load(text: &str) -> crate::config::MiningConfig {
        Config::parse(text, Path::new("config.toml"))
            .unwrap()
            .mining
            .unwrap()
    }

    #[test]
    fn creates_a_new_file_and_its_directories() {
        let home = Home::new();
        let path = home.0.path().join("nested").join("dir").join("config.toml");
        let outcome = write_mining_section(&path, &vllm_section("prl1qabc"), false).unwrap();
        assert_eq!(outcome, WriteOutcome::Created);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "[mining]\nprovider = \"vllm-pearl\"\nwallet_address = \"prl1qabc\"\n\
             submit_target = \"solo\"\nfee_bps = 0\nfee_payout_address = \"\"\n\n\
             [mining.extra]\ndocker_image_tag = \"openjarvis/pearl-miner:master\"\n\
             model = \"pearl-ai/Llama-3.3-70B-Instruct-pearl\"\ncuda_visible_devices = \"\"\n\
             gateway_port = 8337\nvllm_port = 8000\ngpu_memory_utilization = 0.96\n\
             max_model_len = 8192\npearld_rpc_url = \"http://localhost:44107\"\n\
             pearld_rpc_password_env = \"PEARLD_RPC_PASSWORD\"\n"
        );
        let mining = load(&text);
        assert_eq!(mining.model(), "pearl-ai/Llama-3.3-70B-Instruct-pearl");
        assert_eq!(
            mining.extra["gpu_memory_utilization"].as_float(),
            Some(0.96)
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn appends_keeping_the_users_bytes() {
        let original = "# my OpenJarvis config\n[engine]\ndefault = \"ollama\"   # keep this spacing\n\n[agent]\nname='x'";
        let home = Home::with_config(original);
        let outcome = write_mining_section(&home.config(), &vllm_section("prl1q"), false).unwrap();
        assert_eq!(outcome, WriteOutcome::Appended);
        let text = home.text();
        assert!(text.starts_with(original), "{text}");
        assert!(
            text[original.len()..].starts_with("\n\n[mining]\n"),
            "{text}"
        );
        assert_eq!(load(&text).provider, "vllm-pearl");
        assert_eq!(home.files(), ["config.toml"], "no temp file left");
    }

    #[test]
    fn appends_in_the_files_line_ending_style() {
        let original = "[engine]\r\ndefault = \"vllm\"\r\n";
        let home = Home::with_config(original);
        write_mining_section(
            &home.config(),
            &MiningSection::new("cpu-pearl", "prl1q"),
            false,
        )
        .unwrap();
        let text = home.text();
        assert!(text.starts_with(original));
        assert!(!text.replace("\r\n", "").contains('\n'), "{text:?}");
        assert_eq!(load(&text).provider, "cpu-pearl");
    }

    #[test]
    fn a_comment_or_string_mentioning_mining_is_not_a_table() {
        let original = "# TODO: add [mining] later\n[notes]\ntext = \"see [mining] in the docs\"\n";
        let home = Home::with_config(original);
        let outcome = write_mining_section(&home.config(), &vllm_section("prl1q"), false).unwrap();
        assert_eq!(outcome, WriteOutcome::Appended);
        assert!(home.text().starts_with(original));
        assert_eq!(load(&home.text()).wallet_address, "prl1q");
    }

    #[test]
    fn an_existing_table_is_kept_without_force() {
        for original in [
            "[mining]\nprovider = \"cpu-pearl\"\nwallet_address = \"old\"\n",
            "[mining.extra]\nmodel = \"m\"\n",
            "mining = { provider = \"cpu-pearl\", wallet_address = \"old\" }\n",
            "mining.provider = \"cpu-pearl\"\n",
        ] {
            let home = Home::with_config(original);
            let outcome =
                write_mining_section(&home.config(), &vllm_section("prl1q"), false).unwrap();
            assert_eq!(outcome, WriteOutcome::AlreadyConfigured, "{original}");
            assert_eq!(home.text(), original);
        }
    }

    #[test]
    fn a_non_table_mining_key_is_an_error_without_force() {
        let original = "mining = \"yes\"\n";
        let home = Home::with_config(original);
        let err = write_mining_section(&home.config(), &vllm_section("prl1q"), false).unwrap_err();
        assert!(
            err.to_string()
                .contains("`mining` is a string, not a table"),
            "{err}"
        );
        assert_eq!(home.text(), original);
        let outcome = write_mining_section(&home.config(), &vllm_section("prl1q"), true).unwrap();
        assert_eq!(outcome, WriteOutcome::Replaced);
        assert_eq!(load(&home.text()).wallet_address, "prl1q");
    }

    #[test]
    fn force_replaces_in_place_and_keeps_the_rest() {
        let original = r#"# OpenJarvis
[engine]
default = "ollama"  # the default engine

# Mining: see the guide
[mining]
provider = "cpu-pearl"   # old
wallet_address = "prl1qold"
legacy_key = 1

# provider options
[mining.extra]
gateway_host = "127.0.0.1"
m = 256

[mining.unknown]
x = 1

# Agent settings
[agent]
name = 'jarvis'
tools = [ "a",   "b" ]
# trailing comment
"#;
        let home = Home::with_config(original);
        let outcome =
            write_mining_section(&home.config(), &vllm_section("prl1qnew"), true).unwrap();
        assert_eq!(outcome, WriteOutcome::Replaced);
        let text = home.text();
        let expected_head = "# OpenJarvis\n[engine]\ndefault = \"ollama\"  # the default engine\n\n# Mining: see the guide\n[mining]\nprovider = \"vllm-pearl\"\n";
        assert!(text.starts_with(expected_head), "{text}");
        assert!(
            text.contains("\n# provider options\n[mining.extra]\ndocker_image_tag"),
            "{text}"
        );
        assert!(
            text.ends_with("\n# Agent settings\n[agent]\nname = 'jarvis'\ntools = [ \"a\",   \"b\" ]\n# trailing comment\n"),
            "{text}"
        );
        for gone in ["legacy_key", "gateway_host", "mining.unknown", "prl1qold"] {
            assert!(!text.contains(gone), "{gone} survived:\n{text}");
        }
        let mining = load(&text);
        assert_eq!(mining.wallet_address, "prl1qnew");
        assert_eq!(mining.extra.len(), 9);
    }

    #[test]
    fn force_over_a_dotted_or_inline_mining_puts_it_last() {
        for original in [
            "mining = { provider = \"x\", wallet_address = \"y\" }\n[engine]\ndefault = \"vllm\"\n",
            "mining.provider = \"x\"\nmining.wallet_address = \"y\"\n[engine]\ndefault = \"vllm\"\n",
        ] {
            let home = Home::with_config(original);
            write_mining_section(&home.config(), &vllm_section("prl1q"), true).unwrap();
            let text = home.text();
            assert!(text.starts_with("[engine]\ndefault = \"vllm\"\n"), "{text}");
            assert!(text.find("[mining]").unwrap() > text.find("[engine]").unwrap());
            assert_eq!(load(&text).provider, "vllm-pearl");
        }
    }

    #[test]
    fn values_are_escaped_and_round_trip() {
        let wallet = r#"prl1q"quoted"\back\slash'single'"#;
        let path = "/models/it's \"here\"\\v1\ttab";
        // A community provider's [mining.extra] is its own (no path checks).
        let section = MiningSection::new("acme-provider", wallet)
            .with_extra("local_model_path", path)
            .with_extra(
                "vllm_args",
                vec!["--quantization".to_owned(), "a \"b\" \\c".to_owned()],
            )
            .with_extra("odd key.with dots", "v")
            .with_extra("unicode", "modèle ✓")
            .with_extra("negative", -3)
            .with_extra("tiny", 1e-9);
        let home = Home::with_config("[engine]\ndefault = \"ollama\"\n");
        write_mining_section(&home.config(), &section, false).unwrap();
        let mining = load(&home.text());
        assert_eq!(mining.wallet_address, wallet);
        assert_eq!(mining.extra["local_model_path"].as_str(), Some(path));
        let args: Vec<&str> = mining.extra["vllm_args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(args, ["--quantization", "a \"b\" \\c"]);
        assert_eq!(mining.extra["odd key.with dots"].as_str(), Some("v"));
        assert_eq!(mining.extra["unicode"].as_str(), Some("modèle ✓"));
        assert_eq!(mining.extra["negative"].as_integer(), Some(-3));
        assert_eq!(mining.extra["tiny"].as_float(), Some(1e-9));
        // One predictable double-quoted form, TOML 1.0 escapes only.
        let text = home.text();
        assert!(
            text.contains("\nwallet_address = \"prl1q\\\"quoted\\\"\\\\back\\\\slash'single'\"\n"),
            "{text}"
        );
        assert!(
            text.contains("\nvllm_args = [\"--quantization\", \"a \\\"b\\\" \\\\c\"]\n"),
            "{text}"
        );
    }

    #[test]
    fn control_characters_use_toml_1_0_escapes() {
        let nasty = "a\u{1b}b\u{7f}c\u{0}d\te\r\nf";
        let section = MiningSection::new("vllm-pearl", nasty).with_extra("p", nasty);
        let text = section.to_toml().unwrap();
        assert!(
            text.contains(r#"wallet_address = "a\u001Bb\u007Fc\u0000d\te\r\nf""#),
            "{text}"
        );
        assert!(!text.contains("\\e") && !text.contains("\\x"), "{text}");
        let home = Home::new();
        write_mining_section(&home.config(), &section, false).unwrap();
        let mining = load(&home.text());
        assert_eq!(mining.wallet_address, nasty);
        assert_eq!(mining.extra["p"].as_str(), Some(nasty));
    }

    #[test]
    fn a_malformed_file_is_an_error_with_position_and_untouched() {
        let original = "[engine]\ndefault = \"ollama\"\n\n[agent\nname = 1\n";
        let home = Home::with_config(original);
        let err = write_mining_section(&home.config(), &vllm_section("prl1q"), true).unwrap_err();
        match &err {
            ConfigEditError::Syntax { line, column, .. } => assert_eq!((*line, *column), (4, 7)),
            other => panic!("{other}"),
        }
        assert!(err.to_string().contains("config.toml:4:7: "), "{err}");
        assert_eq!(home.text(), original);
        assert_eq!(home.files(), ["config.toml"]);
    }

    #[test]
    fn a_section_the_loader_would_refuse_is_never_written() {
        let home = Home::with_config("[engine]\ndefault = \"ollama\"\n");
        let before = home.text();
        for section in [
            MiningSection {
                fee_bps: -1,
                ..vllm_section("prl1qexampleaddress")
            },
            MiningSection::new("vllm-pearl", "prl1qexampleaddress").with_extra("vllm_port", 0),
            MiningSection::new("vllm-pearl", "prl1qexampleaddress")
                .with_extra("gateway_port", 8000),
        ] {
            let err = write_mining_section(&home.config(), &section, false).unwrap_err();
            assert!(matches!(err, ConfigEditError::InvalidSection(_)), "{err}");
            assert_eq!(home.text(), before, "{err}");
        }
    }

    #[test]
    fn invalid_sections_are_refused_before_touching_the_file() {
        let home = Home::new();
        for (section, expect) in [
            (
                vllm_section("w").with_extra("model", "again"),
                "[mining.extra].model is given twice",
            ),
            (vllm_section("w").with_extra("", 1), "empty key"),
            (
                vllm_section("w").with_extra("x", f64::NAN),
                "not a finite number",
            ),
        ] {
            let err = write_mining_section(&home.config(), &section, false).unwrap_err();
            assert!(err.to_string().contains(expect), "{err}");
        }
        assert!(home.files().is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn keeps_permissions_and_follows_symlinks() {
        use std::os::unix::fs::PermissionsExt;
        let home = Home::new();
        let real = home.0.path().join("dotfiles").join("jarvis.toml");
        std::fs::create_dir_all(real.parent().unwrap()).unwrap();
        std::fs::write(&real, "[engine]\ndefault = \"vllm\"\n").unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o664)).unwrap();
        std::os::unix::fs::symlink(&real, home.config()).unwrap();

        write_mining_section(&home.config(), &vllm_section("prl1q"), false).unwrap();
        assert!(
            std::fs::symlink_metadata(home.config())
                .unwrap()
                .file_type()
                .is_symlink()
        );
        let text = std::fs::read_to_string(&real).unwrap();
        assert_eq!(load(&text).provider, "vllm-pearl");
        let mode = std::fs::metadata(&real).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o664, "kept exactly, whatever the umask");
        assert_eq!(home.files(), ["config.toml", "dotfiles"]);
    }
}
