//! The benchmark workloads, without a GPU: the operators, the suite of shapes, dtypes and
//! layouts. `blurpool bench` and the criterion benches time them on a GPU ([`crate::bench`]);
//! the performance model (`blurpool-model`) predicts them on the CPU, so the two tables line up
//! row for row.

use blurpool::presets::{antialiased_cnns, timm};
use blurpool::{
    Activation, BlurPool2d, Conv2dArgs, Conv2dSpec, ConvBlurPool2d, DType, Layout, MaxBlurPool2d,
    MaxPool2d, Operator, PadMode, Shape4,
};

/// The operators the benchmarks time. Geometry is timm's anti-aliased ResNet stem (max 3×3,
/// stride 1, pad 1 → binomial 3, stride 2, reflect), whose symmetric padding cuDNN can express,
/// and antialiased-cnns' MaxBlurPool (max 2×2 → binomial 4), the other preset users run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BenchOp {
    /// Fused MaxBlurPool vs separate max + blur vs cuDNN max pooling + depthwise conv.
    MaxBlurPool,
    /// antialiased-cnns' MaxBlurPool (max 2×2, stride 1, no padding → binomial 4, stride 2,
    /// reflect, padded 1 before and 2 after), fused vs separate max + blur; its asymmetric
    /// padding has no cuDNN baseline.
    MaxBlurPoolAntialiased,
    /// BlurPool (blur 3, stride 2) vs cuDNN depthwise conv.
    BlurPool,
    /// ConvBlurPool with a depthwise 3×3 conv vs cuDNN depthwise conv + the crate's blur.
    ConvBlurPoolDepthwise,
    /// ConvBlurPool with a dense 3×3 conv (Cout = Cin) vs cuDNN conv + the crate's blur.
    ConvBlurPoolDense,
    /// Fused MaxBlurPool backward (dx from x and dy).
    MaxBlurPoolBackward,
    /// BlurPool backward (dx from dy).
    BlurPoolBackward,
    /// Depthwise ConvBlurPool backward (dx and dweight from x, weight and dy).
    ConvBlurPoolDepthwiseBackward,
}

impl BenchOp {
    pub const ALL: [BenchOp; 8] = [
        BenchOp::MaxBlurPool,
        BenchOp::MaxBlurPoolAntialiased,
        BenchOp::BlurPool,
        BenchOp::ConvBlurPoolDepthwise,
        BenchOp::ConvBlurPoolDense,
        BenchOp::MaxBlurPoolBackward,
        BenchOp::BlurPoolBackward,
        BenchOp::ConvBlurPoolDepthwiseBackward,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BenchOp::MaxBlurPool => "max_blur_pool",
            BenchOp::MaxBlurPoolAntialiased => "max_blur_pool_aa",
            BenchOp::BlurPool => "blur_pool",
            BenchOp::ConvBlurPoolDepthwise => "conv_blur_pool_dw",
            BenchOp::ConvBlurPoolDense => "conv_blur_pool_dense",
            BenchOp::MaxBlurPoolBackward => "max_blur_pool_bwd",
            BenchOp::BlurPoolBackward => "blur_pool_bwd",
            BenchOp::ConvBlurPoolDepthwiseBackward => "conv_blur_pool_dw_bwd",
        }
    }

    pub fn from_name(s: &str) -> Option<BenchOp> {
        BenchOp::ALL.into_iter().find(|o| o.name() == s)
    }

    /// True for the gradient workloads.
    pub fn is_backward(self) -> bool {
        matches!(
            self,
            BenchOp::MaxBlurPoolBackward
                | BenchOp::BlurPoolBackward
                | BenchOp::ConvBlurPoolDepthwiseBackward
        )
    }

    /// The operator of this workload for `shape` (the conv ones depend on its channels).
    pub fn operator(self, shape: Shape4) -> blurpool::Result<Operator> {
        Ok(match self {
            BenchOp::MaxBlurPool | BenchOp::MaxBlurPoolBackward => {
                Operator::MaxBlurPool(max_blur_pool_op()?)
            }
            BenchOp::MaxBlurPoolAntialiased => {
                Operator::MaxBlurPool(max_blur_pool_antialiased_op()?)
            }
            BenchOp::BlurPool | BenchOp::BlurPoolBackward => {
                Operator::BlurPool(BlurPool2d::new(blur3()?))
            }
            BenchOp::ConvBlurPoolDepthwise | BenchOp::ConvBlurPoolDepthwiseBackward => {
                Operator::ConvBlurPool(conv_blur_pool_op(shape.c, true)?)
            }
            BenchOp::ConvBlurPoolDense => {
                Operator::ConvBlurPool(conv_blur_pool_op(shape.c, false)?)
            }
        })
    }

    /// The suite's shapes: ResNet stem and deeper stages, MobileNet-style depthwise.
    pub fn suite_shapes(self) -> Vec<Shape4> {
        match self {
            // The v1 dense conv kernel recomputes the conv per blur tap; keep its shapes moderate.
            BenchOp::ConvBlurPoolDense => {
                vec![Shape4::new(64, 64, 112, 112), Shape4::new(64, 256, 56, 56)]
            }
            BenchOp::ConvBlurPoolDepthwise | BenchOp::ConvBlurPoolDepthwiseBackward => {
                vec![Shape4::new(64, 96, 112, 112), Shape4::new(64, 256, 56, 56)]
            }
            // The 2×2-max preset at the stages where antialiased-cnns' ResNets pool.
            BenchOp::MaxBlurPoolAntialiased => {
                vec![Shape4::new(64, 64, 112, 112), Shape4::new(64, 256, 56, 56)]
            }
            _ => vec![
                Shape4::new(64, 64, 112, 112),
                Shape4::new(64, 256, 56, 56),
                Shape4::new(64, 512, 28, 28),
                Shape4::new(256, 64, 112, 112),
            ],
        }
    }
}

