//! Presets that reproduce each library's padding, defaults and output sizes, so a user porting
//! a model gets that model's numbers without working the geometry out (docs/SPEC.md,
//! "Compatibility presets"). Each is checked against the library's own output by the golden
//! tests (tests/golden.rs).
//!
//! ```
//! use blurpool::{presets, PadMode, Shape4};
//! let x = Shape4::new(1, 64, 112, 112);
//! // The same 4-tap blur, two libraries' paddings: antialiased-cnns keeps ⌈H/2⌉,
//! // timm's symmetric padding gives one more for even filters.
//! let aa = presets::antialiased_cnns::blur_pool(PadMode::Reflect, 4, 2, 0)?;
//! let timm = presets::timm::blur_pool2d(4, 2, PadMode::Reflect)?;
//! assert_eq!(aa.output_shape(x)?.h, 56);
//! assert_eq!(timm.output_shape(x)?.h, 57);
//! # Ok::<(), blurpool::Error>(())
//! ```

use crate::error::{Error, Result};
use crate::ops::{
    Blur, BlurConv2d, BlurPool2d, Conv2dSpec, ConvBlurPool2d, Filter, MaxBlurPool2d, MaxPool2d,
    Pad2d, PadMode,
};

/// adobe/antialiased-cnns (`antialiased_cnns.BlurPool`, and the MaxPool2d(k, 1) → BlurPool and
/// conv(s1) → act → BlurPool patterns of its models).
pub mod antialiased_cnns {
    use super::*;

    /// The package's default `filt_size` (4 since 2020; the paper's models used 3 and 5).
    pub const DEFAULT_FILT_SIZE: usize = 4;

    /// The blur stage of `BlurPool(channels, pad_type, filt_size, stride, pad_off)`: binomial
    /// taps 1..=7, padding ⌊(F−1)/2⌋+pad_off before and ⌈(F−1)/2⌉+pad_off after.
    pub fn blur(pad_type: PadMode, filt_size: usize, stride: usize, pad_off: i64) -> Result<Blur> {
        let filter = Filter::binomial(filt_size)?; // so filt_size ≤ 7 below
        let f = filt_size as i128;
        let before = (f - 1) / 2 + pad_off as i128;
        let after = f / 2 + pad_off as i128; // ⌈(F−1)/2⌉ = ⌊F/2⌋
        let mut pads = [0usize; 2];
        for (slot, (side, v)) in pads
            .iter_mut()
            .zip([("top/left", before), ("bottom/right", after)])
        {
            if v < 0 {
                return Err(Error::NegativePadding {
                    side,
                    value: v.max(i64::MIN as i128) as i64,
                });
            }
            *slot = crate::error::at_most(
                "antialiased-cnns padding (⌊(F−1)/2⌋ + pad_off)",
                v as u128,
                crate::ops::MAX_EXTENT,
            )?;
        }
        let pad = Pad2d::before_after(pads[0], pads[1]);
        Blur::new(filter, (stride, stride), pad, pad_type)
    }

    /// `BlurPool(C, pad_type, filt_size, stride, pad_off)`.
    pub fn blur_pool(
        pad_type: PadMode,
        filt_size: usize,
        stride: usize,
        pad_off: i64,
    ) -> Result<BlurPool2d> {
        Ok(BlurPool2d::new(blur(pad_type, filt_size, stride, pad_off)?))
    }

    /// `nn.Sequential(nn.MaxPool2d(max_kernel, stride=1, padding=max_padding), BlurPool(...))`,
    /// e.g. (2, 0) in VGG/ResNet, (3, 1) in DenseNet, (3, 0) in AlexNet.
    pub fn max_blur_pool(
        max_kernel: usize,
        max_padding: usize,
        pad_type: PadMode,
        filt_size: usize,
        stride: usize,
        pad_off: i64,
    ) -> Result<MaxBlurPool2d> {
        let max = MaxPool2d::new((max_kernel, max_kernel), (max_padding, max_padding))?;
        Ok(MaxBlurPool2d::new(
            max,
            blur(pad_type, filt_size, stride, pad_off)?,
        ))
    }

    /// conv(stride 1) → act → `BlurPool(Cout, ...)` (ResNet blocks, MobileNetV2, AlexNet).
    pub fn conv_blur_pool(
        conv: Conv2dSpec,
        pad_type: PadMode,
        filt_size: usize,
        stride: usize,
        pad_off: i64,
    ) -> Result<ConvBlurPool2d> {
        Ok(ConvBlurPool2d::new(
            conv,
            blur(pad_type, filt_size, stride, pad_off)?,
        ))
    }
}

/// kornia (`kornia.filters.blur_pool2d`, `max_blur_pool2d`; 0.9): zero padding ⌊(F−1)/2⌋
/// before and ⌊F/2⌋ after (so the output is ⌈H/s⌉ for every F), square binomial kernels.
pub mod kornia {
    use super::*;

    /// kornia's default `max_pool_size`.
    pub const DEFAULT_MAX_POOL_SIZE: usize = 2;

    fn blur(kernel_size: usize, stride: usize) -> Result<Blur> {
        let before = kernel_size.max(1).saturating_sub(1) / 2;
        let pad = Pad2d::before_after(before, kernel_size / 2);
        Blur::new(
            Filter::binomial(kernel_size)?,
            (stride, stride),
            pad,
            PadMode::Zero,
        )
    }

    /// `blur_pool2d(x, kernel_size, stride)`.
    pub fn blur_pool2d(kernel_size: usize, stride: usize) -> Result<BlurPool2d> {
        Ok(BlurPool2d::new(blur(kernel_size, stride)?))
    }

