//! `blurpool bench`: the rooflines, then every workload of the suite (or one shape), each path
//! timed cold (L2 flushed before each sample, medians with their spread, the SM clock measured
//! beside them); prints a table per workload and writes bench.json, bench.csv and bench.svg
//! into `--out`.

use std::path::PathBuf;
use std::time::Duration;

use blurpool::{DType, Layout, Shape4};
use blurpool_testkit::bench::measure::{measure_clocks, HarnessKernels};
use blurpool_testkit::bench::roofline::{copy_path, read_mostly_path, read_ratio};
use blurpool_testkit::bench::{host_overhead, peak_flops, prepare, ColdTimer, MeasureConfig};
use blurpool_testkit::workloads::{parse_op, parse_shape, suite, BenchOp};
use blurpool_testkit::Gpu;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

#[derive(clap::Args, Clone, Debug)]
pub struct BenchArgs {
    /// One shape N,C,H,W instead of the suite (ResNet stem 64×64×112×112, stages 256×56×56 and
    /// 512×28×28, MobileNet-style depthwise 96×112×112 at N=64).
    #[arg(long, value_parser = parse_shape)]
    pub shape: Option<Shape4>,
    /// Operators (comma-separated): max_blur_pool (timm's 3×3 max, blur 3), max_blur_pool_aa
    /// (antialiased-cnns' 2×2 max, blur 4), blur_pool, conv_blur_pool_dw, conv_blur_pool_dense,
    /// max_blur_pool_bwd, blur_pool_bwd, conv_blur_pool_dw_bwd.
    #[arg(long, value_delimiter = ',', default_value = "max_blur_pool,max_blur_pool_aa,blur_pool,conv_blur_pool_dw,conv_blur_pool_dense,max_blur_pool_bwd,blur_pool_bwd,conv_blur_pool_dw_bwd", value_parser = parse_op)]
    pub ops: Vec<BenchOp>,
    /// Element types (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "f16,bf16,f32")]
    pub dtypes: Vec<DType>,
    /// Layouts (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "nchw,nhwc")]
    pub layouts: Vec<Layout>,
    /// Cold samples per measurement: at least this many ...
    #[arg(long, default_value_t = 10)]
    pub min_samples: usize,
    /// ... and at most this many.
    #[arg(long, default_value_t = 200)]
    pub max_samples: usize,
    /// Stop sampling once the relative standard deviation is below this (and 0.1 s of GPU time
    /// has been sampled).
    #[arg(long, default_value_t = 0.01)]
    pub max_noise: f64,
    /// Wall-clock cap per measurement, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub timeout_ms: u64,
    /// Where bench.json, bench.csv and bench.svg go.
    #[arg(long, default_value = "bench-results")]
    pub out: PathBuf,
    /// No progress bar (logs, CI).
    #[arg(long)]
    pub quiet: bool,
}

impl BenchArgs {
    /// The suite's defaults for `shape` (None: every shape), `ops`, `dtypes` and `layouts`.
    pub fn for_suite(
        shape: Option<Shape4>,
        ops: Vec<BenchOp>,
        dtypes: Vec<DType>,
        layouts: Vec<Layout>,
    ) -> BenchArgs {
        BenchArgs {
            shape,
            ops,
            dtypes,
            layouts,
            min_samples: 10,
            max_samples: 200,
            max_noise: 0.01,
            timeout_ms: 2000,
            out: "bench-results".into(),
            quiet: true,
        }
    }

    fn measure_config(&self) -> MeasureConfig {
        MeasureConfig {
            min_samples: self.min_samples.max(1),
            max_samples: self.max_samples.max(self.min_samples.max(1)),
            max_noise: self.max_noise,
            timeout: Duration::from_millis(self.timeout_ms),
            ..MeasureConfig::default()
        }
    }
}

