//! The model's error, once a GPU has measured the same workloads: `blurpool bench` writes
//! bench.json (one row per workload and path: device, op, shape, dtype, layout, path,
//! time_us); `--suite` writes model.json. [`compare`] pairs them by (op, shape, dtype, layout,
//! path), picks the model's machine by the device name (H200 or H100), and gives modeled /
//! measured − 1 per row, with the bound the model named. notes/model.md records the result.

use serde::Serialize;
use serde_json::Value;

/// One measured path beside its prediction.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Comparison {
    pub workload: String,
    pub path: String,
    pub kernels: String,
    pub gpu: String,
    pub measured_us: f64,
    pub modeled_us: f64,
    /// modeled / measured − 1: negative where the model is optimistic.
    pub error: f64,
    pub bound: String,
}

fn rows(v: &Value) -> Result<&Vec<Value>, String> {
    v.as_array()
        .or_else(|| v.get("rows").and_then(Value::as_array))
        .ok_or_else(|| "bench.json: expected an array of rows".to_string())
}

fn text<'a>(v: &'a Value, k: &str) -> Result<&'a str, String> {
    v.get(k)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("missing text field {k:?}"))
}

/// The model's machine for a device name such as "NVIDIA H200" (None: not one it models).
fn machine(device: &str) -> Option<&'static str> {
    let d = device.to_ascii_uppercase();
    if d.contains("H200") {
        Some(crate::hw::H200.name)
    } else if d.contains("H100") {
        Some(crate::hw::H100.name)
    } else {
        None
    }
}

/// Pairs every bench row with the model's prediction; rows the model has no figure for are
/// listed in the second vector with the reason.
pub fn compare(bench: &Value, model: &Value) -> Result<(Vec<Comparison>, Vec<String>), String> {
    let workloads = model
        .get("workloads")
        .and_then(Value::as_array)
        .ok_or("model.json: no \"workloads\"")?;
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for r in rows(bench)? {
        let key = [
            text(r, "op")?,
            text(r, "shape")?,
            text(r, "dtype")?,
            text(r, "layout")?,
        ];
        let path = text(r, "path")?;
        let label = key.join(" ");
        let measured = r
            .get("time_us")
            .and_then(Value::as_f64)
            .ok_or_else(|| format!("{label} {path}: no time_us"))?;
        let device = text(r, "device").unwrap_or("");
        let Some(gpu) = machine(device) else {
            missing.push(format!(
                "{label} {path}: the model has no machine for device {device:?}"
            ));
            continue;
        };
        let w = workloads.iter().find(|w| {
            ["op", "shape", "dtype", "layout"]
                .iter()
                .zip(key)
                .all(|(k, v)| w.get(*k).and_then(Value::as_str) == Some(v))
        });
        let p = w.and_then(|w| {
            w.get("paths")?
                .as_array()?
                .iter()
                .find(|p| p.get("name").and_then(Value::as_str) == Some(path))
        });
        let t = p.and_then(|p| {
            p.get("totals")?
                .as_array()?
                .iter()
                .find(|t| t.get("gpu").and_then(Value::as_str) == Some(gpu))
        });
        let Some(t) = t else {
            missing.push(format!("{label} {path}: not in model.json"));
            continue;
        };
        let modeled = t
            .get("time")
            .and_then(Value::as_f64)
            .ok_or("model.json: total without time")?
            * 1e6;
        out.push(Comparison {
            workload: label,
            path: path.to_string(),
            kernels: text(r, "kernels").unwrap_or("").to_string(),
            gpu: gpu.to_string(),
            measured_us: measured,
            modeled_us: modeled,
            error: modeled / measured - 1.0,
            bound: t
                .get("bound")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        });
    }
    Ok((out, missing))
}

/// The comparison as a Markdown table, with the median absolute error.
pub fn markdown(rows: &[Comparison]) -> String {
    let mut s = String::from(
        "| workload | path | GPU | measured µs | modeled µs | model error | bound |\n|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        s += &format!(
            "| {} | {} | {} | {:.1} | {:.1} | {:+.0}% | {} |\n",
            r.workload,
            r.path,
            r.gpu,
            r.measured_us,
            r.modeled_us,
            100.0 * r.error,
            r.bound
        );
    }
    let mut abs: Vec<f64> = rows.iter().map(|r| r.error.abs()).collect();
    abs.sort_by(f64::total_cmp);
    if let Some(m) = abs.get(abs.len() / 2) {
        s += &format!(
            "\nMedian |model error| over {} rows: {:.0}%.\n",
            rows.len(),
            100.0 * m
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_pair_by_workload_and_path_and_machine() {
        let model = json!({"workloads": [{
            "op": "max_blur_pool", "shape": "64×64×112×112", "dtype": "f16", "layout": "nhwc",
            "paths": [{"name": "fused", "totals": [
                {"gpu": "H100 SXM", "time": 100e-6, "bound": "latency"},
                {"gpu": "H200 SXM", "time": 80e-6, "bound": "latency"}]}]}]});
        let bench = json!([
            {"device": "NVIDIA H200", "op": "max_blur_pool", "shape": "64×64×112×112", "dtype": "f16",
             "layout": "nhwc", "path": "fused", "kernels": "k", "time_us": 100.0},
            {"device": "NVIDIA H200", "op": "max_blur_pool", "shape": "64×64×112×112", "dtype": "f16",
             "layout": "nhwc", "path": "cudnn", "kernels": "k", "time_us": 50.0},
            {"device": "NVIDIA A100", "op": "max_blur_pool", "shape": "64×64×112×112", "dtype": "f16",
             "layout": "nhwc", "path": "fused", "kernels": "k", "time_us": 50.0}]);
        let (rows, missing) = compare(&bench, &model).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].gpu, "H200 SXM");
        assert!((rows[0].modeled_us - 80.0).abs() < 1e-9);
        assert!((rows[0].error + 0.2).abs() < 1e-12);
        assert_eq!(missing.len(), 2, "{missing:?}");
        assert!(markdown(&rows).contains("-20%"));
    }
}
