//! `blurpool bench`: the copy roofline, then every workload of the suite (or one shape), with a
//! progress bar; prints a table per shape/dtype/layout and writes bench.json, bench.csv and
//! bench.svg into `--out`.

use std::path::PathBuf;

use blurpool::{DType, Layout, Shape4};
use blurpool_testkit::bench::{copy_path, host_overhead, prepare, time_path, BenchOp, Workload};
use blurpool_testkit::Gpu;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

#[derive(clap::Args, Clone, Debug)]
pub struct BenchArgs {
    /// One shape N,C,H,W instead of the suite (ResNet stem 64×64×112×112, stages 256×56×56 and
    /// 512×28×28, MobileNet-style depthwise 96×112×112 at N=64).
    #[arg(long, value_parser = parse_shape)]
    pub shape: Option<Shape4>,
    /// Operators (comma-separated): max_blur_pool, blur_pool, conv_blur_pool_dw,
    /// conv_blur_pool_dense, max_blur_pool_bwd.
    #[arg(long, value_delimiter = ',', default_value = "max_blur_pool,blur_pool,conv_blur_pool_dw,conv_blur_pool_dense,max_blur_pool_bwd", value_parser = parse_op)]
    pub ops: Vec<BenchOp>,
    /// Element types (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "f16,bf16,f32")]
    pub dtypes: Vec<DType>,
    /// Layouts (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "nchw,nhwc")]
    pub layouts: Vec<Layout>,
    /// Timed launches per measurement (after untimed warm-up); fewer for paths slower than
    /// 10 ms a launch, so that one measurement takes about half a second (at least 3).
    #[arg(long, default_value_t = 50)]
    pub iters: usize,
    /// Where bench.json, bench.csv and bench.svg go.
    #[arg(long, default_value = "bench-results")]
    pub out: PathBuf,
    /// No progress bar (logs, CI).
    #[arg(long)]
    pub quiet: bool,
}

fn parse_shape(s: &str) -> Result<Shape4, String> {
    let v: Vec<usize> = s
        .split([',', 'x', '×'])
        .map(|p| p.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("shape {s:?}: {e} (expected N,C,H,W)"))?;
    match v[..] {
        [n, c, h, w] => Ok(Shape4::new(n, c, h, w)),
        _ => Err(format!("shape {s:?}: expected four numbers N,C,H,W")),
    }
}

fn parse_op(s: &str) -> Result<BenchOp, String> {
    BenchOp::from_name(s).ok_or_else(|| {
        format!(
            "unknown operator {s:?}: expected one of {}",
            BenchOp::ALL.map(|o| o.name()).join(", ")
        )
    })
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
    pub time_us: f64,
    /// Minimum bytes of the fused operator (the same for every path of a workload).
    pub bytes: u64,
    pub gb_per_s: f64,
    pub copy_gb_per_s: f64,
    pub pct_of_copy: f64,
    /// This path's time over the fused kernel's (>1: fused is faster).
    pub fused_speedup: f64,
}

/// The suite of the issue: ResNet stem and deeper stages, MobileNet-style depthwise.
fn suite(op: BenchOp) -> Vec<Shape4> {
    match op {
        // The v1 dense conv kernel recomputes the conv per blur tap; keep its shapes moderate.
        BenchOp::ConvBlurPoolDense => {
            vec![Shape4::new(64, 64, 112, 112), Shape4::new(64, 256, 56, 56)]
        }
        BenchOp::ConvBlurPoolDepthwise => {
            vec![Shape4::new(64, 96, 112, 112), Shape4::new(64, 256, 56, 56)]
        }
        _ => vec![
            Shape4::new(64, 64, 112, 112),
            Shape4::new(64, 256, 56, 56),
            Shape4::new(64, 512, 28, 28),
            Shape4::new(256, 64, 112, 112),
        ],
    }
}