/// One timed path of one workload.
#[derive(Serialize, Clone, Debug)]
pub struct Row {
    pub device: String,
    pub op: String,
    pub shape: String,
    pub dtype: String,
    pub layout: String,
    pub path: String,
    /// The kernels the path launches, `+`-separated.
    pub kernels: String,
    pub samples: usize,
    /// Median of the cold samples, and their 10th / 90th percentiles.
    pub time_us: f64,
    pub p10_us: f64,
    pub p90_us: f64,
    pub rel_stdev: f64,
    /// Minimum bytes of the fused operator (the same for every path of a workload).
    pub bytes: u64,
    pub gb_per_s: f64,
    /// The 1:1 device copy of the input, and the read-mostly stream with the workload's
    /// read:write ratio (`read_ratio`:1), measured the same way.
    pub copy_gb_per_s: f64,
    pub read_mostly_gb_per_s: f64,
    pub read_ratio: u32,
    pub pct_of_copy: f64,
    pub pct_of_read_mostly: f64,
    /// Dense conv only: useful TFLOP/s (the stride-1 conv map) and % of the dtype's peak.
    pub tflops: Option<f64>,
    pub pct_of_peak: Option<f64>,
    /// SM clock measured after the workload (MHz).
    pub sm_mhz: f64,
    /// This path's time over the fused kernel's (>1: fused is faster).
    pub fused_speedup: f64,
}

