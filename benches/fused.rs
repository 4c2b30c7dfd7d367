//! Criterion benchmarks on the GPU, over the same workloads as `blurpool bench`
//! (testkit/src/workloads.rs, testkit/src/bench/): per workload, the fused kernel, the crate's
//! separate kernels and cuDNN (with `--features cudnn` and libcudnn on the library path). Each
//! iteration is one cold launch (the L2 flushed before it, timed with CUDA events on the
//! launches' stream, inputs and outputs rotated), as `blurpool bench` measures. Throughput is
//! the fused operator's minimum bytes (input once + output once + weights), so GB/s compares
//! across paths.
//!
//! Default: a representative set (MaxBlurPool both layouts, BlurPool, ConvBlurPool depthwise and
//! dense, MaxBlurPool backward; f16 at the ResNet stem shape). BLURPOOL_BENCH_FULL=1 runs every
//! dtype and layout. Without a CUDA device the benchmarks print why and do nothing.

use std::time::Duration;

use blurpool::{DType, Layout, Shape4};
use blurpool_testkit::bench::{prepare, ColdTimer};
use blurpool_testkit::workloads::{BenchOp, Workload};
use blurpool_testkit::Gpu;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn workloads() -> Vec<Workload> {
    let full = std::env::var("BLURPOOL_BENCH_FULL").is_ok_and(|v| v == "1");
    let stem = Shape4::new(64, 64, 112, 112);
    let mut out = Vec::new();
    let (dtypes, layouts): (Vec<DType>, Vec<Layout>) = if full {
        (DType::ALL.to_vec(), Layout::ALL.to_vec())
    } else {
        (vec![DType::F16], vec![Layout::Nhwc])
    };
    for op in BenchOp::ALL {
        let shape = match op {
            BenchOp::ConvBlurPoolDense => Shape4::new(64, 64, 56, 56),
            _ => stem,
        };
        for &dtype in &dtypes {
            let layouts = if op == BenchOp::MaxBlurPool && !full {
                Layout::ALL.to_vec()
            } else {
                layouts.clone()
            };
            for layout in layouts {
                out.push(Workload {
                    op,
                    shape,
                    dtype,
                    layout,
                });
            }
        }
    }
    out
}

fn gpu_benches(c: &mut Criterion) {
    let g = match Gpu::open(0) {
        Ok(g) => g,
        Err(e) => {
            println!("SKIPPED benches: no usable GPU ({e})");
            return;
        }
    };
    let mut timer = match ColdTimer::new(&g) {
        Ok(t) => t,
        Err(e) => {
            println!("SKIPPED benches: {e}");
            return;
        }
    };
    for w in workloads() {
        let mut p = match prepare(&g, &w) {
            Ok(p) => p,
            Err(e) => {
                println!("SKIPPED {w:?}: {e}");
                continue;
            }
        };
        for n in &p.notes {
            println!("{} {} {:?}: {n}", w.op.name(), w.shape, w.layout);
        }
        let mut group = c.benchmark_group(format!(
            "{}/{}/{}/{}",
            w.op.name(),
            w.dtype.name(),
            w.layout.name(),
            w.shape
        ));
        group.throughput(Throughput::BytesDecimal(p.min_bytes));
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(2));
        group.sample_size(20);
        for path in p.paths.iter_mut() {
            let name = path.name.clone();
            group.bench_function(name, |b| {
                b.iter_custom(|iters| {
                    let mut total = 0.0;
                    for i in 0..iters as usize {
                        total += timer.time_once(&mut || (path.run)(i)).unwrap();
                    }
                    Duration::from_secs_f64(total)
                })
            });
        }
        group.finish();
        g.ctx.check_err().unwrap();
    }
}

criterion_group!(benches, gpu_benches);
criterion_main!(benches);