pub fn bench(g: &Gpu, a: &BenchArgs) -> Result<Vec<Row>, String> {
    let device = g.ctx.name().unwrap_or_default();
    let mut workloads = Vec::new();
    for &op in &a.ops {
        let shapes = a.shape.map_or_else(|| suite(op), |s| vec![s]);
        for shape in shapes {
            for &dtype in &a.dtypes {
                for &layout in &a.layouts {
                    workloads.push(Workload {
                        op,
                        shape,
                        dtype,
                        layout,
                    });
                }
            }
        }
    }
    let bar = if a.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(workloads.len() as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {elapsed} {msg}")
            .map_err(|e| e.to_string())?,
    );
    println!(
        "Benchmarking on {device} ({} workloads, kernels: {:?}); GB/s over the minimum bytes \
         (input once + output once + weights), % of the device-to-device copy of the same input.",
        workloads.len(),
        g.kernels.source()
    );
    let mut rows = Vec::new();
    let mut roofline: Vec<(u64, f64)> = Vec::new();
    for w in &workloads {
        bar.set_message(format!(
            "{} {} {} {}",
            w.op.name(),
            w.shape,
            w.dtype.name(),
            w.layout.name()
        ));
        let mut prepared = match prepare(g, w) {
            Ok(p) => p,
            Err(e) => {
                bar.println(format!(
                    "skipped {} {} {} {}: {e}",
                    w.op.name(),
                    w.shape,
                    w.dtype.name(),
                    w.layout.name()
                ));
                bar.inc(1);
                continue;
            }
        };
        // The roofline of this input size (measured once per size).
        let copy_bw = match roofline.iter().find(|(b, _)| *b == prepared.input_bytes) {
            Some(&(_, bw)) => bw,
            None => {
                let (mut copy, moved) = copy_path(g, prepared.input_bytes as usize)?;
                let t = time_path(&g.stream, &mut copy, 5, a.iters)?;
                let bw = moved as f64 / t.as_secs_f64();
                roofline.push((prepared.input_bytes, bw));
                bw
            }
        };
        let mut times = Vec::new();
        for path in prepared.paths.iter_mut() {
            let probe = time_path(&g.stream, path, 1, 1)?.as_secs_f64();
            let iters = ((0.5 / probe.max(1e-9)) as usize).clamp(3, a.iters.max(3));
            let t = time_path(&g.stream, path, 5.min(iters), iters)?;
            times.push((path.name.clone(), t.as_secs_f64()));
        }
        g.ctx.check_err().map_err(|e| e.to_string())?;
        let fused = times
            .iter()
            .find(|(n, _)| n == "fused")
            .map(|t| t.1)
            .unwrap_or(f64::NAN);
        let mut lines = vec![format!(
            "\n{} {} {} {} — copy roofline {:.0} GB/s",
            w.op.name(),
            w.shape,
            w.dtype.name(),
            w.layout.name(),
            copy_bw / 1e9
        )];
        lines.push(format!(
            "  {:<20} {:>10} {:>9} {:>8} {:>10}",
            "path", "time µs", "GB/s", "% copy", "fused is"
        ));
        for (name, t) in &times {
            let bw = prepared.min_bytes as f64 / t;
            let row = Row {
                device: device.clone(),
                op: w.op.name().into(),
                shape: w.shape.to_string(),
                dtype: w.dtype.name().into(),
                layout: w.layout.name().into(),
                path: name.clone(),
                time_us: t * 1e6,
                bytes: prepared.min_bytes,
                gb_per_s: bw / 1e9,
                copy_gb_per_s: copy_bw / 1e9,
                pct_of_copy: 100.0 * bw / copy_bw,
                fused_speedup: t / fused,
            };
            lines.push(format!(
                "  {:<20} {:>10.1} {:>9.0} {:>7.1}% {:>9.2}×",
                row.path, row.time_us, row.gb_per_s, row.pct_of_copy, row.fused_speedup
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
            time_us: 10.0,
            bytes: 1000,
            gb_per_s: 0.1,
            copy_gb_per_s: 0.2,
            pct_of_copy: pct,
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
        assert!(lines[0].starts_with("device,op,shape,dtype,layout,path,time_us"));
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
