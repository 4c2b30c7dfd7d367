//! `blurpool`: the crate's command line.
//!
//! * `blurpool` (= `blurpool run`): with a GPU, verifies every kernel against the CPU reference
//!   and times fused vs separate max + blur at a default shape; without one, says so and runs
//!   the CPU reference on the paper's seed example.
//! * `blurpool demo`: the seed example (CPU only).
//! * `blurpool verify`: the GPU verification alone.
//! * `blurpool bench`: the copy roofline, then fused vs separate vs cuDNN over the benchmark
//!   suite (or one shape), with JSON / CSV / SVG outputs.

mod bench;

use std::process::ExitCode;

use blurpool::cuda::KernelChoice;
use blurpool::presets::antialiased_cnns;
use blurpool::{
    reference, Activation, Conv2dArgs, Conv2dSpec, DType, Layout, Operator, PadMode, Shape4,
};
use blurpool_testkit::{check_in_dtype, Gpu};
use clap::{Parser, Subcommand};
use rand::rngs::StdRng;
use rand::SeedableRng;

#[derive(Parser)]
#[command(
    name = "blurpool",
    version,
    about = "Fused anti-aliased downsampling kernels: verify and time them"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Verify every kernel and time fused vs separate (GPU), or run the seed demo (no GPU).
    Run,
    /// Max-pool vs max-blur-pool on the paper's 0,0,1,1,… signal and its one-pixel shift (CPU).
    Demo,
    /// Check every kernel against the CPU reference on random data.
    Verify {
        /// Seed for the random inputs (default: from the clock).
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Time the fused kernels vs the separate kernels vs cuDNN against the copy roofline.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Run) {
        Command::Run => run(),
        Command::Demo => {
            demo();
            Ok(())
        }
        Command::Verify { seed } => Gpu::open(0)
            .map_err(|e| format!("no usable GPU: {e}"))
            .and_then(|g| verify(&g, seed)),
        Command::Bench(args) => Gpu::open(0)
            .map_err(|e| format!("no usable GPU: {e}"))
            .and_then(|g| bench::bench(&g, &args).map(|_| ())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    match Gpu::open(0) {
        Ok(g) => {
            verify(&g, None)?;
            bench::bench(
                &g,
                &bench::BenchArgs::for_suite(
                    Some(Shape4::new(32, 64, 112, 112)),
                    vec![blurpool_testkit::workloads::BenchOp::MaxBlurPool],
                    vec![DType::F16],
                    Layout::ALL.to_vec(),
                ),
            )
            .map(|_| ())
        }
        Err(e) => {
            println!("No GPU here ({e}).");
            println!("The CUDA kernels need one; running the CPU reference on the seed example instead.\n");
            demo();
            Ok(())
        }
    }
}

/// The paper's Figure 1 in numbers: max-pooling is not shift-invariant, max-blur-pooling nearly is.
fn demo() {
    let w = 16;
    let signal: Vec<f32> = (0..w)
        .map(|i| if (i / 2) % 2 == 1 { 1.0 } else { 0.0 })
        .collect();
    let shifted: Vec<f32> = (0..w)
        .map(|i| if i == 0 { 0.0 } else { signal[i - 1] })
        .collect();
    let shape = Shape4::new(1, 1, 4, w);
    let rows = |row: &[f32]| {
        row.iter()
            .cycle()
            .take(4 * w)
            .copied()
            .collect::<Vec<f32>>()
    };
    // MaxPool2d(2, stride 2) is the dense 2×2 max subsampled by 2 (a 1-tap blur).
    let maxpool = Operator::MaxBlurPool(
        antialiased_cnns::max_blur_pool(2, 0, PadMode::Zero, 1, 2, 0).expect("valid"),
    );
    // antialiased-cnns: MaxPool2d(2, stride 1) → BlurPool(filt_size=4, stride 2, reflect).
    let maxblur = Operator::MaxBlurPool(
        antialiased_cnns::max_blur_pool(2, 0, PadMode::Reflect, 4, 2, 0).expect("valid"),
    );
    let first_row = |op: &Operator, x: &[f32]| {
        let out = op.output_shape(shape).expect("valid shape");
        let mut y = vec![0f32; out.numel().expect("small")];
        reference::forward(op, shape, Layout::Nchw, &rows(x), &[], None, &mut y)
            .expect("reference");
        y[..out.w].to_vec()
    };
    let fmt = |v: &[f32]| {
        v.iter()
            .map(|x| format!("{x:5.3}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!("Seed example (Zhang 2019): x = 0,0,1,1,0,0,1,1,… and x shifted right by one pixel");
    println!(
        "  input          {}",
        signal.iter().map(|v| format!("{v:.0}")).collect::<String>()
    );
    println!(
        "  input, shifted {}",
        shifted
            .iter()
            .map(|v| format!("{v:.0}"))
            .collect::<String>()
    );
    let (a, b) = (first_row(&maxpool, &signal), first_row(&maxpool, &shifted));
    let (c, d) = (first_row(&maxblur, &signal), first_row(&maxblur, &shifted));
    println!("\nMaxPool2d(2, stride 2):");
    println!("  x        {}", fmt(&a));
    println!("  shift(x) {}", fmt(&b));
    println!("MaxBlurPool (max 2×2 stride 1 → binomial blur 4, stride 2, reflect):");
    println!("  x        {}", fmt(&c));
    println!("  shift(x) {}", fmt(&d));
    let change = |p: &[f32], q: &[f32]| {
        p.iter().zip(q).map(|(u, v)| (u - v).abs()).sum::<f32>() / p.len() as f32
    };
    // The ends see the border; the interior is what shift-invariance is about.
    let interior = |p: &[f32]| p[1..p.len() - 1].to_vec();
    println!(
        "\nMean |change| under the one-pixel shift: max-pool {:.3}, max-blur-pool {:.3} (interior: {:.3} vs {:.3})",
        change(&a, &b),
        change(&c, &d),
        change(&interior(&a), &interior(&b)),
        change(&interior(&c), &interior(&d)),
    );
}

/// One representative configuration per operator × dtype × layout × pad mode, on odd sizes.
fn verify(g: &Gpu, seed: Option<u64>) -> Result<(), String> {
    let seed = seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    println!(
        "Verifying every kernel against the CPU reference on {} (seed {seed}, kernels: {:?})",
        g.ctx.name().unwrap_or_default(),
        g.kernels.source()
    );
    let mut rng = StdRng::seed_from_u64(seed);
    let shape = Shape4::new(2, 6, 19, 23);
    let mut cases: Vec<Operator> = Vec::new();
    for mode in PadMode::ALL {
        for filt in [1, 3, 4, 7] {
            cases.push(Operator::BlurPool(
                antialiased_cnns::blur_pool(mode, filt, 2, 0).map_err(|e| e.to_string())?,
            ));
            cases.push(Operator::MaxBlurPool(
                antialiased_cnns::max_blur_pool(2, 0, mode, filt, 2, 0)
                    .map_err(|e| e.to_string())?,
            ));
        }
        cases.push(Operator::MaxPool(
            blurpool::MaxPool2d::new((3, 3), (1, 1)).map_err(|e| e.to_string())?,
        ));
        // timm's aa layer: 3×3 max (padding 1), then BlurPool2d(filt 3, stride 2).
        cases.push(Operator::MaxBlurPool(blurpool::MaxBlurPool2d::new(
            blurpool::MaxPool2d::new((3, 3), (1, 1)).map_err(|e| e.to_string())?,
            blurpool::presets::timm::blur(3, 2, mode).map_err(|e| e.to_string())?,
        )));
        for (cout, groups, act) in [
            (6, 6, Activation::Relu6),
            (8, 1, Activation::Relu),
            (4, 2, Activation::Identity),
        ] {
            let conv = Conv2dSpec::new(Conv2dArgs {
                in_channels: 6,
                out_channels: cout,
                kernel: (3, 3),
                padding: (1, 1),
                groups,
                bias: true,
                activation: act,
            })
            .map_err(|e| e.to_string())?;
            cases.push(Operator::ConvBlurPool(
                antialiased_cnns::conv_blur_pool(conv, mode, 3, 2, 0).map_err(|e| e.to_string())?,
            ));
            let blur = antialiased_cnns::blur(mode, 3, 1, 0).map_err(|e| e.to_string())?;
            cases.push(Operator::BlurConv(
                blurpool::BlurConv2d::new(blur, conv, (2, 2)).map_err(|e| e.to_string())?,
            ));
        }
    }
    println!(
        "{:<16} {:>6} {:>6} {:>6}",
        "operator", "cases", "passed", "failed"
    );
    let mut total_failed = 0;
    // Backward too, except BlurConv2d's (not on the GPU yet). Pooling and ConvBlurPool run
    // twice: with the kernels `forward` picks (strip kernels, or the tensor-core conv in
    // f16/bf16, where a specialisation matches) and with the general kernels only ("v1").
    let general = g.with_choice(KernelChoice::GENERAL);
    let rows = [
        ("max_pool", false, false),
        ("blur_pool", false, false),
        ("blur_pool", false, true),
        ("max_blur_pool", false, false),
        ("max_blur_pool", false, true),
        ("conv_blur_pool", false, false),
        ("conv_blur_pool", false, true),
        ("blur_conv", false, false),
        ("max_pool", true, false),
        ("blur_pool", true, false),
        ("max_blur_pool", true, false),
        ("conv_blur_pool", true, false),
    ];
    for (name, backward, v1) in rows {
        let (mut run, mut failed) = (0, 0);
        let runner = if v1 { &general } else { g };
        for op in cases.iter().filter(|o| o.name() == name) {
            for layout in Layout::ALL {
                for dtype in DType::ALL {
                    run += 1;
                    if let Err(e) =
                        check_in_dtype(runner, &mut rng, op, shape, layout, dtype, backward)
                    {
                        failed += 1;
                        eprintln!("FAIL {e}");
                    }
                }
            }
        }
        let label = match (backward, v1) {
            (true, _) => format!("{name} (bwd)"),
            (false, true) => format!("{name} (v1)"),
            (false, false) => name.to_string(),
        };
        println!("{label:<16} {run:>6} {:>6} {failed:>6}", run - failed);
        total_failed += failed;
    }
    if total_failed > 0 {
        return Err(format!("{total_failed} kernel checks failed"));
    }
    println!("All kernels match the CPU reference.\n");
    Ok(())
}
