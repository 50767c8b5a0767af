//! Hands control to arkor: `arkor start`, `arkor dev` and `cargo run` all go through here.

mod arkor;

fn main() -> std::process::ExitCode {
    crate::arkor::project().main()
}
