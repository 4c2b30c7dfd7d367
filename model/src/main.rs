//! `blurpool-model`: the performance model's command.
//!
//! * `--suite`: every forward and backward workload of the benchmark suite (blurpool bench's
//!   rows), each path traced in the host emulator and read in the sm_90 SASS, predicted for H100
//!   and H200; prints the table and writes model.md and model.json into `--out`.
//! * `--workload OP --shape N,C,H,W --dtype D --layout L`: one workload, with every launch's
//!   bounds.
//! * `--gates`: CI's regression gates (no local memory, batched loads, sector efficiency) and
//!   their self-check on deliberately broken variants; exit status 1 if any fails.
//!   `--record-gates` rewrites model/gates.json from this build's figures.
//! * `--compare BENCH_JSON [--model MODEL_JSON]`: after a GPU run of `blurpool bench`, the
//!   model's error per kernel path (modeled / measured − 1), written to `--out`/compare.md.
//!
//! Figures are modeled, not measured (notes/model.md says what the model cannot see).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use blurpool::{DType, Layout, Shape4};
use blurpool_model::sass::Sass;
use blurpool_model::suite::{run_all, spec, suite_workloads};
use blurpool_model::trace::Sample;
use blurpool_model::{gates, report, suite};
use blurpool_testkit::workloads::{parse_op, parse_shape, BenchOp, Workload};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    about = "blurpool's performance model: trace, SASS and a predicted time per kernel (modeled, not measured)"
)]
struct Args {
    /// Model every workload of the benchmark suite.
    #[arg(long)]
    suite: bool,
    /// Model one workload: an operator of the suite (max_blur_pool, max_blur_pool_aa,
    /// blur_pool, conv_blur_pool_dw, conv_blur_pool_dense, max_blur_pool_bwd, blur_pool_bwd,
    /// conv_blur_pool_dw_bwd).
    #[arg(long, value_parser = parse_op)]
    workload: Option<BenchOp>,
    /// The workload's shape N,C,H,W (default: the suite's first for the operator).
    #[arg(long, value_parser = parse_shape)]
    shape: Option<Shape4>,
    #[arg(long, default_value = "f16")]
    dtype: DType,
    #[arg(long, default_value = "nhwc")]
    layout: Layout,
    /// With --workload: each launch's requests and LSU cycles per source site (H100), the
    /// site holding the most first.
    #[arg(long)]
    sites: bool,
    /// Run the CI gates.
    #[arg(long)]
    gates: bool,
    /// Rewrite model/gates.json from this build (with --gates).
    #[arg(long)]
    record_gates: bool,
    /// A GPU's bench.json (`blurpool bench`) to compare with the model's figures.
    #[arg(long)]
    compare: Option<PathBuf>,
    /// The model.json to compare with (default: `--out`/model.json).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Where model.md and model.json go.
    #[arg(long, default_value = "model-results")]
    out: PathBuf,
    /// Worker threads (default: the machine's cores).
    #[arg(long)]
    threads: Option<usize>,
}

