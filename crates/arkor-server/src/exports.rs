//! Exports of a job's adapter, run as `arkor export` child processes (see [`crate::tasks`]).
//! Each lives in `<job dir>/exports/<id>/` next to its output (a file or a folder).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arkor_engine::export::{ExportFormat, Quant, ollama_name};
use arkor_protocol::job::ArtifactFile;
use arkor_protocol::tasks::{ExportInfo, ExportRequest, TaskStatus};

use crate::tasks::{self, LiveTasks};
use crate::util::{iso, new_id, now_ms};

/// A request checked against the job: what to export and from where.
pub struct ValidExport {
    /// The parsed format.
    pub format: ExportFormat,
    /// The parsed precision.
    pub quant: Quant,
    /// The adapter folder inside the job dir (`final` or `checkpoint-<step>`).
    pub source: String,
    /// Ollama system prompt.
    pub system_prompt: Option<String>,
}

/// Checks a request; errors name the field and the allowed values.
pub fn validate(req: &ExportRequest, job_dir: &Path) -> Result<ValidExport, String> {
    let format = ExportFormat::parse(&req.format).ok_or_else(|| {
        format!("invalid format: expected one of {}, got \"{}\"", ExportFormat::NAMES, req.format)
    })?;
    let quant_name = req.quant.as_deref().unwrap_or("f16");
    let quant = Quant::parse(quant_name).ok_or_else(|| {
        format!("invalid quant: expected one of {}, got \"{quant_name}\"", Quant::NAMES)
    })?;
    let source = tasks::adapter_source(job_dir, req.checkpoint_step)?;
    Ok(ValidExport { format, quant, source, system_prompt: req.system_prompt.clone() })
}

/// Starts an export in a child process and returns its record (status `running`).
pub fn start(
    live: &Arc<LiveTasks>,
    artifacts: &Arc<crate::artifacts::Artifacts>,
    program: &Path,
    data_dir: &Path,
    job_name: &str,
    base_model: &str,
    job_dir: &Path,
    req: ValidExport,
) -> std::io::Result<ExportInfo> {
    let id = new_id("exp");
    let dir = job_dir.join("exports").join(&id);
    std::fs::create_dir_all(&dir)?;
    let stem = ollama_name(job_name);
    let (format_name, output) = match req.format {
        ExportFormat::Hf => ("hf", format!("{stem}-hf")),
        ExportFormat::Gguf => ("gguf", format!("{stem}-{}.gguf", req.quant.name())),
        ExportFormat::GgufLora => ("gguf-lora", format!("{stem}-lora.gguf")),
        ExportFormat::Ollama => ("ollama", format!("{stem}-ollama")),
    };
    let info = ExportInfo {
        id,
        format: format_name.to_owned(),
        quant: req.quant.name().to_owned(),
        source: req.source.clone(),
        status: TaskStatus::Running,
        created_at: iso(now_ms()),
        finished_at: None,
        error: None,
        files: vec![],
        ollama_create: None,
    };
    tasks::write_record(&dir, &info)?;
    let mut args: Vec<OsString> = ["export", "--model", base_model, "--format", format_name]
        .iter()
        .chain(&["--quant", req.quant.name(), "--name", &stem, "--adapter"])
        .map(OsString::from)
        .collect();
    args.push(job_dir.join(&req.source).into());
    args.extend(["--output".into(), dir.join(&output).into_os_string()]);
    if let Some(system) = &req.system_prompt {
        args.extend(["--system".into(), system.into()]);
    }
    let (mut done, job_dir, out_dir) = (info.clone(), job_dir.to_path_buf(), dir.clone());
    tasks::spawn(live, artifacts, program, data_dir, &dir, args, move |ended| {
        done.finished_at = Some(iso(now_ms()));
        match ended.error() {
            None => {
                done.status = TaskStatus::Completed;
                done.files = files_under(&job_dir, &out_dir.join(&output));
                if done.format == "ollama" {
                    done.ollama_create =
                        Some(format!("ollama create {stem} -f {output}/Modelfile"));
                }
            }
            Some(error) => {
                done.status = TaskStatus::Failed;
                done.error = Some(format!("export {error}"));
            }
        }
        done
    })?;
    Ok(info)
}

/// Every file under `path` (a file or a folder), with paths relative to `root`.
fn files_under(root: &Path, path: &Path) -> Vec<ArtifactFile> {
    if path.is_dir() {
        let mut out = crate::worker::artifact_files(root, path);
        let mut subdirs: Vec<PathBuf> = std::fs::read_dir(path)
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()).collect())
            .unwrap_or_default();
        subdirs.sort();
        for d in subdirs {
            out.extend(files_under(root, &d));
        }
        out
    } else {
        // One file: digest just it, not its neighbours (the task's record and log).
        let Ok((size, sha256)) = crate::util::file_digest(path) else { return vec![] };
        let Ok(rel) = path.strip_prefix(root) else { return vec![] };
        let pathname =
            rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
        vec![ArtifactFile { pathname, size, sha256 }]
    }
}
