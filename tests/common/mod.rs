//! Shared test helpers: golden files, random data, tolerances.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;

use blurpool::presets::{antialiased_cnns, composer, kornia, timm};
use blurpool::{
    Activation, Blur, Conv2dArgs, Conv2dSpec, Filter, MaxBlurPool2d, MaxPool2d, Operator, Pad2d,
    PadMode, Shape4,
};
use safetensors::SafeTensors;
use serde_json::Value;

/// One case of a golden file: the library call, its input/output and (conv) weights.
pub struct GoldenCase {
    pub name: String,
    pub lib: String,
    pub op: String,
    pub args: Value,
    pub input_shape: Shape4,
    pub x: Vec<f32>,
    pub output_shape: Shape4,
    pub y: Vec<f32>,
    pub weight: Option<Vec<f32>>,
    pub weight_shape: Option<Vec<usize>>,
    pub bias: Option<Vec<f32>>,
}

fn shape4(dims: &[usize]) -> Shape4 {
    assert_eq!(dims.len(), 4, "golden tensors are 4-D, got {dims:?}");
    Shape4::new(dims[0], dims[1], dims[2], dims[3])
}

fn f32s(st: &SafeTensors, name: &str) -> Option<(Vec<f32>, Vec<usize>)> {
    let t = st.tensor(name).ok()?;
    assert_eq!(t.dtype(), safetensors::Dtype::F32, "{name} must be f32");
    let data = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Some((data, t.shape().to_vec()))
}

/// Reads `tests/golden/<group>.safetensors` (or `$BLURPOOL_GOLDEN_DIR/<group>.safetensors`).
pub fn load_golden(group: &str) -> Vec<GoldenCase> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{group}.safetensors"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let (_, meta) = SafeTensors::read_metadata(&bytes).expect("safetensors header");
    let meta: HashMap<String, String> = meta
        .metadata()
        .clone()
        .expect("golden files carry __metadata__");
    let cases: Vec<Value> = serde_json::from_str(&meta["cases"]).expect("cases JSON");
    let st = SafeTensors::deserialize(&bytes).expect("safetensors");
    cases
        .into_iter()
        .map(|c| {
            let name = c["name"].as_str().unwrap().to_string();
            let (x, xs) = f32s(&st, &format!("{name}.x")).expect("input");
            let (y, ys) = f32s(&st, &format!("{name}.y")).expect("output");
            let w = f32s(&st, &format!("{name}.weight"));
            let b = f32s(&st, &format!("{name}.bias"));
            GoldenCase {
                lib: c["lib"].as_str().unwrap().into(),
                op: c["op"].as_str().unwrap().into(),
                args: c["args"].clone(),
                input_shape: shape4(&xs),
                x,
                output_shape: shape4(&ys),
                y,
                weight_shape: w.as_ref().map(|(_, s)| s.clone()),
                weight: w.map(|(d, _)| d),
                bias: b.map(|(d, _)| d),
                name,
            }
        })
        .collect()
}

fn u(v: &Value, key: &str) -> usize {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("arg {key} in {v}")) as usize
}
fn i(v: &Value, key: &str) -> i64 {
    v[key]
        .as_i64()
        .unwrap_or_else(|| panic!("arg {key} in {v}"))
}
fn pair(v: &Value, key: &str) -> (usize, usize) {
    let a = v[key]
        .as_array()
        .unwrap_or_else(|| panic!("arg {key} in {v}"));
    (
        a[0].as_u64().unwrap() as usize,
        a[1].as_u64().unwrap() as usize,
    )
}
fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("arg {key} in {v}"))
}
fn taps(v: &Value, key: &str) -> Option<Vec<f64>> {
    v[key]
        .as_array()
        .map(|a| a.iter().map(|t| t.as_f64().unwrap()).collect())
}

