//! Bad configurations and bad inputs return typed errors that say what is wrong — never panics.

use blurpool::presets::{antialiased_cnns, composer, kornia, timm};
use blurpool::{
    reference, Activation, Axis, Blur, BlurConv2d, BlurPool2d, Conv2dArgs, Conv2dSpec,
    ConvBlurPool2d, DType, Error, Filter, Layout, MaxBlurPool2d, MaxPool2d, Pad2d, PadMode, Shape4,
    MAX_TAPS,
};

fn blur3(stride: (usize, usize), mode: PadMode) -> Blur {
    Blur::new(
        Filter::binomial(3).unwrap(),
        stride,
        Pad2d::uniform(1),
        mode,
    )
    .unwrap()
}

#[test]
fn filter_sizes_and_taps() {
    assert!(matches!(Filter::binomial(0), Err(Error::BinomialSize(0))));
    assert!(matches!(Filter::binomial(8), Err(Error::BinomialSize(8))));
    assert!(matches!(
        Filter::symmetric(&[]),
        Err(Error::FilterSize { size: 0, .. })
    ));
    let long = vec![1.0; MAX_TAPS + 1];
    assert!(
        matches!(Filter::symmetric(&long), Err(Error::FilterSize { size, max }) if size == MAX_TAPS + 1 && max == MAX_TAPS)
    );
    assert!(matches!(
        Filter::separable(&[1.0, f64::NAN], &[1.0]),
        Err(Error::NonFiniteTap { index: 1, .. })
    ));
    assert!(matches!(
        Filter::unnormalized(&[1.0], &[f64::INFINITY]),
        Err(Error::NonFiniteTap { index: 0, .. })
    ));
    assert!(matches!(
        Filter::symmetric(&[1.0, -1.0]),
        Err(Error::ZeroTapSum)
    ));
    // Zero-sum taps are fine when used as given (e.g. a derivative filter).
    assert!(Filter::unnormalized(&[1.0, -1.0], &[1.0]).is_ok());
}

#[test]
fn strides_and_windows() {
    let f = Filter::binomial(3).unwrap();
    assert!(matches!(
        Blur::new(f.clone(), (0, 2), Pad2d::default(), PadMode::Zero),
        Err(Error::ZeroStride { axis: Axis::Height })
    ));
    assert!(matches!(
        Blur::new(f, (2, 0), Pad2d::default(), PadMode::Zero),
        Err(Error::ZeroStride { axis: Axis::Width })
    ));
    assert!(matches!(
        MaxPool2d::new((0, 2), (0, 0)),
        Err(Error::ZeroWindow {
            axis: Axis::Height,
            ..
        })
    ));
    assert!(matches!(
        MaxPool2d::new((2, 2), (0, 2)),
        Err(Error::MaxPoolPadding {
            axis: Axis::Width,
            pad: 2,
            kernel: 2
        })
    ));
    assert!(MaxPool2d::new((3, 3), (1, 1)).is_ok());
    assert!(matches!(
        antialiased_cnns::blur_pool(PadMode::Reflect, 4, 0, 0),
        Err(Error::ZeroStride { .. })
    ));
    assert!(matches!(
        antialiased_cnns::blur_pool(PadMode::Reflect, 9, 2, 0),
        Err(Error::BinomialSize(9))
    ));
    assert!(matches!(
        antialiased_cnns::blur_pool(PadMode::Reflect, 3, 2, -2),
        Err(Error::NegativePadding { .. })
    ));
    assert!(matches!(
        composer::blur_2d((2, 2), Some((&[1.0, 1.0], &[1.0]))),
        Err(Error::UnknownName { .. })
    ));
}

