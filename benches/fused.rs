//! Criterion benchmarks on the GPU: fused MaxBlurPool vs the crate's separate max + blur
//! kernels, timed with CUDA events on the kernels' stream. Throughput is the minimum bytes of
//! the fused op (input read once + output written once), so GB/s compares across paths.
//! Without a CUDA device the benchmarks print why and do nothing.

use std::sync::Arc;
use std::time::Duration;

use blurpool::presets::antialiased_cnns;
use blurpool::verify::{random_vec, Gpu};
use blurpool::{Layout, PadMode, Shape4};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use cudarc::driver::{sys::CUevent_flags, CudaEvent, CudaSlice, CudaStream};
use half::f16;
use rand::rngs::StdRng;
use rand::SeedableRng;

/// GPU time of `iters` back-to-back launches: events recorded on the launches' own stream.
fn gpu_time(
    start: &CudaEvent,
    end: &CudaEvent,
    stream: &Arc<CudaStream>,
    iters: u64,
    mut launch: impl FnMut(usize),
) -> Duration {
    start.record(stream).unwrap();
    for i in 0..iters as usize {
        launch(i);
    }
    end.record(stream).unwrap();
    Duration::from_secs_f64(start.elapsed_ms(end).unwrap() as f64 * 1e-3)
}

fn max_blur_pool(c: &mut Criterion) {
    let g = match Gpu::open(0) {
        Ok(g) => g,
        Err(e) => {
            println!("SKIPPED benches: no usable GPU ({e})");
            return;
        }
    };
    let stream = g.stream.clone();
    let op = antialiased_cnns::max_blur_pool(2, 0, PadMode::Reflect, 4, 2, 0).unwrap();
    for layout in Layout::ALL {
        let shape = Shape4::new(64, 64, 112, 112);
        let (m, out) = (
            op.max_map_shape(shape).unwrap(),
            op.output_shape(shape).unwrap(),
        );
        let mut rng = StdRng::seed_from_u64(1);
        let host: Vec<f16> = random_vec(&mut rng, shape.numel().unwrap(), 1.0);
        // Two ~100 MB inputs: together well beyond the L2 cache.
        let xs: Vec<CudaSlice<f16>> = (0..2).map(|_| stream.clone_htod(&host).unwrap()).collect();
        let mut y = stream.alloc_zeros::<f16>(out.numel().unwrap()).unwrap();
        let mut mm = stream.alloc_zeros::<f16>(m.numel().unwrap()).unwrap();
        let start = g
            .ctx
            .new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .unwrap();
        let end = g
            .ctx
            .new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .unwrap();
        let mut group = c.benchmark_group(format!("max_blur_pool/f16/{}/{}", layout.name(), shape));
        group.throughput(Throughput::BytesDecimal(
            2 * (shape.numel().unwrap() + out.numel().unwrap()) as u64,
        ));
        group.bench_function("fused", |b| {
            b.iter_custom(|iters| {
                gpu_time(&start, &end, &stream, iters, |i| {
                    op.forward(&g.kernels, &stream, shape, layout, &xs[i % 2], &mut y)
                        .unwrap();
                })
            })
        });
        group.bench_function("separate", |b| {
            b.iter_custom(|iters| {
                gpu_time(&start, &end, &stream, iters, |i| {
                    op.forward_separate(
                        &g.kernels,
                        &stream,
                        shape,
                        layout,
                        &xs[i % 2],
                        &mut mm,
                        &mut y,
                    )
                    .unwrap();
                })
            })
        });
        group.finish();
    }
    g.ctx.check_err().unwrap();
}

criterion_group!(benches, max_blur_pool);
criterion_main!(benches);
