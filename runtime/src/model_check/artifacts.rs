//! What makes a Pearl artifact servable, judged from its `config.json` and
//! its file list, whether they come from a local directory or the Hub
//! (reference §5.1 `inspect-model`, §8.1's Gemma4 lesson): Pearl's
//! quantization, `config.json`, tokenizer metadata, weights, and for Gemma4
//! the processor metadata vLLM needs to start.

use super::report::Check;
use crate::bounded_read::{self, InputFile};
use serde_json::Value;
use std::path::Path;

/// A model's `config.json` is a few KiB; a large one is not a config.
const MODEL_CONFIG: InputFile = InputFile {
    noun: "a model's config.json",
    expected: "a JSON object",
    max_bytes: 16 << 20,
    header: None,
};

/// A model directory with more files than this is not a model directory.
pub const MAX_FILES: usize = 100_000;

/// Suffixes of weight files vLLM loads.
const WEIGHT_SUFFIXES: [&str; 3] = [".safetensors", ".bin", ".gguf"];

/// Any of these is tokenizer metadata.
const TOKENIZER_FILES: [&str; 2] = ["tokenizer.json", "tokenizer_config.json"];

/// What vLLM needs to start a Gemma4 model (issues #319, PR #321/#322).
const GEMMA4_PROCESSOR_FILES: [&str; 2] = ["processor_config.json", "preprocessor_config.json"];

/// `<dir>/config.json` as a JSON object, or the check's info.
pub fn read_config(dir: &Path) -> Result<Value, String> {
    let path = dir.join("config.json");
    let text = bounded_read::read_text(&path, &MODEL_CONFIG).map_err(|err| {
        if err.is_not_found() {
            format!("missing {}", path.display())
        } else {
            err.to_string()
        }
    })?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|err| format!("{} is not JSON: {err}", path.display()))?;
    if !value.is_object() {
        return Err(format!("{} is not a JSON object", path.display()));
    }
    Ok(value)
}