pub fn bench(g: &Gpu, a: &BenchArgs) -> Result<Vec<Row>, String> {
    let device = g.ctx.name().unwrap_or_default();
    let workloads = suite(&a.ops, a.shape, &a.dtypes, &a.layouts);
    let cfg = a.measure_config();
    let harness = HarnessKernels::load(g)?;
    let mut timer = ColdTimer::new(g)?;
    let bar = if a.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(workloads.len() as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {elapsed} {msg}")
            .map_err(|e| e.to_string())?,
    );
    let clocks = measure_clocks(g, &harness)?;
    println!(
        "Benchmarking on {device} ({} workloads, kernels: {:?}); SM clock {:.0} MHz measured (max \
         {:.0}). Cold samples (L2 flushed before each), median [p10, p90]; GB/s over the minimum \
         bytes; % of the 1:1 copy and of the read-mostly stream measured the same way.",
        workloads.len(),
        g.kernels.source(),
        clocks.sm_mhz,
        clocks.sm_max_mhz
    );
    let mut rows = Vec::new();
    let mut copies: Vec<(u64, f64)> = Vec::new();
    let mut streams: Vec<((u64, u32), f64)> = Vec::new();
    for w in &workloads {
        bar.set_message(w.label());
        let mut prepared = match prepare(g, w) {
            Ok(p) => p,
            Err(e) => {
                bar.println(format!("skipped {}: {e}", w.label()));
                bar.inc(1);
                continue;
            }
        };
        let copy_bw = match copies.iter().find(|(b, _)| *b == prepared.input_bytes) {
            Some(&(_, bw)) => bw,
            None => {
                let (mut copy, moved) = copy_path(g, prepared.input_bytes as usize)?;
                let t = timer.measure(&mut copy.run, &cfg)?;
                let bw = moved as f64 / t.median;
                copies.push((prepared.input_bytes, bw));
                bw
            }
        };
        let k = read_ratio(prepared.read_bytes, prepared.write_bytes);
        let stream_bw = match streams
            .iter()
            .find(|(key, _)| *key == (prepared.write_bytes, k))
        {
            Some(&(_, bw)) => bw,
            None => {
                let (mut p, moved) = read_mostly_path(g, &harness, prepared.write_bytes, k)?;
                let t = timer.measure(&mut p.run, &cfg)?;
                let bw = moved as f64 / t.median;
                streams.push(((prepared.write_bytes, k), bw));
                bw
            }
        };
        let mut times = Vec::new();
        for path in prepared.paths.iter_mut() {
            let t = timer.measure(&mut path.run, &cfg)?;
            times.push((path.name.clone(), path.kernels.join(" + "), t));
        }
        g.ctx.check_err().map_err(|e| e.to_string())?;
        let sm_mhz = measure_clocks(g, &harness)?.sm_mhz;
        let fused = times
            .iter()
            .find(|(n, _, _)| n == "fused")
            .map(|t| t.2.median)
            .unwrap_or(f64::NAN);
        let mut lines = vec![format!(
            "\n{} — copy {:.0} GB/s, read-mostly {k}:1 {:.0} GB/s, SM {:.0} MHz",
            w.label(),
            copy_bw / 1e9,
            stream_bw / 1e9,
            sm_mhz
        )];
        lines.push(format!(
            "  {:<18} {:>22} {:>8} {:>7} {:>7} {:>8} {:>8}  kernels",
            "path", "time µs [p10, p90]", "GB/s", "% copy", "% rm", "TFLOP/s", "fused is"
        ));
        for (name, kernels, t) in &times {
            let bw = prepared.min_bytes as f64 / t.median;
            let tflops = prepared.conv_flops.map(|f| f / t.median / 1e12);
            let peak = peak_flops(&device, w.dtype);
            let row = Row {
                device: device.clone(),
                op: w.op.name().into(),
                shape: w.shape.to_string(),
                dtype: w.dtype.name().into(),
                layout: w.layout.name().into(),
                path: name.clone(),
                kernels: kernels.clone(),
                samples: t.samples,
                time_us: t.median * 1e6,
                p10_us: t.p10 * 1e6,
                p90_us: t.p90 * 1e6,
                rel_stdev: t.rel_stdev,
                bytes: prepared.min_bytes,
                gb_per_s: bw / 1e9,
                copy_gb_per_s: copy_bw / 1e9,
                read_mostly_gb_per_s: stream_bw / 1e9,
                read_ratio: k,
                pct_of_copy: 100.0 * bw / copy_bw,
                pct_of_read_mostly: 100.0 * bw / stream_bw,
                tflops,
                pct_of_peak: tflops.zip(peak).map(|(t, p)| 100.0 * t * 1e12 / p),
                sm_mhz,
                fused_speedup: t.median / fused,
            };
            lines.push(format!(
                "  {:<18} {:>8.1} [{:>6.1}, {:>6.1}] {:>8.0} {:>6.1}% {:>6.1}% {:>8} {:>7.2}×  {}",
                row.path,
                row.time_us,
                row.p10_us,
                row.p90_us,
                row.gb_per_s,
                row.pct_of_copy,
                row.pct_of_read_mostly,
                row.tflops.map_or("-".into(), |t| format!("{t:.1}")),
                row.fused_speedup,
                row.kernels
            ));
            rows.push(row);
        }
        for n in &prepared.notes {
            lines.push(format!("  ({n})"));
        }
        bar.println(lines.join("\n"));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let host = host_overhead(g)?;
    println!(
        "\nHost time per launch (MaxBlurPool, median of 21 × 100): forward {:.2} µs, forward_raw {:.2} µs",
        host.forward_us, host.forward_raw_us
    );
    write_outputs(&a.out, &rows)?;
    let host_json = serde_json::json!({
        "forward_us": host.forward_us,
        "forward_raw_us": host.forward_raw_us,
        "sm_mhz_at_start": clocks.sm_mhz,
        "sm_max_mhz": clocks.sm_max_mhz,
    });
    std::fs::write(
        a.out.join("host_overhead.json"),
        serde_json::to_string_pretty(&host_json).map_err(|e| e.to_string())?,
    )
    .map_err(|e| format!("{}: {e}", a.out.display()))?;
    println!(
        "\nWrote {0}/bench.json, {0}/bench.csv, {0}/bench.svg ({1} rows) and {0}/host_overhead.json.",
        a.out.display(),
        rows.len()
    );
    Ok(rows)
}

fn write_outputs(dir: &PathBuf, rows: &[Row]) -> Result<(), String> {
    let io = |e: std::io::Error| format!("{}: {e}", dir.display());
    std::fs::create_dir_all(dir).map_err(io)?;
    let json = serde_json::to_string_pretty(rows).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("bench.json"), json).map_err(io)?;
    let mut w = csv::Writer::from_path(dir.join("bench.csv")).map_err(|e| e.to_string())?;
    for r in rows {
        w.serialize(r).map_err(|e| e.to_string())?;
    }
    w.flush().map_err(io)?;
    chart(&dir.join("bench.svg"), rows)
}

