//! `inspect-model`: a Pearl artifact judged before any GPU time is spent on
//! it, from a local directory (a converter's staging output, a Hugging Face
//! cache snapshot) or from the Hub's API.

use super::artifacts;
use super::hf_api::Hub;
use super::report::{self, Check, SCHEMA_VERSION};
use super::{InputError, Registry};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Where the artifact to inspect is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// An existing, readable directory.
    Local(PathBuf),
    /// A Hugging Face model id.
    Hub(String),
}

/// `--model`: an existing path is a local directory (reference: local mode
/// iff the path exists); anything else must be a model id. A directory that
/// cannot be read, a file, or a path that does not exist is bad input.
pub fn model_source(model: &str) -> Result<ModelSource, InputError> {
    let path = Path::new(model);
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {
            std::fs::read_dir(path).map_err(|err| {
                InputError(format!("cannot read the model directory {model}: {err}"))
            })?;
            return Ok(ModelSource::Local(path.to_path_buf()));
        }
        Ok(_) => {
            return Err(InputError(format!(
                "{model} is a file, not a model directory: give the directory that holds config.json, or a Hugging Face model id"
            )));
        }
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            return Err(InputError(format!("cannot read {model}: {err}")));
        }
        Err(_) => {}
    }
    if looks_like_a_path(model) {
        return Err(InputError(format!(
            "no directory {model}: give an existing model directory, or a Hugging Face model id such as {}",
            pearl_catalog::DEFAULT_PEARL_MODEL
        )));
    }
    check_model_id(model)?;
    Ok(ModelSource::Hub(model.to_owned()))
}

fn looks_like_a_path(model: &str) -> bool {
    model.starts_with(['/', '.', '~'])
        || model.ends_with('/')
        || model.contains('\\')
        || model.matches('/').count() > 1
}

/// `name` or `org/name`, of letters, digits, `-`, `_` and `.`.
fn check_model_id(model: &str) -> Result<(), InputError> {
    let part_ok = |part: &str| {
        !part.is_empty()
            && !part.contains("..")
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    if model.split('/').all(part_ok) && model.len() <= 200 {
        return Ok(());
    }
    Err(InputError(format!(
        "'{model}' is neither an existing directory nor a Hugging Face model id (org/name, of letters, digits, '-', '_' and '.')"
    )))
}

/// One inspection's result.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// `--model` as given.
    pub model: String,
    pub registry: Registry,
    pub allow_planned: bool,
    pub hf_token_env: String,
    pub checks: Vec<Check>,
}

/// The artifact (reference §5.1): schema 1.
#[derive(Serialize)]
struct Artifact<'a> {
    schema_version: u64,
    model: &'a str,
    status: &'static str,
    allow_planned: bool,
    hf_token_env: &'a str,
    checks: &'a [Check],
}

impl Inspection {
    pub fn passed(&self) -> bool {
        report::passed(&self.checks)
    }

    /// The JSON artifact's text.
    pub fn artifact(&self) -> String {
        report::artifact_text(&Artifact {
            schema_version: SCHEMA_VERSION,
            model: &self.model,
            status: report::status_word(self.passed()),
            allow_planned: self.allow_planned,
            hf_token_env: &self.hf_token_env,
            checks: &self.checks,
        })
    }
}

/// Inspects a local directory (`model` is how the user named it).
pub fn local(dir: &Path, model: &str, allow_planned: bool, hf_token_env: &str) -> Inspection {
    let mut checks = vec![Registry::Local.check(model, allow_planned)];
    match artifacts::read_config(dir) {
        Err(info) => checks.push(Check::fail("Local artifact", info)),
        Ok(config) => {
            checks.push(Check::pass("Local artifact", dir.display().to_string()));
            checks.push(artifacts::quantization(&config));
            let files = artifacts::list_files(dir);
            checks.push(artifacts::file_list("File list", &files));
            if let Ok(files) = &files
                && !files.is_empty()
            {
                checks.extend(artifacts::file_checks(&config, files));
            }
        }
    }
    Inspection {
        model: model.to_owned(),
        registry: Registry::Local,
        allow_planned,
        hf_token_env: hf_token_env.to_owned(),
        checks,
    }
}

/// Inspects a model on the Hub.
pub fn hub(hub: &Hub, id: &str, allow_planned: bool, hf_token_env: &str) -> Inspection {
    let registry = Registry::of(id);
    let mut checks = vec![registry.check(id, allow_planned)];
    match hub.model(id) {
        Err(info) => checks.push(Check::fail("HF model", info)),
        Ok(payload) => {
            checks.push(Check::pass("HF model", "accessible"));
            let config = payload
                .get("config")
                .filter(|c| c.is_object())
                .cloned()
                .unwrap_or_else(|| serde_json::json!({}));
            checks.push(artifacts::quantization(&config));
            let files = hub.files(id);
            checks.push(artifacts::file_list("HF file list", &files));
            if let Ok(files) = &files
                && !files.is_empty()
            {
                checks.extend(artifacts::file_checks(&config, files));
            }
        }
    }
    Inspection {
        model: id.to_owned(),
        registry,
        allow_planned,
        hf_token_env: hf_token_env.to_owned(),
        checks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_directory_is_local_and_anything_else_an_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_str().unwrap();
        assert_eq!(
            model_source(path).unwrap(),
            ModelSource::Local(dir.path().to_path_buf())
        );
        assert_eq!(
            model_source("pearl-ai/Llama-3.3-70B-Instruct-pearl").unwrap(),
            ModelSource::Hub("pearl-ai/Llama-3.3-70B-Instruct-pearl".into())
        );
    }

    #[test]
    fn bad_models_are_bad_input_that_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.json");
        std::fs::write(&file, "{}").unwrap();
        let err = model_source(file.to_str().unwrap()).unwrap_err();
        assert!(err.0.contains("is a file, not a model directory"), "{err}");
        let missing = dir.path().join("staging");
        let err = model_source(missing.to_str().unwrap()).unwrap_err();
        assert!(err.0.starts_with("no directory "), "{err}");
        for bad in ["org/name with spaces", "a/b/c", "org/../x", "", "org/"] {
            assert!(model_source(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_local_directory_without_config_stops_at_the_artifact_row() {
        let dir = tempfile::tempdir().unwrap();
        let inspection = local(dir.path(), "staging", false, "HF_TOKEN");
        let names: Vec<&str> = inspection.checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["Model registry", "Local artifact"]);
        assert!(!inspection.passed());
        let artifact: serde_json::Value = serde_json::from_str(&inspection.artifact()).unwrap();
        assert_eq!(artifact["schema_version"], 1);
        assert_eq!(artifact["status"], "failed");
        assert_eq!(artifact["hf_token_env"], "HF_TOKEN");
    }
}