#[test]
fn reflect_padding_must_be_smaller_than_the_map() {
    // antialiased-cnns#47: filt 4 on a 2×2 map pads by 2 — PyTorch crashes, we say why.
    let op = antialiased_cnns::blur_pool(PadMode::Reflect, 4, 2, 0).unwrap();
    let err = op.output_shape(Shape4::new(64, 512, 2, 2)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ReflectPadTooLarge {
                axis: Axis::Height,
                pad: 2,
                size: 2
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("reflect padding 2"), "{err}");
    // The same op is fine on 3×3, and replicate/zero are fine on 2×2.
    assert!(op.output_shape(Shape4::new(1, 1, 3, 3)).is_ok());
    assert!(antialiased_cnns::blur_pool(PadMode::Zero, 4, 2, 0)
        .unwrap()
        .output_shape(Shape4::new(1, 1, 2, 2))
        .is_ok());
    // In MaxBlurPool the reflect applies to the max map (one smaller than the input here).
    let mbp = antialiased_cnns::max_blur_pool(2, 0, PadMode::Reflect, 4, 2, 0).unwrap();
    assert!(matches!(
        mbp.output_shape(Shape4::new(1, 1, 3, 8)),
        Err(Error::ReflectPadTooLarge {
            axis: Axis::Height,
            ..
        })
    ));
}

#[test]
fn inputs_too_small_or_empty() {
    let op = BlurPool2d::new(
        Blur::new(
            Filter::binomial(5).unwrap(),
            (2, 2),
            Pad2d::default(),
            PadMode::Zero,
        )
        .unwrap(),
    );
    assert!(matches!(
        op.output_shape(Shape4::new(1, 1, 4, 9)),
        Err(Error::InputTooSmall {
            axis: Axis::Height,
            size: 4,
            ..
        })
    ));
    assert!(matches!(
        op.output_shape(Shape4::new(1, 0, 9, 9)),
        Err(Error::ZeroDim { .. })
    ));
    assert!(matches!(
        op.output_shape(Shape4::new(1, 1, 9, 0)),
        Err(Error::ZeroDim { .. })
    ));
    // An empty batch is valid and gives an empty output.
    assert_eq!(
        op.output_shape(Shape4::new(0, 3, 9, 9)).unwrap(),
        Shape4::new(0, 3, 3, 3)
    );
    let max = MaxPool2d::new((3, 3), (0, 0)).unwrap();
    assert!(matches!(
        max.output_shape(Shape4::new(1, 1, 2, 5)),
        Err(Error::InputTooSmall { .. })
    ));
    let huge = Shape4::new(usize::MAX / 2, 4, 4, 4);
    assert!(matches!(
        op.output_shape(huge),
        Err(Error::ShapeOverflow(_))
    ));
}

#[test]
fn convolution_geometry() {
    let id = Activation::Identity;
    assert!(matches!(
        Conv2dSpec::new(Conv2dArgs {
            in_channels: 6,
            out_channels: 4,
            kernel: (3, 3),
            padding: (1, 1),
            groups: 4,
            bias: false,
            activation: id
        }),
        Err(Error::Conv(_))
    ));
    assert!(matches!(
        Conv2dSpec::new(Conv2dArgs {
            in_channels: 4,
            out_channels: 6,
            kernel: (3, 3),
            padding: (1, 1),
            groups: 0,
            bias: false,
            activation: id
        }),
        Err(Error::Conv(_))
    ));
    assert!(matches!(
        Conv2dSpec::new(Conv2dArgs {
            in_channels: 0,
            out_channels: 6,
            kernel: (3, 3),
            padding: (1, 1),
            groups: 1,
            bias: false,
            activation: id
        }),
        Err(Error::Conv(_))
    ));
    assert!(matches!(
        Conv2dSpec::new(Conv2dArgs {
            in_channels: 4,
            out_channels: 4,
            kernel: (3, 0),
            padding: (1, 1),
            groups: 1,
            bias: false,
            activation: id
        }),
        Err(Error::ZeroWindow {
            axis: Axis::Width,
            ..
        })
    ));
    let spec = Conv2dSpec::new(Conv2dArgs {
        in_channels: 4,
        out_channels: 8,
        kernel: (3, 3),
        padding: (1, 1),
        groups: 2,
        bias: true,
        activation: Activation::Relu,
    })
    .unwrap();
    assert_eq!(spec.weight_len(), 8 * 2 * 9);
    assert_eq!(spec.bias_len(), 8);
    let op = ConvBlurPool2d::new(spec, blur3((2, 2), PadMode::Reflect));
    assert!(matches!(
        op.output_shape(Shape4::new(1, 3, 8, 8)),
        Err(Error::ChannelMismatch {
            expected: 4,
            got: 3
        })
    ));
    assert_eq!(
        op.output_shape(Shape4::new(2, 4, 8, 8)).unwrap(),
        Shape4::new(2, 8, 4, 4)
    );
    // BlurConv2d subsamples in the conv: a strided blur is refused.
    assert!(matches!(
        BlurConv2d::new(blur3((2, 2), PadMode::Zero), spec, (2, 2)),
        Err(Error::Conv(_))
    ));
    assert!(matches!(
        BlurConv2d::new(blur3((1, 1), PadMode::Zero), spec, (0, 2)),
        Err(Error::ZeroStride { .. })
    ));
}

#[test]
fn names_parse_or_say_what_is_accepted() {
    assert_eq!("refl".parse::<PadMode>().unwrap(), PadMode::Reflect);
    assert_eq!("constant".parse::<PadMode>().unwrap(), PadMode::Zero);
    assert_eq!("repl".parse::<PadMode>().unwrap(), PadMode::Replicate);
    let err = "circular".parse::<PadMode>().unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnknownName {
                what: "pad mode",
                ..
            }
        ) && err.to_string().contains("reflect")
    );
    assert!(matches!(
        "gelu".parse::<Activation>(),
        Err(Error::UnknownName { .. })
    ));
    assert!(matches!(
        "f64".parse::<DType>(),
        Err(Error::UnknownName { .. })
    ));
    assert!(matches!(
        "nchwc".parse::<Layout>(),
        Err(Error::UnknownName { .. })
    ));
    assert_eq!("channels_last".parse::<Layout>().unwrap(), Layout::Nhwc);
}

