//! The allocator training wants, for the binaries that run the engine.
//!
//! A training step allocates and frees the same large activation and gradient buffers
//! every step. With glibc's allocator each of them is a fresh `mmap` whose pages the kernel
//! zeroes on first touch; with mimalloc and its default purging, freed pages go back to
//! the OS after a delay and come back zeroed the same way. Profiles of a step showed 15-20%
//! of its time in the kernel's page clearing either way (`docs/dev/performance.md`).
//! A binary declares
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOCATOR: arkor_engine::alloc::Allocator = arkor_engine::alloc::Allocator;
//! ```
//!
//! and calls [`keep_freed_memory`] first thing in `main`.

/// mimalloc, the global allocator of the `arkor` binary and the benches.
pub use mimalloc::MiMalloc as Allocator;

/// `mi_option_purge_delay` in mimalloc v3's `mimalloc.h` (the version the crate builds).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// Keeps freed memory mapped for reuse instead of returning it to the OS: the peak resident
/// set is unchanged, memory is only not given back before the process exits. Has no effect
/// unless [`Allocator`] is the global allocator.
pub fn keep_freed_memory() {
    // SAFETY: sets a plain integer option, which mimalloc allows at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}