impl GoldenCase {
    /// The crate's operator for this library call, built through the preset the user would use.
    pub fn operator(&self) -> blurpool::Result<Operator> {
        let a = &self.args;
        let conv = |kernel: (usize, usize), padding: (usize, usize), act: Activation| {
            let ws = self.weight_shape.as_ref().expect("conv case has a weight");
            let groups = u(a, "groups");
            Conv2dSpec::new(Conv2dArgs {
                in_channels: self.input_shape.c,
                out_channels: ws[0],
                kernel,
                padding,
                groups,
                bias: a["bias"].as_bool().unwrap(),
                activation: act,
            })
        };
        Ok(match (self.lib.as_str(), self.op.as_str()) {
            ("antialiased_cnns", "blur_pool") => Operator::BlurPool(antialiased_cnns::blur_pool(
                s(a, "pad_type").parse()?,
                u(a, "filt_size"),
                u(a, "stride"),
                i(a, "pad_off"),
            )?),
            ("antialiased_cnns", "max_blur_pool") => {
                Operator::MaxBlurPool(antialiased_cnns::max_blur_pool(
                    u(a, "max_kernel"),
                    u(a, "max_padding"),
                    s(a, "pad_type").parse()?,
                    u(a, "filt_size"),
                    u(a, "stride"),
                    i(a, "pad_off"),
                )?)
            }
            ("antialiased_cnns", "conv_blur_pool") => {
                let k = u(a, "kernel_size");
                let p = u(a, "padding");
                Operator::ConvBlurPool(antialiased_cnns::conv_blur_pool(
                    conv((k, k), (p, p), s(a, "act").parse()?)?,
                    s(a, "pad_type").parse()?,
                    u(a, "filt_size"),
                    u(a, "stride"),
                    i(a, "pad_off"),
                )?)
            }
            ("kornia", "blur_pool2d") => {
                Operator::BlurPool(kornia::blur_pool2d(u(a, "kernel_size"), u(a, "stride"))?)
            }
            ("kornia", "max_blur_pool2d") => Operator::MaxBlurPool(kornia::max_blur_pool2d(
                u(a, "kernel_size"),
                u(a, "stride"),
                u(a, "max_pool_size"),
            )?),
            ("timm", "blur_pool2d") => Operator::BlurPool(timm::blur_pool2d(
                u(a, "filt_size"),
                u(a, "stride"),
                s(a, "pad_mode").parse()?,
            )?),
            ("composer", "blur_2d") => {
                let (ty, tx) = (taps(a, "taps_y"), taps(a, "taps_x"));
                let filter = ty.as_deref().zip(tx.as_deref());
                Operator::BlurPool(composer::blur_2d(pair(a, "stride"), filter)?)
            }
            ("composer", "blurmax_pool2d") => {
                let (ty, tx) = (taps(a, "taps_y"), taps(a, "taps_x"));
                let filter = ty.as_deref().zip(tx.as_deref());
                Operator::MaxBlurPool(composer::blurmax_pool2d(
                    pair(a, "kernel_size"),
                    pair(a, "stride"),
                    pair(a, "padding"),
                    filter,
                )?)
            }
            ("composer", "blur_conv2d") => {
                let spec = conv(
                    pair(a, "kernel_size"),
                    pair(a, "padding"),
                    Activation::Identity,
                )?;
                match composer::blur_conv2d(
                    spec,
                    pair(a, "stride"),
                    a["blur_first"].as_bool().unwrap(),
                )? {
                    composer::BlurConv::BlurFirst(op) => Operator::BlurConv(op),
                    composer::BlurConv::ConvFirst(op) => Operator::ConvBlurPool(op),
                }
            }
            ("torch", "max_pool2d") => {
                let max = MaxPool2d::new(pair(a, "kernel_size"), pair(a, "padding"))?;
                let stride = pair(a, "stride");
                if stride == (1, 1) {
                    Operator::MaxPool(max)
                } else {
                    // A strided max-pool is the dense max subsampled: a 1-tap blur with the stride.
                    let subsample = Blur::new(
                        Filter::binomial(1)?,
                        stride,
                        Pad2d::default(),
                        PadMode::Zero,
                    )?;
                    Operator::MaxBlurPool(MaxBlurPool2d::new(max, subsample))
                }
            }
            (lib, op) => panic!("unknown golden case {lib}/{op}"),
        })
    }
}

/// Largest relative error of `got` against `want`, elementwise |g − w| / max(|w|, floor) with
/// floor = 1e-2 · max|want| (so outputs that cancel to ~0 are judged against the tensor's
/// scale). Non-finite values must match exactly (NaN with NaN, ±inf with the same inf).
/// Returns (error, index of the worst element) or Err(description) on a non-finite mismatch.
pub fn max_rel_err(got: &[f32], want: &[f32]) -> Result<(f64, usize), String> {
    assert_eq!(got.len(), want.len());
    let scale = want
        .iter()
        .filter(|v| v.is_finite())
        .fold(0f64, |m, v| m.max(v.abs() as f64));
    let floor = (1e-2 * scale).max(f64::MIN_POSITIVE);
    let mut worst = (0.0, 0);
    for (k, (&g, &w)) in got.iter().zip(want).enumerate() {
        if !w.is_finite() || !g.is_finite() {
            let same = (w.is_nan() && g.is_nan()) || w == g;
            if !same {
                return Err(format!("element {k}: got {g}, want {w}"));
            }
            continue;
        }
        let e = (g as f64 - w as f64).abs() / (w.abs() as f64).max(floor);
        if e > worst.0 {
            worst = (e, k);
        }
    }
    Ok(worst)
}
