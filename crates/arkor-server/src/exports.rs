//! Exports of a job's adapter, run as `arkor export` child processes.
//!
//! An export is heavy (the whole base model is loaded, merged and maybe quantized), so like
//! training it never runs in the backend process. Each export lives in
//! `<job dir>/exports/<id>/`: `export.json` (its [`ExportInfo`], rewritten when it ends),
//! `export.log` (the child's output) and the output itself (a file or a folder). The list
//! is read back from disk, so it survives a backend restart; an export that was still
//! running when its backend died is reported as failed.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use arkor_engine::export::{ExportFormat, Quant, ollama_name};
use arkor_protocol::export::{ExportInfo, ExportRequest, ExportStatus};
use arkor_protocol::job::ArtifactFile;

use crate::util::{iso, new_id, now_ms};

/// File in each export folder holding its [`ExportInfo`].
pub const EXPORT_FILE: &str = "export.json";

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
    let source = match req.checkpoint_step {
        Some(step) => format!("checkpoint-{step}"),
        None => "final".to_owned(),
    };
    if !job_dir.join(&source).join("adapter_model.safetensors").is_file() {
        return Err(match req.checkpoint_step {
            Some(step) => {
                format!("invalid checkpointStep: the job has no checkpoint at step {step}")
            }
            None => {
                "the job has no final adapter yet (it must complete first, or give checkpointStep)"
                    .to_owned()
            }
        });
    }
    Ok(ValidExport { format, quant, source, system_prompt: req.system_prompt.clone() })
}

/// Exports being written by this backend, as `(job id, export id)`.
#[derive(Default)]
pub struct LiveExports(Mutex<HashSet<(String, String)>>);

/// Starts an export in a child process and returns its record (status `running`).
pub fn start(
    live: &Arc<LiveExports>,
    program: &Path,
    data_dir: &Path,
    job_id: &str,
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
        id: id.clone(),
        format: format_name.to_owned(),
        quant: req.quant.name().to_owned(),
        source: req.source.clone(),
        status: ExportStatus::Running,
        created_at: iso(now_ms()),
        finished_at: None,
        error: None,
        files: vec![],
        ollama_create: None,
    };
    write_info(&dir, &info)?;
    let log = std::fs::File::create(dir.join("export.log"))?;
    let mut command = tokio::process::Command::new(program);
    command
        .arg("--data-dir")
        .arg(data_dir)
        .arg("export")
        .args([
            "--model",
            base_model,
            "--format",
            format_name,
            "--quant",
            req.quant.name(),
            "--name",
            &stem,
        ])
        .arg("--adapter")
        .arg(job_dir.join(&req.source))
        .arg("--output")
        .arg(dir.join(&output))
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .kill_on_drop(true);
    if let Some(system) = &req.system_prompt {
        command.args(["--system", system]);
    }
    let mut child = command.spawn()?;
    let key = (job_id.to_owned(), id);
    live.0.lock().expect("live exports lock").insert(key.clone());
    let (live, job_dir, mut done) = (live.clone(), job_dir.to_path_buf(), info.clone());
    tokio::spawn(async move {
        let status = child.wait().await;
        let result = tokio::task::spawn_blocking(move || {
            let dir = job_dir.join("exports").join(&done.id);
            done.finished_at = Some(iso(now_ms()));
            match status {
                Ok(s) if s.success() => {
                    done.status = ExportStatus::Completed;
                    done.files = files_under(&job_dir, &dir.join(&output));
                    if done.format == "ollama" {
                        done.ollama_create =
                            Some(format!("ollama create {stem} -f {output}/Modelfile"));
                    }
                }
                other => {
                    done.status = ExportStatus::Failed;
                    let log = std::fs::read_to_string(dir.join("export.log")).unwrap_or_default();
                    let last = log.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
                    done.error = Some(match other {
                        Ok(s) => format!("export exited with {s}: {}", last.trim()),
                        Err(e) => format!("export could not be awaited: {e}"),
                    });
                }
            }
            write_info(&dir, &done)
        })
        .await;
        if let Ok(Err(e)) | Err(e) = result.map_err(std::io::Error::other) {
            eprintln!("arkor: failed to record an export: {e}");
        }
        live.0.lock().expect("live exports lock").remove(&key);
    });
    Ok(info)
}

fn write_info(dir: &Path, info: &ExportInfo) -> std::io::Result<()> {
    let tmp = dir.join(format!("{EXPORT_FILE}.tmp"));
    std::fs::write(&tmp, serde_json::to_vec_pretty(info)?)?;
    std::fs::rename(tmp, dir.join(EXPORT_FILE))
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
        let parent = path.parent().unwrap_or(root);
        crate::worker::artifact_files(root, parent)
            .into_iter()
            .filter(|f| Path::new(&f.pathname).file_name() == path.file_name())
            .collect()
    }
}

/// The job's exports, newest first; one marked running that this backend is not writing
/// was interrupted by a restart and is reported as failed.
pub fn list(live: &LiveExports, job_id: &str, job_dir: &Path) -> Vec<ExportInfo> {
    let live = live.0.lock().expect("live exports lock").clone();
    let mut out: Vec<ExportInfo> = std::fs::read_dir(job_dir.join("exports"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| std::fs::read(e.path().join(EXPORT_FILE)).ok())
                .filter_map(|bytes| serde_json::from_slice::<ExportInfo>(&bytes).ok())
                .collect()
        })
        .unwrap_or_default();
    for info in &mut out {
        if info.status == ExportStatus::Running
            && !live.contains(&(job_id.to_owned(), info.id.clone()))
        {
            info.status = ExportStatus::Failed;
            info.error = Some("interrupted: the backend stopped while it ran".to_owned());
        }
    }
    out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    out
}
