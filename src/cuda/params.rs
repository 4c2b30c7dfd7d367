//! The parameter block every kernel takes by value; mirrors `struct BpParams` in
//! kernels/common.cuh field for field. Internal: plans expose it only as bytes
//! ([`super::LaunchPlan::params_bytes`]).

use crate::error::{Error, Result};
use crate::ops::{Blur, Conv2dSpec, MAX_TAPS};
use crate::tensor::Shape4;

/// Kernel parameter block (368 bytes, no implicit padding: 20 i64/f64, 20 i32, 32 f32).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct BpParams {
    pub(crate) n: i64,
    pub(crate) c: i64,
    pub(crate) h: i64,
    pub(crate) w: i64,
    pub(crate) cout: i64,
    pub(crate) ho: i64,
    pub(crate) wo: i64,
    pub(crate) hm: i64,
    pub(crate) wm: i64,
    pub(crate) total: i64,
    pub(crate) total_in: i64,
    pub(crate) total_map: i64,
    pub(crate) rcp_cout: f64,
    pub(crate) rcp_ho: f64,
    pub(crate) rcp_wo: f64,
    pub(crate) rcp_c: f64,
    pub(crate) rcp_h: f64,
    pub(crate) rcp_w: f64,
    pub(crate) rcp_hm: f64,
    pub(crate) rcp_wm: f64,
    pub(crate) mkh: i32,
    pub(crate) mkw: i32,
    pub(crate) mpy: i32,
    pub(crate) mpx: i32,
    pub(crate) fy: i32,
    pub(crate) fx: i32,
    pub(crate) pad_top: i32,
    pub(crate) pad_left: i32,
    pub(crate) mode: i32,
    pub(crate) sy: i32,
    pub(crate) sx: i32,
    pub(crate) ckh: i32,
    pub(crate) ckw: i32,
    pub(crate) cpy: i32,
    pub(crate) cpx: i32,
    pub(crate) groups: i32,
    pub(crate) act: i32,
    pub(crate) has_bias: i32,
    pub(crate) csy: i32,
    pub(crate) csx: i32,
    pub(crate) ty: [f32; MAX_TAPS],
    pub(crate) tx: [f32; MAX_TAPS],
}

const _: () = assert!(std::mem::size_of::<BpParams>() == 368);

// SAFETY: BpParams is #[repr(C)], Copy, has no pointers and no implicit padding (asserted size
// = sum of field sizes), and its layout matches `struct BpParams` in kernels/common.cuh, which
// static_asserts the same size.
unsafe impl cudarc::driver::DeviceRepr for BpParams {}

// The kernels' assumptions (kernels/common.cuh: per-axis values in int, linear indices below
// 2^53 for the double-reciprocal index split), checked where the values become kernel
// parameters. src/ops.rs (MAX_EXTENT, MAX_ELEMENTS) already refuses every operator and shape
// that would break them, so these errors are a second line, never the first.

/// Largest element count the kernels index (their index split is exact below 2^53).
const MAX_INDEX: usize = 1 << 53;

fn small(what: &'static str, v: usize) -> Result<i32> {
    i32::try_from(v)
        .map_err(|_| Error::ShapeOverflow(format!("{what} = {v} does not fit in 32 bits")))
}

impl BpParams {
    /// Input and output extents, plus the map the blur reads (`map`: (hm, wm)).
    pub(crate) fn new(input: Shape4, output: Shape4, map: (usize, usize)) -> Result<BpParams> {
        let n_in = input.numel()?;
        let n_out = output.numel()?;
        if n_in >= MAX_INDEX || n_out >= MAX_INDEX {
            return Err(Error::ShapeOverflow(format!(
                "{input} → {output} exceeds 2^53 elements"
            )));
        }
        small("channels", input.c.max(output.c))?;
        // Per-axis coordinates are int in the kernels.
        for (what, v) in [
            ("input height", input.h),
            ("input width", input.w),
            ("output height", output.h),
            ("output width", output.w),
            ("map height", map.0),
            ("map width", map.1),
        ] {
            small(what, v)?;
        }
        let n_map = input
            .n
            .checked_mul(output.c)
            .and_then(|v| v.checked_mul(map.0))
            .and_then(|v| v.checked_mul(map.1))
            .filter(|&v| v < MAX_INDEX)
            .ok_or_else(|| {
                Error::ShapeOverflow(format!(
                    "{input}: the {}×{} map exceeds 2^53 elements",
                    map.0, map.1
                ))
            })?;
        let rcp = |v: usize| if v == 0 { 0.0 } else { 1.0 / v as f64 };
        Ok(BpParams {
            n: input.n as i64,
            c: input.c as i64,
            h: input.h as i64,
            w: input.w as i64,
            cout: output.c as i64,
            ho: output.h as i64,
            wo: output.w as i64,
            hm: map.0 as i64,
            wm: map.1 as i64,
            total: n_out as i64,
            total_in: n_in as i64,
            total_map: n_map as i64,
            rcp_cout: rcp(output.c),
            rcp_ho: rcp(output.h),
            rcp_wo: rcp(output.w),
            rcp_c: rcp(input.c),
            rcp_h: rcp(input.h),
            rcp_w: rcp(input.w),
            rcp_hm: rcp(map.0),
            rcp_wm: rcp(map.1),
            ..Default::default()
        })
    }

    pub(crate) fn with_max(
        mut self,
        kernel: (usize, usize),
        padding: (usize, usize),
    ) -> Result<Self> {
        self.mkh = small("max window height", kernel.0)?;
        self.mkw = small("max window width", kernel.1)?;
        self.mpy = small("max padding", padding.0)?;
        self.mpx = small("max padding", padding.1)?;
        Ok(self)
    }

    pub(crate) fn with_blur(mut self, blur: &Blur) -> Result<Self> {
        let (wy, wx) = (blur.filter().weights_y(), blur.filter().weights_x());
        self.fy = wy.len() as i32;
        self.fx = wx.len() as i32;
        for (dst, src) in self.ty.iter_mut().zip(wy) {
            *dst = *src as f32;
        }
        for (dst, src) in self.tx.iter_mut().zip(wx) {
            *dst = *src as f32;
        }
        let pad = blur.pad();
        self.pad_top = small("blur padding", pad.top)?;
        self.pad_left = small("blur padding", pad.left)?;
        self.mode = blur.mode().code();
        let (sy, sx) = blur.stride();
        self.sy = small("stride", sy)?;
        self.sx = small("stride", sx)?;
        Ok(self)
    }

    pub(crate) fn with_conv(mut self, conv: &Conv2dSpec, stride: (usize, usize)) -> Result<Self> {
        let (kh, kw) = conv.kernel();
        let (py, px) = conv.padding();
        self.ckh = small("conv kernel height", kh)?;
        self.ckw = small("conv kernel width", kw)?;
        self.cpy = small("conv padding", py)?;
        self.cpx = small("conv padding", px)?;
        self.groups = small("groups", conv.groups())?;
        self.act = conv.activation().code();
        self.has_bias = conv.has_bias() as i32;
        self.csy = small("conv stride", stride.0)?;
        self.csx = small("conv stride", stride.1)?;
        Ok(self)
    }
}