#[test]
fn buffer_lengths_are_checked() {
    let op = kornia::max_blur_pool2d(3, 2, 2).unwrap();
    let shape = Shape4::new(1, 2, 6, 6);
    let out = op.output_shape(shape).unwrap();
    let x = vec![1f32; shape.numel().unwrap()];
    let mut y = vec![0f32; out.numel().unwrap()];
    assert!(matches!(
        reference::max_blur_pool(&op, shape, Layout::Nchw, &x[1..], &mut y),
        Err(Error::BufferLength { what: "input", .. })
    ));
    let mut short = vec![0f32; y.len() - 1];
    assert!(matches!(
        reference::max_blur_pool(&op, shape, Layout::Nchw, &x, &mut short),
        Err(Error::BufferLength { what: "output", .. })
    ));
    let spec = Conv2dSpec::new(Conv2dArgs {
        in_channels: 2,
        out_channels: 2,
        kernel: (3, 3),
        padding: (1, 1),
        groups: 1,
        bias: true,
        activation: Activation::Identity,
    })
    .unwrap();
    let cbp = timm::conv_blur_pool(spec, 3, 2, PadMode::Reflect).unwrap();
    let out = cbp.output_shape(shape).unwrap();
    let mut y = vec![0f32; out.numel().unwrap()];
    let w = vec![0.5f32; spec.weight_len()];
    assert!(matches!(
        reference::conv_blur_pool(
            &cbp,
            shape,
            Layout::Nchw,
            &x,
            &w[1..],
            Some(&[0.0, 0.0]),
            &mut y
        ),
        Err(Error::BufferLength { what: "weight", .. })
    ));
    assert!(matches!(
        reference::conv_blur_pool(&cbp, shape, Layout::Nchw, &x, &w, None, &mut y),
        Err(Error::BufferLength { what: "bias", .. })
    ));
}

#[test]
fn max_blur_pool_composes_its_checks() {
    let max = MaxPool2d::new((2, 2), (0, 0)).unwrap();
    let op = MaxBlurPool2d::new(max, blur3((2, 2), PadMode::Reflect));
    assert_eq!(
        op.max_map_shape(Shape4::new(1, 1, 5, 5)).unwrap(),
        Shape4::new(1, 1, 4, 4)
    );
    assert_eq!(
        op.output_shape(Shape4::new(1, 1, 5, 5)).unwrap(),
        Shape4::new(1, 1, 2, 2)
    );
    // Max map 1×1 and reflect padding 1: refused with the map's size in the message.
    let err = op.output_shape(Shape4::new(1, 1, 2, 2)).unwrap_err();
    assert!(
        matches!(err, Error::ReflectPadTooLarge { size: 1, .. }),
        "{err:?}"
    );
}
