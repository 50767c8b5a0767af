//! Resolution of environment, config files and flags into the values commands use.
//!
//! The only module of the CLI that reads the environment. Precedence: flag over env over
//! file over default (clap already merges flag and env for flags that have one).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use arkor_engine::config::{DatasetConfig, TrainConfig};

/// Settings shared by every command.
#[derive(Debug)]
pub struct Global {
    pub data_dir: PathBuf,
    pub device: arkor_engine::device::DeviceChoice,
    pub hub: arkor_hub::HubOptions,
    /// A built Studio web UI to serve (`ARKOR_STUDIO_ASSETS`).
    pub studio_assets: Option<PathBuf>,
}

impl Global {
    #[allow(clippy::disallowed_methods)] // This module is where the environment is read.
    pub fn resolve(data_dir: Option<PathBuf>, cpu: bool) -> anyhow::Result<Self> {
        let data_dir = match data_dir {
            Some(d) => d,
            None => home_dir()
                .context("cannot find the home directory: set HOME or pass --data-dir")?
                .join(".arkor"),
        };
        let device = if cpu {
            arkor_engine::device::DeviceChoice::Cpu
        } else {
            arkor_engine::device::DeviceChoice::Auto
        };
        let studio_assets =
            std::env::var_os("ARKOR_STUDIO_ASSETS").filter(|v| !v.is_empty()).map(PathBuf::from);
        Ok(Self { data_dir, device, hub: arkor_hub::HubOptions::from_env(), studio_assets })
    }
}

#[allow(clippy::disallowed_methods)] // This module is where the environment is read.
fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from)
}

/// Reads an `arkor train` TOML file. Relative dataset paths are resolved against the
/// file's directory; unknown keys and bad values are errors naming the key and line.
pub fn load_train_config(path: &Path) -> anyhow::Result<TrainConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read the training config {}", path.display()))?;
    let mut config: TrainConfig = toml::from_str(&text).map_err(|e| {
        anyhow::anyhow!("invalid training config {}:\n{}", path.display(), e.to_string().trim_end())
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    if let DatasetConfig::Jsonl { path: data, .. } = &mut config.dataset
        && data.is_relative()
    {
        *data = base.join(&*data);
    }
    if let Err(e) = config.validate() {
        bail!("invalid training config {}: {e}", path.display());
    }
    Ok(config)
}