    /// `max_blur_pool2d(x, kernel_size, stride, max_pool_size)` (`ceil_mode` has no effect in
    /// kornia: the max runs at stride 1 without padding).
    pub fn max_blur_pool2d(
        kernel_size: usize,
        stride: usize,
        max_pool_size: usize,
    ) -> Result<MaxBlurPool2d> {
        let max = MaxPool2d::new((max_pool_size, max_pool_size), (0, 0))?;
        Ok(MaxBlurPool2d::new(max, blur(kernel_size, stride)?))
    }
}

/// timm (`timm.layers.BlurPool2d`): symmetric padding ⌊((s−1)+(F−1))/2⌋ on every side,
/// `pad_mode` 'reflect' (default) or 'constant'.
pub mod timm {
    use super::*;

    /// timm's default `filt_size`.
    pub const DEFAULT_FILT_SIZE: usize = 3;

    /// The blur stage of `BlurPool2d(channels, filt_size, stride, pad_mode)`.
    pub fn blur(filt_size: usize, stride: usize, pad_mode: PadMode) -> Result<Blur> {
        let filter = Filter::binomial(filt_size)?;
        // u128: a stride near usize::MAX is refused by Blur::new, not wrapped here.
        let p = (stride.max(1) as u128 - 1 + (filt_size as u128 - 1)) / 2;
        let p = crate::error::at_most(
            "timm's padding ((s−1) + (F−1))/2",
            p,
            crate::ops::MAX_EXTENT,
        )?;
        Blur::new(filter, (stride, stride), Pad2d::uniform(p), pad_mode)
    }

    /// `BlurPool2d(channels, filt_size, stride, pad_mode)`.
    pub fn blur_pool2d(filt_size: usize, stride: usize, pad_mode: PadMode) -> Result<BlurPool2d> {
        Ok(BlurPool2d::new(blur(filt_size, stride, pad_mode)?))
    }

    /// `ConvNormAct`/ResNet blocks with `aa_layer`: conv(stride 1) → act → BlurPool2d.
    pub fn conv_blur_pool(
        conv: Conv2dSpec,
        filt_size: usize,
        stride: usize,
        pad_mode: PadMode,
    ) -> Result<ConvBlurPool2d> {
        Ok(ConvBlurPool2d::new(
            conv,
            blur(filt_size, stride, pad_mode)?,
        ))
    }
}

/// mosaicml/composer (`blur_2d`, `blurmax_pool2d`, `BlurConv2d`): zero padding ⌊F/2⌋, odd
/// filters only; the default is `[1,2,1]⊗[1,2,1]/16`; custom taps are used as given.
pub mod composer {
    use super::*;

    /// Separable custom taps (vertical, horizontal), used unnormalised as composer does.
    pub type Taps<'a> = (&'a [f64], &'a [f64]);

    fn blur(stride: (usize, usize), filter: Option<Taps<'_>>) -> Result<Blur> {
        let filter = match filter {
            None => Filter::binomial(3)?,
            Some((ty, tx)) => {
                let f = Filter::unnormalized(ty, tx)?;
                for size in [f.size_y(), f.size_x()] {
                    if size % 2 == 0 {
                        return Err(Error::UnknownName {
                            what: "composer filter size",
                            got: size.to_string(),
                            expected: "odd sizes only (composer pads ⌊F/2⌋ per side)",
                        });
                    }
                }
                f
            }
        };
        let (py, px) = (filter.size_y() / 2, filter.size_x() / 2);
        let pad = Pad2d {
            top: py,
            bottom: py,
            left: px,
            right: px,
        };
        Blur::new(filter, stride, pad, PadMode::Zero)
    }

    /// `blur_2d(x, stride, filter)`.
    pub fn blur_2d(stride: (usize, usize), filter: Option<Taps<'_>>) -> Result<BlurPool2d> {
        Ok(BlurPool2d::new(blur(stride, filter)?))
    }

    /// `blurmax_pool2d(x, kernel_size, stride, padding, filter=...)` (dilation 1; the max runs
    /// at stride 1 with −∞ padding, `ceil_mode` is not honoured by composer either).
    pub fn blurmax_pool2d(
        kernel_size: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
        filter: Option<Taps<'_>>,
    ) -> Result<MaxBlurPool2d> {
        Ok(MaxBlurPool2d::new(
            MaxPool2d::new(kernel_size, padding)?,
            blur(stride, filter)?,
        ))
    }

    /// `BlurConv2d(..., blur_first)`: which fused operator it is.
    #[derive(Debug, Clone, PartialEq)]
    pub enum BlurConv {
        /// `blur_first=True` (the default): blur at stride 1, then the strided conv.
        BlurFirst(BlurConv2d),
        /// `blur_first=False`: conv at stride 1, then blur with the stride (no activation between).
        ConvFirst(ConvBlurPool2d),
    }

    /// `BlurConv2d(in, out, kernel_size, stride, padding, groups, bias, blur_first)` with the
    /// default filter; `conv` carries channels, kernel, padding, groups, bias.
    pub fn blur_conv2d(
        conv: Conv2dSpec,
        stride: (usize, usize),
        blur_first: bool,
    ) -> Result<BlurConv> {
        if blur_first {
            Ok(BlurConv::BlurFirst(BlurConv2d::new(
                blur((1, 1), None)?,
                conv,
                stride,
            )?))
        } else {
            Ok(BlurConv::ConvFirst(ConvBlurPool2d::new(
                conv,
                blur(stride, None)?,
            )))
        }
    }
}
