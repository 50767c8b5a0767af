//! Device selection: CPU by default, CUDA when the `cuda` feature is built in and asked for.

use candle_core::Device;

use crate::Result;

/// Which accelerator to run on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceChoice {
    /// CUDA when built with the `cuda` feature and a GPU is present, else CPU.
    #[default]
    Auto,
    /// Always the CPU.
    Cpu,
    /// The given CUDA device; an error when CUDA is not available.
    Cuda(usize),
}

impl DeviceChoice {
    /// Opens the chosen device.
    pub fn open(self) -> Result<Device> {
        match self {
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Cuda(ordinal) => Ok(Device::new_cuda(ordinal)?),
            DeviceChoice::Auto => {
                if candle_core::utils::cuda_is_available() {
                    Ok(Device::new_cuda(0)?)
                } else {
                    Ok(Device::Cpu)
                }
            }
        }
    }
}
