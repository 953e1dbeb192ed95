//! `jarvis mine init`'s config edit: `write_mining_section` over an existing
//! `config.toml` (runtime/src/config_edit.rs), with `force` off and on.
//!
//! The input is the existing file. Properties: never panics; never the
//! `Verify` error (an edit that would not load is a bug in the editor); a
//! syntax error names a line and column inside the input and leaves the file
//! untouched, as does every other refusal; appending keeps the original
//! bytes as a prefix; whatever is written loads with `Config::parse` and has
//! the section's values, including strings that need escaping.
#![no_main]

use jarvis_mine::config::{Config, SubmitTarget};
use jarvis_mine::config_edit::{
    ConfigEditError, ExtraValue, MiningSection, WriteOutcome, write_mining_section,
};
use libfuzzer_sys::fuzz_target;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let builder = &mut tempfile::Builder::new();
        builder.prefix("jarvis-fuzz-config-edit-");
        if shm.is_dir() {
            builder.tempdir_in(shm)
        } else {
            builder.tempdir()
        }
        .expect("a scratch directory")
    })
    .path()
}

/// The sections `init` writes, from plain to every character that needs
/// escaping in a TOML basic string.
fn section(choice: u8) -> MiningSection {
    match choice % 3 {
        0 => MiningSection::new("vllm-pearl", "prl1qexampleaddress"),
        1 => MiningSection::new("cpu-pearl", "prl1q\"quoted\"\\back\\slash")
            .with_extra("model", "pearl-ai/Llama-3.3-70B-Instruct-pearl")
            .with_extra("cuda_visible_devices", "0,1")
            .with_extra("threads", 8i64),
        _ => {
            let mut s = MiningSection::new("apple-mps-pearl", "tab\there\nnew line\u{7f}\u{1b}é🦀")
                .with_extra("ratio", 0.5)
                .with_extra(
                    "list",
                    vec!["a\"b".to_owned(), String::new(), "\u{0}".to_owned()],
                );
            s.submit_target = "pool:https://pool.example/submit".into();
            s.fee_bps = -1;
            s.fee_payout_address = "prl1qfee".into();
            s
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let Ok(original) = std::str::from_utf8(rest) else {
        return;
    };
    let force = choice & 0x80 != 0;
    let section = section(choice);
    let path: PathBuf = scratch().join("config.toml");
    std::fs::write(&path, original).expect("writing the input");

    let outcome = write_mining_section(&path, &section, force);
    let now = std::fs::read_to_string(&path).expect("the config is still there");
    let outcome = match outcome {
        Ok(WriteOutcome::Created) => panic!("the file existed"),
        Ok(WriteOutcome::AlreadyConfigured) => {
            assert!(!force, "force replaces");
            assert_eq!(now, original, "AlreadyConfigured wrote");
            return;
        }
        Ok(outcome) => outcome,
        Err(err @ ConfigEditError::Verify { .. }) => {
            panic!(
                "the edit would not load: {err}\n--- input\n{original}\n--- section\n{section:?}"
            )
        }
        Err(err) => {
            assert_eq!(now, original, "a refusal wrote: {err}");
            if let ConfigEditError::Syntax { line, column, .. } = err {
                let lines: Vec<&str> = original.split('\n').collect();
                assert!((1..=lines.len()).contains(&line), "line {line}");
                let width = lines[line - 1].chars().count();
                assert!((1..=width + 1).contains(&column), "column {column}");
            }
            return;
        }
    };
    if outcome == WriteOutcome::Appended {
        assert!(now.starts_with(original), "appending changed the original");
    } else {
        assert!(force, "replaced without force");
    }
    let mining = Config::parse(&now, &path)
        .unwrap_or_else(|err| panic!("written config does not load: {err}\n{now}"))
        .mining
        .expect("written config has [mining]");
    assert_eq!(mining.provider, section.provider);
    assert_eq!(mining.wallet_address, section.wallet_address);
    assert_eq!(mining.fee_bps, section.fee_bps);
    let payout = Some(section.fee_payout_address.clone()).filter(|s| !s.is_empty());
    assert_eq!(mining.fee_payout_address, payout);
    match (&mining.submit_target, section.submit_target.as_str()) {
        (SubmitTarget::Solo { .. }, "solo") => {}
        (SubmitTarget::Pool { url, .. }, target) => {
            assert_eq!(Some(url.as_str()), target.strip_prefix("pool:"))
        }
        (other, target) => panic!("{other:?} read back for {target:?}"),
    }
    assert_eq!(mining.extra.len(), section.extra.len(), "{now}");
    for (key, value) in &section.extra {
        let read = mining
            .extra
            .get(key)
            .unwrap_or_else(|| panic!("{key} lost"));
        let same = match (value, read) {
            (ExtraValue::String(s), toml_value) => toml_value.as_str() == Some(s),
            (ExtraValue::Integer(i), toml_value) => toml_value.as_integer() == Some(*i),
            (ExtraValue::Float(f), toml_value) => toml_value.as_float() == Some(*f),
            (ExtraValue::StringArray(items), toml_value) => {
                toml_value.as_array().is_some_and(|a| {
                    a.iter()
                        .map(|v| v.as_str())
                        .eq(items.iter().map(|s| Some(s.as_str())))
                })
            }
        };
        assert!(same, "[mining.extra].{key}: wrote {value:?}, read {read:?}");
    }
});