/// Every file under `dir`, relative, `/`-separated and sorted, skipping
/// anything under `.git`. Symbolic links to files count as files (a Hugging
/// Face cache snapshot is made of them); linked directories are not
/// followed.
pub fn list_files(dir: &Path) -> Result<Vec<String>, String> {
    let mut files = Vec::new();
    let mut pending = vec![(dir.to_path_buf(), String::new())];
    while let Some((path, prefix)) = pending.pop() {
        let entries = std::fs::read_dir(&path)
            .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
        for entry in entries {
            let entry = entry.map_err(|err| format!("cannot read {}: {err}", path.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == ".git" {
                continue;
            }
            let relative = format!("{prefix}{name}");
            let kind = entry
                .file_type()
                .map_err(|err| format!("cannot read {}: {err}", entry.path().display()))?;
            if kind.is_dir() {
                pending.push((entry.path(), format!("{relative}/")));
            } else if kind.is_file()
                || (kind.is_symlink() && std::fs::metadata(entry.path()).is_ok_and(|m| m.is_file()))
            {
                files.push(relative);
                if files.len() > MAX_FILES {
                    return Err(format!(
                        "more than {MAX_FILES} files under {}: not a model directory",
                        dir.display()
                    ));
                }
            }
        }
    }
    files.sort();
    Ok(files)
}

/// `Pearl quantization`: `quantization_config.quant_method` is `pearl`.
pub fn quantization(config: &Value) -> Check {
    const NAME: &str = "Pearl quantization";
    match config
        .get("quantization_config")
        .and_then(|q| q.get("quant_method"))
        .and_then(Value::as_str)
    {
        Some(method) => Check::new(NAME, method == "pearl", method),
        None => Check::fail(NAME, "missing quantization_config.quant_method"),
    }
}

/// `File list` / `HF file list`: at least one file.
pub fn file_list(name: &str, files: &Result<Vec<String>, String>) -> Check {
    match files {
        Ok(files) => Check::new(name, !files.is_empty(), format!("{} files", files.len())),
        Err(err) => Check::fail(name, err.clone()),
    }
}

/// The checks over a non-empty file list: `config.json`, `Tokenizer
/// metadata`, `Weights`, and `Gemma4 processor metadata` when `config`
/// names a Gemma4 architecture. Names are matched at the top level, as vLLM
/// looks for them; weights anywhere.
pub fn file_checks(config: &Value, files: &[String]) -> Vec<Check> {
    let has = |name: &str| files.iter().any(|f| f == name);
    let mut checks = vec![if has("config.json") {
        Check::pass("config.json", "present")
    } else {
        Check::fail("config.json", "missing")
    }];
    checks.push(match TOKENIZER_FILES.iter().find(|&&name| has(name)) {
        Some(name) => Check::pass("Tokenizer metadata", *name),
        None => Check::fail(
            "Tokenizer metadata",
            "missing tokenizer.json/tokenizer_config.json",
        ),
    });
    let weights = files
        .iter()
        .filter(|f| WEIGHT_SUFFIXES.iter().any(|suffix| f.ends_with(suffix)))
        .count();
    checks.push(if weights > 0 {
        Check::pass("Weights", format!("{weights} weight files"))
    } else {
        Check::fail("Weights", "missing *.safetensors/*.bin/*.gguf")
    });
    if is_gemma4(config) {
        let missing: Vec<&str> = GEMMA4_PROCESSOR_FILES
            .iter()
            .copied()
            .filter(|&name| !has(name))
            .collect();
        checks.push(if missing.is_empty() {
            Check::pass("Gemma4 processor metadata", "present")
        } else {
            Check::fail(
                "Gemma4 processor metadata",
                format!("missing {}", missing.join(", ")),
            )
        });
    }
    checks
}

/// Whether any `architectures` entry names Gemma4.
fn is_gemma4(config: &Value) -> bool {
    config
        .get("architectures")
        .and_then(Value::as_array)
        .is_some_and(|names| {
            names
                .iter()
                .filter_map(Value::as_str)
                .any(|name| name.contains("Gemma4"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn files(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    fn named<'a>(checks: &'a [Check], name: &str) -> &'a Check {
        checks.iter().find(|c| c.name == name).unwrap()
    }

    #[test]
    fn quantization_must_be_pearl() {
        let pearl = json!({"quantization_config": {"quant_method": "pearl"}});
        assert_eq!(
            quantization(&pearl),
            Check::pass("Pearl quantization", "pearl")
        );
        let other = json!({"quantization_config": {"quant_method": "compressed-tensors"}});
        assert_eq!(
            quantization(&other),
            Check::fail("Pearl quantization", "compressed-tensors")
        );
        assert_eq!(
            quantization(&json!({})).info,
            "missing quantization_config.quant_method"
        );
    }

    #[test]
    fn a_complete_artifact_passes_every_file_check() {
        let checks = file_checks(
            &json!({"architectures": ["LlamaForCausalLM"]}),
            &files(&[
                "config.json",
                "tokenizer.json",
                "model-00001-of-00002.safetensors",
            ]),
        );
        assert!(checks.iter().all(|c| c.ok), "{checks:#?}");
        assert_eq!(checks.len(), 3);
    }

    #[test]
    fn missing_pieces_are_named() {
        let checks = file_checks(&json!({}), &files(&["README.md"]));
        assert_eq!(named(&checks, "config.json").info, "missing");
        assert_eq!(
            named(&checks, "Tokenizer metadata").info,
            "missing tokenizer.json/tokenizer_config.json"
        );
        assert!(!named(&checks, "Weights").ok);
    }

    #[test]
    fn gemma4_needs_processor_metadata() {
        let gemma = json!({"architectures": ["Gemma4ForConditionalGeneration"]});
        let base = ["config.json", "tokenizer_config.json", "model.safetensors"];
        let checks = file_checks(&gemma, &files(&base));
        assert_eq!(
            named(&checks, "Gemma4 processor metadata"),
            &Check::fail(
                "Gemma4 processor metadata",
                "missing processor_config.json, preprocessor_config.json"
            )
        );
        let mut with_one = base.to_vec();
        with_one.push("processor_config.json");
        let checks = file_checks(&gemma, &files(&with_one));
        assert_eq!(
            named(&checks, "Gemma4 processor metadata").info,
            "missing preprocessor_config.json"
        );
        with_one.push("preprocessor_config.json");
        assert!(file_checks(&gemma, &files(&with_one)).iter().all(|c| c.ok));
    }

    #[test]
    fn listing_is_recursive_relative_and_skips_git() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "config.json",
            "sub/tokenizer.json",
            ".git/HEAD",
            "a/b/c.bin",
        ] {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "x").unwrap();
        }
        std::os::unix::fs::symlink(dir.path().join("config.json"), dir.path().join("link.json"))
            .unwrap();
        assert_eq!(
            list_files(dir.path()).unwrap(),
            [
                "a/b/c.bin",
                "config.json",
                "link.json",
                "sub/tokenizer.json"
            ]
        );
    }

    #[test]
    fn config_problems_say_what_to_fix() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_config(dir.path()).unwrap_err();
        assert_eq!(
            err,
            format!("missing {}", dir.path().join("config.json").display())
        );
        std::fs::write(dir.path().join("config.json"), "[1]").unwrap();
        assert!(
            read_config(dir.path())
                .unwrap_err()
                .ends_with("is not a JSON object")
        );
        std::fs::write(dir.path().join("config.json"), "{").unwrap();
        assert!(read_config(dir.path()).unwrap_err().contains("is not JSON"));
    }
}
