//! `jarvis mine models`: the Pearl model registry.

use super::output::{HEADING, paint};
use super::{CliResult, output_error};
use clap::Args;
use pearl_catalog::PEARL_MODELS;
use serde::Serialize;
use std::io::Write;
use std::process::ExitCode;

#[derive(Args)]
pub struct ModelsArgs {
    /// Print a JSON array instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct ModelRow {
    id: &'static str,
    base_model: &'static str,
    status: &'static str,
    provider: &'static str,
    min_vram_gb: f64,
    context: u32,
    gpu_memory_utilization: f64,
    notes: &'static str,
}

pub fn run(args: &ModelsArgs) -> CliResult {
    let mut out = super::output::stdout();
    let written = if args.json {
        let rows: Vec<ModelRow> = PEARL_MODELS
            .iter()
            .map(|spec| ModelRow {
                id: spec.model_id,
                base_model: spec.base_model_id,
                status: spec.status.as_str(),
                provider: spec.provider,
                min_vram_gb: spec.min_vram_gb,
                context: spec.default_max_model_len,
                gpu_memory_utilization: spec.default_gpu_memory_utilization,
                notes: spec.notes,
            })
            .collect();
        let json = super::output::json(&rows, true);
        writeln!(out, "{json}")
    } else {
        write_table(&mut out)
    };
    written.map_err(output_error)?;
    Ok(ExitCode::SUCCESS)
}

fn write_table(out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "{}", paint(HEADING, "Pearl Mining Models"))?;
    let header = format!(
        "{:<10} {:<42} {:<34} {:<8} {:<8}",
        "Status", "Model", "Base model", "VRAM", "Context"
    );
    writeln!(out, "{}", paint(HEADING, header.trim_end()))?;
    for spec in &PEARL_MODELS {
        writeln!(
            out,
            "{:<10} {:<42} {:<34} {:<8} {}",
            spec.status.as_str(),
            spec.model_id,
            spec.base_model_id,
            format!("{:.0} GB", spec.min_vram_gb),
            spec.default_max_model_len
        )?;
        if !spec.notes.is_empty() {
            writeln!(out, "  {}", spec.notes)?;
        }
    }
    Ok(())
}
