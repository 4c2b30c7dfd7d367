//! The CPU reference against the real libraries' numbers (tests/golden, made by
//! scripts/gen_golden.py from antialiased-cnns, kornia, timm, composer and torch).

mod common;

use blurpool::{reference, Layout};
use common::{load_golden, max_rel_err};

/// f32: max relative error allowed between the reference and the libraries (issue #2).
const F32_REL_TOL: f64 = 1e-5;

fn check_group(group: &str, min_cases: usize) {
    let cases = load_golden(group);
    assert!(
        cases.len() >= min_cases,
        "{group}: only {} cases",
        cases.len()
    );
    let mut failures = Vec::new();
    let mut worst = (0.0f64, String::new());
    for case in &cases {
        let op = match case.operator() {
            Ok(op) => op,
            Err(e) => {
                failures.push(format!("{}: building the operator failed: {e}", case.name));
                continue;
            }
        };
        match op.output_shape(case.input_shape) {
            Ok(s) if s == case.output_shape => {}
            Ok(s) => {
                failures.push(format!(
                    "{}: output shape {s}, library gives {}",
                    case.name, case.output_shape
                ));
                continue;
            }
            Err(e) => {
                failures.push(format!("{}: output_shape failed: {e}", case.name));
                continue;
            }
        }
        let mut y = vec![f32::NAN; case.y.len()];
        let w = case.weight.as_deref().unwrap_or(&[]);
        if let Err(e) = reference::forward(
            &op,
            case.input_shape,
            Layout::Nchw,
            &case.x,
            w,
            case.bias.as_deref(),
            &mut y,
        ) {
            failures.push(format!("{}: reference failed: {e}", case.name));
            continue;
        }
        match max_rel_err(&y, &case.y) {
            Ok((e, k)) => {
                if e > worst.0 {
                    worst = (e, case.name.clone());
                }
                if e > F32_REL_TOL {
                    failures.push(format!(
                        "{}: rel err {e:.3e} at {k}: got {}, want {}",
                        case.name, y[k], case.y[k]
                    ));
                }
            }
            Err(msg) => failures.push(format!("{}: {msg}", case.name)),
        }
    }
    println!(
        "{group}: {} cases, worst relative error {:.3e} ({})",
        cases.len(),
        worst.0,
        worst.1
    );
    assert!(
        failures.is_empty(),
        "{group}: {} of {} cases fail:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn antialiased_cnns_matches() {
    check_group("antialiased_cnns", 400);
}

#[test]
fn kornia_matches() {
    check_group("kornia", 60);
}

#[test]
fn timm_matches() {
    check_group("timm", 60);
}

#[test]
fn composer_matches() {
    check_group("composer", 40);
}

#[test]
fn torch_max_pool_matches() {
    check_group("torch_maxpool", 20);
}

#[test]
fn seed_example_matches() {
    check_group("seed", 4);
}

/// The comparison itself must be able to fail: a perturbed output is caught.
#[test]
fn golden_comparison_detects_a_wrong_value() {
    let cases = common::load_golden("seed");
    let case = cases
        .iter()
        .find(|c| c.name == "maxblurpool_signal")
        .expect("seed case");
    let mut y = case.y.clone();
    y[3] *= 1.0 + 1e-4;
    let (e, k) = max_rel_err(&y, &case.y).unwrap();
    assert!(e > F32_REL_TOL && k == 3);
    y[3] = f32::NAN;
    assert!(max_rel_err(&y, &case.y).is_err());
}
