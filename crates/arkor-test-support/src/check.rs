//! Float comparisons with explicit tolerances (never `assert_eq` on floats).

/// Largest relative error `|a - b| / max(|b|, floor)` over two equally long slices.
///
/// `floor` keeps entries near zero from dominating: they are compared absolutely.
pub fn max_relative_error(a: &[f32], b: &[f32], floor: f32) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter().zip(b).map(|(x, y)| (x - y).abs() / y.abs().max(floor)).fold(0.0, f32::max)
}

/// Panics with the worst index when the relative error exceeds `tol`.
#[track_caller]
pub fn assert_close(actual: &[f32], expected: &[f32], tol: f32) {
    let err = max_relative_error(actual, expected, 1.0);
    if err > tol {
        let (i, _) = actual
            .iter()
            .zip(expected)
            .enumerate()
            .map(|(i, (x, y))| (i, (x - y).abs() / y.abs().max(1.0)))
            .fold((0, 0.0f32), |best, cur| if cur.1 > best.1 { cur } else { best });
        panic!(
            "relative error {err:e} > {tol:e} at index {i}: actual {} expected {}",
            actual[i], expected[i]
        );
    }
}