fn main() -> ExitCode {
    let a = Args::parse();
    let r = if let Some(bench) = &a.compare {
        run_compare(&a, bench)
    } else if a.gates || a.record_gates {
        run_gates(a.record_gates)
    } else if a.suite {
        run_suite(&a)
    } else if let Some(op) = a.workload {
        run_one(&a, op)
    } else {
        Err("nothing to do: pass --suite, --workload OP, --gates or --compare BENCH_JSON (see --help)".into())
    };
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn threads(a: &Args) -> usize {
    a.threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn run_suite(a: &Args) -> Result<bool, String> {
    let t0 = Instant::now();
    let sass = Arc::new(Sass::kernels()?);
    let workloads = suite_workloads();
    eprintln!(
        "blurpool-model: {} workloads on {} threads (SASS read in {:.1} s)",
        workloads.len(),
        threads(a),
        t0.elapsed().as_secs_f64()
    );
    let done = std::sync::atomic::AtomicUsize::new(0);
    let n = workloads.len();
    let results = run_all(&workloads, &sass, Sample::SUITE, threads(a), &|_, w| {
        let k = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        eprintln!(
            "  [{k}/{n}] {} ({:.0} s)",
            w.label(),
            t0.elapsed().as_secs_f64()
        );
    });
    let mut models = Vec::new();
    let mut failed = Vec::new();
    for (w, r) in workloads.iter().zip(results) {
        match r {
            Ok(m) => models.push(m),
            Err(e) => failed.push(format!("{}: {e}", w.label())),
        }
    }
    write(&a.out, &models, t0.elapsed().as_secs_f64())?;
    for f in &failed {
        eprintln!("failed: {f}");
    }
    println!(
        "{} workloads modeled in {:.0} s; wrote {}/model.md and {}/model.json",
        models.len(),
        t0.elapsed().as_secs_f64(),
        a.out.display(),
        a.out.display()
    );
    Ok(failed.is_empty())
}

fn write(out: &PathBuf, models: &[suite::WorkloadModel], seconds: f64) -> Result<(), String> {
    let io = |e: std::io::Error| format!("{}: {e}", out.display());
    std::fs::create_dir_all(out).map_err(io)?;
    let table = report::markdown(models);
    let md = format!(
        "# blurpool performance model (modeled, not measured)\n\n{} workloads, {seconds:.0} s. \
         Machines and sources: model/src/hw.rs; method and limits: notes/model.md. Per launch: \
         registers, resident warps per SM, estimated warp instructions per output element, \
         static global load widths, loads in flight at first use (dynamic mean, max), sectors \
         per global load request, requested bytes per active lane, share of full-warp requests, \
         L1 hit rate, L1↔L2 bytes and DRAM bytes over the minimum bytes (SPEC §6), shared \
         wavefronts per request; predicted µs and % of the copy roofline per GPU, and the bound \
         that binds.\n\n{table}\n## Bounds (µs)\n\n{}",
        models.len(),
        report::bounds_markdown(models)
    );
    std::fs::write(out.join("model.md"), md).map_err(io)?;
    std::fs::write(out.join("model.json"), report::json(models)?).map_err(io)?;
    println!("{table}");
    Ok(())
}

fn run_one(a: &Args, op: BenchOp) -> Result<bool, String> {
    let sass = Sass::kernels()?;
    let w = Workload {
        op,
        shape: a.shape.unwrap_or(op.suite_shapes()[0]),
        dtype: a.dtype,
        layout: a.layout,
    };
    let s = spec(&w)?;
    let m = suite::run(&s, &sass, Sample::SUITE)?;
    let models = vec![m];
    println!("{}", report::markdown(&models));
    println!("{}", report::bounds_markdown(&models));
    if a.sites {
        let g = &blurpool_model::hw::H100;
        for p in &s.paths {
            let traces = suite::trace_path(&s, p, Sample::SUITE, "")?;
            for (l, t) in p.launches.iter().zip(&traces) {
                let rows = blurpool_model::sites::per_site(t, g);
                let sms = l.grid.clamp(1, g.sms) as f64;
                println!(
                    "{} path: {}",
                    p.name,
                    blurpool_model::sites::markdown(&l.symbol, &rows, g, sms)
                );
                let f = sass.function(&l.symbol)?;
                for (file, what) in [
                    (
                        Some("strip.cuh"),
                        "the strip walk's line where inlined from it",
                    ),
                    (None, "innermost line"),
                ] {
                    let lines = blurpool_model::predict::instructions_by_line(f, t, file);
                    let total: f64 = lines.iter().map(|l| l.1).sum();
                    println!(
                        "estimated warp instructions by {what} (the 12 largest of {total:.3e}):\n"
                    );
                    for (line, n) in lines.iter().take(12) {
                        println!("- {line}: {n:.3e} ({:.0}%)", 100.0 * n / total.max(1.0));
                    }
                    println!();
                }
            }
        }
    }
    Ok(true)
}

fn run_compare(a: &Args, bench: &PathBuf) -> Result<bool, String> {
    let read = |p: &PathBuf| -> Result<serde_json::Value, String> {
        let t = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
        serde_json::from_str(&t).map_err(|e| format!("{}: {e}", p.display()))
    };
    let model_path = a.model.clone().unwrap_or_else(|| a.out.join("model.json"));
    let (rows, missing) = blurpool_model::compare::compare(&read(bench)?, &read(&model_path)?)?;
    let md = blurpool_model::compare::markdown(&rows);
    println!("{md}");
    for m in &missing {
        eprintln!("not compared: {m}");
    }
    std::fs::create_dir_all(&a.out).map_err(|e| e.to_string())?;
    std::fs::write(a.out.join("compare.md"), &md).map_err(|e| e.to_string())?;
    println!(
        "wrote {}/compare.md ({} rows compared)",
        a.out.display(),
        rows.len()
    );
    Ok(!rows.is_empty())
}

fn run_gates(record: bool) -> Result<bool, String> {
    let t0 = Instant::now();
    let rep = gates::run(record)?;
    println!(
        "Gates over {} specialised kernel instances (no local memory; loads in flight ≥ {:.0}% of \
         model/gates.json's figure, and ≥ {} where it was ≥ {} or there is none; sector efficiency \
         ≥ {:.0}% and ≥ {:.0}% of the recorded share):",
        rep.figures.len(),
        100.0 * gates::KEEP_FRACTION,
        gates::MIN_IN_FLIGHT,
        gates::MIN_IN_FLIGHT,
        100.0 * gates::SECTOR_FLOOR,
        100.0 * gates::SECTOR_KEEP
    );
    for f in &rep.figures {
        println!(
            "  {:<40} loads in flight {:>5.2}   sector efficiency {:>4.0}%",
            f.symbol,
            f.loads_in_flight,
            100.0 * f.sector_efficiency
        );
    }
    println!(
        "Self-check on the broken variants ({} caught):",
        rep.variant_checks.len()
    );
    for c in &rep.variant_checks {
        println!("  {c}");
    }
    println!(
        "Variants the gates need not catch ({}): the kernel already issues one load at a time, or NCHW lanes already touch a sector each",
        rep.variant_not_applicable.len()
    );
    for c in &rep.variant_not_applicable {
        println!("  {c}");
    }
    for f in &rep.failures {
        println!("FAIL {f}");
    }
    for e in &rep.variant_escapes {
        println!("FAIL (the gates missed a broken variant) {e}");
    }
    if record {
        println!("recorded {}", gates::BASELINE_PATH);
    }
    let ok =
        rep.failures.is_empty() && rep.variant_escapes.is_empty() && !rep.variant_checks.is_empty();
    println!(
        "{} in {:.0} s",
        if ok { "gates passed" } else { "gates FAILED" },
        t0.elapsed().as_secs_f64()
    );
    Ok(ok)
}
