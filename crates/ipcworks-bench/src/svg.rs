//! Pieces every chart of the HTML report draws with: text escaping, a
//! logarithmic axis and its decade labels.

/// Escapes text for HTML and SVG.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A logarithmic axis mapping `[lo, hi]` onto `[a, b]` pixels.
#[derive(Debug, Clone, Copy)]
pub struct LogAxis {
    lo: f64,
    hi: f64,
    a: f64,
    b: f64,
}

impl LogAxis {
    /// An axis covering `lo..hi` widened to whole decades.
    pub fn new(lo: f64, hi: f64, a: f64, b: f64) -> LogAxis {
        let lo = 10f64.powf(lo.max(1e-9).log10().floor());
        let hi = 10f64.powf(hi.max(lo * 10.0).log10().ceil());
        LogAxis { lo, hi, a, b }
    }

    /// An axis covering exactly `lo..hi`.
    pub fn exact(lo: f64, hi: f64, a: f64, b: f64) -> LogAxis {
        let lo = lo.max(1e-9);
        LogAxis {
            lo,
            hi: hi.max(lo * 1.01),
            a,
            b,
        }
    }

    /// Pixel position of `v` (clamped to the axis).
    pub fn pos(&self, v: f64) -> f64 {
        let v = v.clamp(self.lo, self.hi);
        let t = (v.log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10());
        self.a + t * (self.b - self.a)
    }

    /// The decades inside the axis.
    pub fn decades(&self) -> Vec<f64> {
        let mut v = Vec::new();
        let mut x = self.lo;
        while x <= self.hi * 1.0001 {
            v.push(x);
            x *= 10.0;
        }
        v
    }
}

/// Units of time (ns) and of rates (bytes/s) for axis labels.
pub(crate) const NS_UNITS: &[(f64, &str)] = &[(1.0, "ns"), (1e3, "µs"), (1e6, "ms"), (1e9, "s")];
pub(crate) const RATE_UNITS: &[(f64, &str)] = &[
    (1.0, "B/s"),
    (1e3, "kB/s"),
    (1e6, "MB/s"),
    (1e9, "GB/s"),
    (1e12, "TB/s"),
];

/// The label of an axis decade: `100 ns`, `1 µs`, `10 GB/s`.
pub fn decade_label(v: f64, units: &[(f64, &str)]) -> String {
    let (scale, unit) = units
        .iter()
        .rev()
        .find(|(scale, _)| v >= scale * 0.999)
        .unwrap_or(&units[0]);
    let x = v / scale;
    if x >= 0.999 {
        format!("{x:.0} {unit}")
    } else {
        format!("{x} {unit}")
    }
}
