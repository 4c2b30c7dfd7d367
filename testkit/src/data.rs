//! Random test data: never zero, both signs, exactly representable in every element type.

use blurpool::{Element, Operator, Shape4};
use rand::rngs::StdRng;
use rand::Rng;

/// The element types the harness handles: the library's [`Element`]s, which cudarc can also
/// copy to and from a device.
pub trait TestElement:
    Element + cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits + Unpin
{
}
impl<T: Element + cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits + Unpin> TestElement
    for T
{
}

/// Random values in ±[0.25, 2)·`scale`: never zero, both signs, rounded to T.
pub fn random_vec<T: Element>(rng: &mut StdRng, n: usize, scale: f64) -> Vec<T> {
    (0..n)
        .map(|_| {
            let m: f64 = rng.random_range(0.25..2.0);
            let s = if rng.random_bool(0.5) { -1.0 } else { 1.0 };
            T::from_f64(s * m * scale)
        })
        .collect()
}

/// A value no correct output takes, so an element the kernel fails to write is caught.
pub const POISON: f64 = -60000.0;

/// The inputs of one case, on the host: x, and for the conv operators weight and bias.
pub struct CaseData<T> {
    /// The input.
    pub x: Vec<T>,
    /// The conv weight (empty for the others).
    pub w: Vec<T>,
    /// The conv bias, when the conv has one.
    pub b: Option<Vec<T>>,
}

impl<T: Element> CaseData<T> {
    /// Random data for `op` on `shape` (weights scaled by 1.5/√fan_in).
    pub fn random(rng: &mut StdRng, op: &Operator, shape: Shape4) -> Self {
        let x = random_vec(rng, shape.numel().unwrap(), 1.0);
        let (w, b) = match op.conv() {
            Some(c) => {
                let fan_in = (c.in_channels() / c.groups() * c.kernel().0 * c.kernel().1) as f64;
                let w = random_vec(rng, c.weight_len(), 1.5 / fan_in.sqrt());
                let b = c.has_bias().then(|| random_vec(rng, c.bias_len(), 0.5));
                (w, b)
            }
            None => (Vec::new(), None),
        };
        CaseData { x, w, b }
    }
}