/// A bar chart of % of the copy roofline, one bar per workload × path.
pub fn chart(path: &std::path::Path, rows: &[Row]) -> Result<(), String> {
    use plotters::prelude::*;
    let err = |e: &dyn std::fmt::Display| format!("chart: {e}");
    let height = 120 + 22 * rows.len().max(1) as u32;
    let root = SVGBackend::new(path, (1100, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let top = rows
        .iter()
        .map(|r| r.pct_of_copy)
        .fold(100.0f64, f64::max)
        .ceil();
    let title = format!(
        "blurpool: % of the measured copy bandwidth ({})",
        rows.first().map_or("", |r| r.device.as_str())
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(430)
        .build_cartesian_2d(0f64..top, 0..rows.len().max(1))
        .map_err(|e| err(&e))?;
    let labels: Vec<String> = rows
        .iter()
        .map(|r| format!("{} {} {} {} · {}", r.op, r.shape, r.dtype, r.layout, r.path))
        .collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(rows.len().max(1))
        .y_label_formatter(&|i| labels.get(*i).cloned().unwrap_or_default())
        .x_desc("% of device-to-device copy bandwidth (minimum bytes)")
        .draw()
        .map_err(|e| err(&e))?;
    let color = |p: &str| match p {
        "fused" => RGBColor(31, 119, 180),
        "fused v1" => RGBColor(158, 202, 225),
        "separate" => RGBColor(255, 127, 14),
        _ => RGBColor(127, 127, 127),
    };
    chart
        .draw_series(rows.iter().enumerate().map(|(i, r)| {
            Rectangle::new([(0.0, i), (r.pct_of_copy, i + 1)], color(&r.path).filled())
        }))
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(path: &str, pct: f64) -> Row {
        Row {
            device: "test device".into(),
            op: "max_blur_pool".into(),
            shape: "2×3×8×8".into(),
            dtype: "f16".into(),
            layout: "nhwc".into(),
            path: path.into(),
            kernels: "k1 + k2".into(),
            samples: 10,
            time_us: 10.0,
            p10_us: 9.0,
            p90_us: 11.0,
            rel_stdev: 0.01,
            bytes: 1000,
            gb_per_s: 0.1,
            copy_gb_per_s: 0.2,
            read_mostly_gb_per_s: 0.25,
            read_ratio: 4,
            pct_of_copy: pct,
            pct_of_read_mostly: pct * 0.8,
            tflops: None,
            pct_of_peak: None,
            sm_mhz: 1980.0,
            fused_speedup: 1.0,
        }
    }

    /// The writers round-trip what they are given (the numbers here are placeholders for the
    /// file formats, not measurements).
    #[test]
    fn outputs_are_written_and_read_back() {
        let dir = std::env::temp_dir().join(format!("blurpool-bench-test-{}", std::process::id()));
        let rows = vec![
            row("fused", 91.5),
            row("separate", 40.0),
            row("cudnn", 20.0),
        ];
        write_outputs(&dir, &rows).unwrap();
        let json: Vec<serde_json::Value> =
            serde_json::from_str(&std::fs::read_to_string(dir.join("bench.json")).unwrap())
                .unwrap();
        assert_eq!(json.len(), 3);
        assert_eq!(json[0]["path"], "fused");
        assert_eq!(json[0]["pct_of_copy"], 91.5);
        let csv = std::fs::read_to_string(dir.join("bench.csv")).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 4, "{csv}");
        assert!(lines[0].starts_with("device,op,shape,dtype,layout,path,kernels,samples,time_us"));
        let svg = std::fs::read_to_string(dir.join("bench.svg")).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("separate"), "{svg}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn shapes_parse() {
        assert_eq!(
            parse_shape("64,64,112,112").unwrap(),
            Shape4::new(64, 64, 112, 112)
        );
        assert_eq!(parse_shape("2x3x4x5").unwrap(), Shape4::new(2, 3, 4, 5));
        assert!(parse_shape("2,3").is_err());
        assert!(parse_shape("a,b,c,d").is_err());
    }
}
