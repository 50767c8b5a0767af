//! AdamW with decoupled weight decay, with state that can be saved and restored exactly.
//!
//! candle-nn has an AdamW, but its moment estimates are private, and a checkpoint must
//! carry them for a resumed run to reproduce the uninterrupted one. The update matches
//! `torch.optim.AdamW`: `p -= lr * wd * p`, then
//! `p -= lr * m_hat / (sqrt(v_hat) + eps)`.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Tensor, Var};

use crate::{Error, Result};

/// Optimiser state for a list of named variables.
pub struct AdamW {
    params: Vec<(String, Var)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    step: usize,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
}

impl AdamW {
    /// Fresh state (zero moments) for `params`.
    pub fn new(params: Vec<(String, Var)>, weight_decay: f64) -> Result<Self> {
        let m = params.iter().map(|(_, p)| p.zeros_like()).collect::<candle_core::Result<_>>()?;
        let v = params.iter().map(|(_, p)| p.zeros_like()).collect::<candle_core::Result<_>>()?;
        Ok(Self { params, m, v, step: 0, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay })
    }

    /// Applies one update with gradients `grads[i]` for `params[i]`.
    pub fn step(&mut self, grads: &[Tensor], lr: f64) -> Result<()> {
        self.step += 1;
        let t = self.step as i32;
        let (b1, b2) = (self.beta1, self.beta2);
        let bc1 = 1.0 - b1.powi(t);
        let bc2 = 1.0 - b2.powi(t);
        for (i, (_, p)) in self.params.iter().enumerate() {
            let g = &grads[i];
            let m = ((&self.m[i] * b1)? + (g * (1.0 - b1))?)?;
            let v = ((&self.v[i] * b2)? + (g.sqr()? * (1.0 - b2))?)?;
            let mut value = p.as_tensor().detach();
            if self.weight_decay > 0.0 {
                value = (value * (1.0 - lr * self.weight_decay))?;
            }
            let denom = ((&v / bc2)?.sqrt()? + self.eps)?;
            let update = ((&m / bc1)? / denom)?;
            p.set(&(value - (update * lr)?)?)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }

    /// Steps taken so far.
    pub fn steps(&self) -> usize {
        self.step
    }

    /// Writes the moments to `path` (safetensors, `m.<name>` / `v.<name>`).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors = Vec::with_capacity(self.params.len() * 2);
        for (i, (name, _)) in self.params.iter().enumerate() {
            tensors.push((format!("m.{name}"), self.m[i].clone()));
            tensors.push((format!("v.{name}"), self.v[i].clone()));
        }
        let metadata = HashMap::from([("step".to_owned(), self.step.to_string())]);
        crate::lora::safetensors_write(&tensors, Some(metadata), path)
    }

    /// Restores moments and step count written by [`AdamW::save`].
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let bytes = std::fs::read(path).map_err(|e| Error::io("failed to read", path, e))?;
        let invalid = |message: String| Error::InvalidFile { path: path.to_path_buf(), message };
        let (_, meta) =
            safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| invalid(e.to_string()))?;
        let step = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get("step"))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid("missing `step` in the metadata".to_owned()))?;
        let device = self.params.first().map(|(_, p)| p.device().clone());
        let device = device.unwrap_or(candle_core::Device::Cpu);
        let tensors = candle_core::safetensors::load_buffer(&bytes, &device)?;
        for (i, (name, p)) in self.params.iter().enumerate() {
            for (prefix, slot) in [("m", &mut self.m[i]), ("v", &mut self.v[i])] {
                let key = format!("{prefix}.{name}");
                let t =
                    tensors.get(&key).ok_or_else(|| invalid(format!("missing tensor {key}")))?;
                if t.dims() != p.dims() {
                    return Err(invalid(format!(
                        "tensor {key}: expected {:?}, got {:?}",
                        p.dims(),
                        t.dims()
                    )));
                }
                *slot = t.clone();
            }
        }
        self.step = step;
        Ok(())
    }
}
