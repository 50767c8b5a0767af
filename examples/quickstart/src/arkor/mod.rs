//! The project's trainers. Register more with `.trainer(...)`; Studio lets you pick one.

mod trainer;

/// Every trainer of this project.
pub fn project() -> ::arkor::Arkor {
    ::arkor::Arkor::new().trainer(trainer::trainer())
}