/// One benchmark configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workload {
    pub op: BenchOp,
    pub shape: Shape4,
    pub dtype: DType,
    pub layout: Layout,
}

impl Workload {
    /// `op shape dtype layout`, e.g. `max_blur_pool 64×64×112×112 f16 nhwc`.
    pub fn label(&self) -> String {
        format!(
            "{} {} {} {}",
            self.op.name(),
            self.shape,
            self.dtype.name(),
            self.layout.name()
        )
    }
}

/// The suite for `ops` × `dtypes` × `layouts` (each op at its own shapes, or at `shape`).
/// Parses a shape written `N,C,H,W` (or with `x`/`×`), for the CLIs.
pub fn parse_shape(s: &str) -> Result<Shape4, String> {
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

/// Parses an operator of the suite by its name, for the CLIs.
pub fn parse_op(s: &str) -> Result<BenchOp, String> {
    BenchOp::from_name(s).ok_or_else(|| {
        format!(
            "unknown operator {s:?}: expected one of {}",
            BenchOp::ALL.map(|o| o.name()).join(", ")
        )
    })
}

pub fn suite(
    ops: &[BenchOp],
    shape: Option<Shape4>,
    dtypes: &[DType],
    layouts: &[Layout],
) -> Vec<Workload> {
    let mut out = Vec::new();
    for &op in ops {
        for s in shape.map_or_else(|| op.suite_shapes(), |s| vec![s]) {
            for &dtype in dtypes {
                for &layout in layouts {
                    out.push(Workload {
                        op,
                        shape: s,
                        dtype,
                        layout,
                    });
                }
            }
        }
    }
    out
}

/// timm's blur: binomial 3 taps, stride 2, reflect.
pub fn blur3() -> blurpool::Result<blurpool::Blur> {
    timm::blur(3, 2, PadMode::Reflect)
}

/// The MaxBlurPool of the benchmarks (timm's aa stem geometry).
pub fn max_blur_pool_op() -> blurpool::Result<MaxBlurPool2d> {
    Ok(MaxBlurPool2d::new(
        MaxPool2d::new((3, 3), (1, 1))?,
        blur3()?,
    ))
}

/// antialiased-cnns' MaxBlurPool with the package's defaults: `MaxPool2d(kernel_size=2,
/// stride=1)` then `BlurPool(C, filt_size=4, stride=2)` (reflect padding).
pub fn max_blur_pool_antialiased_op() -> blurpool::Result<MaxBlurPool2d> {
    antialiased_cnns::max_blur_pool(
        2,
        0,
        PadMode::Reflect,
        antialiased_cnns::DEFAULT_FILT_SIZE,
        2,
        0,
    )
}

/// ConvBlurPool with a 3×3 conv (padding 1, no bias), `c` channels in and out, depthwise or
/// dense, then the blur.
pub fn conv_blur_pool_op(c: usize, depthwise: bool) -> blurpool::Result<ConvBlurPool2d> {
    let groups = if depthwise { c } else { 1 };
    let conv = Conv2dSpec::new(Conv2dArgs {
        in_channels: c,
        out_channels: c,
        kernel: (3, 3),
        padding: (1, 1),
        groups,
        bias: false,
        activation: Activation::Identity,
    })?;
    Ok(ConvBlurPool2d::new(conv, blur3()?))
}
