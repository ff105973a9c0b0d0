//! A small server-side SVG line plot: a few series of `(x, y)` points on shared linear axes,
//! with ticks, a legend and one `<circle class="pt">` marker per point (so a page shows, and a
//! test can count, exactly the points it was given). No JavaScript, no plotting crate.

use std::fmt::Write;

use super::html::escape;

/// One line of a plot.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend text and the marker's `data-series` attribute.
    pub name: String,
    /// CSS colour of the line and markers.
    pub color: &'static str,
    /// Dashed line (e.g. a projection rather than history).
    pub dashed: bool,
    /// The points, in drawing order; non-finite ones are skipped.
    pub points: Vec<(f64, f64)>,
}

/// A line plot of one or more [`Series`].
#[derive(Clone, Debug, PartialEq)]
pub struct LinePlot {
    /// `id` of the `<svg>` element.
    pub id: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// The lines.
    pub series: Vec<Series>,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

const MARGIN_LEFT: f64 = 78.0;
const MARGIN_RIGHT: f64 = 16.0;
const MARGIN_TOP: f64 = 28.0;
const MARGIN_BOTTOM: f64 = 44.0;
const TICKS: usize = 5;
/// Approximate width of one legend character at font size 11.
const LEGEND_CHAR_WIDTH: f64 = 6.2;

impl LinePlot {
    /// A plot `id` of `width × height` pixels with axis labels and no series yet.
    pub fn new(id: &str, x_label: &str, y_label: &str, width: u32, height: u32) -> Self {
        Self {
            id: id.to_string(),
            x_label: x_label.to_string(),
            y_label: y_label.to_string(),
            series: Vec::new(),
            width,
            height,
        }
    }

    /// Adds a series.
    pub fn with(mut self, series: Series) -> Self {
        self.series.push(series);
        self
    }

    /// The finite data range `(x_min, x_max, y_min, y_max)`, widened so no side is empty;
    /// `None` without any finite point.
    fn bounds(&self) -> Option<(f64, f64, f64, f64)> {
        let mut it = self
            .series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|(x, y)| x.is_finite() && y.is_finite());
        let &(x0, y0) = it.next()?;
        let (mut x_min, mut x_max, mut y_min, mut y_max) = (x0, x0, y0, y0);
        for &(x, y) in it {
            x_min = x_min.min(x);
            x_max = x_max.max(x);
            y_min = y_min.min(y);
            y_max = y_max.max(y);
        }
        if x_max - x_min <= f64::EPSILON * x_max.abs().max(1.0) {
            x_min -= 1.0;
            x_max += 1.0;
        }
        let pad = if y_max - y_min <= f64::EPSILON * y_max.abs().max(1.0) {
            y_max.abs().max(1.0) * 0.01
        } else {
            (y_max - y_min) * 0.05
        };
        Some((x_min, x_max, y_min - pad, y_max + pad))
    }

    /// The SVG element.
    pub fn render(&self) -> String {
        let (w, h) = (f64::from(self.width.max(200)), f64::from(self.height.max(120)));
        let mut out = String::new();
        let _ = write!(
            out,
            "<svg id=\"{}\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
             viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"11\" role=\"img\">\
             <rect width=\"{w}\" height=\"{h}\" fill=\"#fff\"/>",
            escape(&self.id)
        );
        let Some((x_min, x_max, y_min, y_max)) = self.bounds() else {
            let _ = write!(
                out,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#5b6676\">no data yet</text></svg>",
                w / 2.0,
                h / 2.0
            );
            return out;
        };
        let (left, right, top, bottom) =
            (MARGIN_LEFT, w - MARGIN_RIGHT, MARGIN_TOP, h - MARGIN_BOTTOM);
        let sx = |x: f64| left + (x - x_min) / (x_max - x_min) * (right - left);
        let sy = |y: f64| bottom - (y - y_min) / (y_max - y_min) * (bottom - top);
        // Grid, ticks and labels.
        for i in 0..=TICKS {
            let f = i as f64 / TICKS as f64;
            let (yv, xv) = (y_min + f * (y_max - y_min), x_min + f * (x_max - x_min));
            let (py, px) = (sy(yv), sx(xv));
            let _ = write!(
                out,
                "<line x1=\"{left:.1}\" y1=\"{py:.1}\" x2=\"{right:.1}\" y2=\"{py:.1}\" stroke=\"#e3e6ea\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#5b6676\">{}</text>\
                 <text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#5b6676\">{}</text>",
                left - 6.0,
                py + 4.0,
                tick_label(yv),
                bottom + 16.0,
                tick_label(xv)
            );
        }
        let _ = write!(
            out,
            "<rect x=\"{left:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"none\" stroke=\"#9aa4b2\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\
             <text x=\"14\" y=\"{:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {:.1})\">{}</text>",
            right - left,
            bottom - top,
            (left + right) / 2.0,
            h - 8.0,
            escape(&self.x_label),
            (top + bottom) / 2.0,
            (top + bottom) / 2.0,
            escape(&self.y_label)
        );
        let mut legend_x = left;
        for s in &self.series {
            let name = escape(&s.name);
            let points: Vec<(f64, f64)> = s
                .points
                .iter()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .map(|&(x, y)| (sx(x), sy(y)))
                .collect();
            let path: Vec<String> = points.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
            let dash = if s.dashed { " stroke-dasharray=\"5 4\"" } else { "" };
            let _ = write!(
                out,
                "<g class=\"series\" data-series=\"{name}\"><polyline fill=\"none\" stroke=\"{}\" \
                 stroke-width=\"1.6\"{dash} points=\"{}\"/>",
                s.color,
                path.join(" ")
            );
            for (x, y) in &points {
                let _ = write!(
                    out,
                    "<circle class=\"pt\" data-series=\"{name}\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"2.2\" fill=\"{}\"/>",
                    s.color
                );
            }
            // Legend: one row above the frame, entries side by side.
            let label = format!("{} ({} points)", s.name, points.len());
            let _ = write!(
                out,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"12\" height=\"3\" fill=\"{}\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\">{}</text></g>",
                legend_x,
                top - 13.0,
                s.color,
                legend_x + 16.0,
                top - 9.0,
                escape(&label)
            );
            legend_x += 16.0 + LEGEND_CHAR_WIDTH * label.chars().count() as f64 + 18.0;
        }
        out.push_str("</svg>");
        out
    }
}

/// A compact tick label: integers as such, others with up to four significant decimals.
fn tick_label(v: f64) -> String {
    if v.abs() >= 1e9 {
        return format!("{v:.3e}");
    }
    if (v - v.round()).abs() < 1e-9 || v.abs() >= 1000.0 {
        return format!("{}", v.round() as i64);
    }
    let s = format!("{v:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(name: &str, points: Vec<(f64, f64)>) -> Series {
        Series { name: name.into(), color: "#123", dashed: false, points }
    }

    fn count(svg: &str, needle: &str) -> usize {
        svg.matches(needle).count()
    }

    #[test]
    fn one_marker_per_finite_point_per_series() {
        let plot = LinePlot::new("p", "height", "loss", 600, 300)
            .with(series("a", (0..31).map(|h| (f64::from(h), 5.0 - f64::from(h) * 0.01)).collect()))
            .with(series("b", vec![(0.0, 1.0), (f64::NAN, 2.0), (2.0, f64::INFINITY), (3.0, 4.0)]));
        let svg = plot.render();
        assert!(svg.starts_with("<svg id=\"p\"") && svg.ends_with("</svg>"));
        assert_eq!(count(&svg, "<circle class=\"pt\" data-series=\"a\""), 31);
        assert_eq!(count(&svg, "<circle class=\"pt\" data-series=\"b\""), 2, "non-finite skipped");
        assert!(svg.contains("a (31 points)") && svg.contains("b (2 points)"));
    }

    #[test]
    fn points_map_into_the_frame_with_the_y_axis_pointing_up() {
        let svg = LinePlot::new("p", "x", "y", 400, 200)
            .with(series("s", vec![(0.0, 0.0), (10.0, 100.0)]))
            .render();
        let cxy: Vec<(f64, f64)> = svg
            .split("<circle ")
            .skip(1)
            .map(|c| {
                let attr = |k: &str| -> f64 {
                    let start = c.find(&format!("{k}=\"")).unwrap() + k.len() + 2;
                    c[start..].split('"').next().unwrap().parse().unwrap()
                };
                (attr("cx"), attr("cy"))
            })
            .collect();
        assert_eq!(cxy.len(), 2);
        let (first, last) = (cxy[0], cxy[1]);
        assert!((first.0 - MARGIN_LEFT).abs() < 0.11, "x_min at the left edge: {first:?}");
        assert!((last.0 - (400.0 - MARGIN_RIGHT)).abs() < 0.11, "x_max at the right edge");
        assert!(last.1 < first.1, "larger y is higher on the page");
        for (x, y) in cxy {
            assert!((MARGIN_LEFT..=400.0 - MARGIN_RIGHT).contains(&x));
            assert!((MARGIN_TOP..=200.0 - MARGIN_BOTTOM).contains(&y));
        }
    }

    #[test]
    fn a_single_point_and_no_points_render() {
        let one = LinePlot::new("p", "x", "y", 300, 150).with(series("s", vec![(5.0, 5.0)]));
        let svg = one.render();
        assert_eq!(count(&svg, "class=\"pt\""), 1);
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
        let empty = LinePlot::new("p", "x", "y", 300, 150).with(series("s", vec![])).render();
        assert!(empty.contains("no data yet"));
        assert_eq!(count(&empty, "class=\"pt\""), 0);
    }

    #[test]
    fn labels_and_names_are_escaped() {
        let svg = LinePlot::new("<id>", "<x>", "y&", 300, 150)
            .with(series("<s>", vec![(0.0, 1.0), (1.0, 2.0)]))
            .render();
        assert!(!svg.contains("<x>") && !svg.contains("<s>") && !svg.contains("<id>"));
        assert!(svg.contains("&lt;x&gt;") && svg.contains("y&amp;") && svg.contains("&lt;s&gt;"));
    }

    #[test]
    fn dashed_series_are_dashed() {
        let mut s = series("proj", vec![(0.0, 1.0), (1.0, 2.0)]);
        s.dashed = true;
        let svg = LinePlot::new("p", "x", "y", 300, 150).with(s).render();
        assert!(svg.contains("stroke-dasharray"));
    }

    #[test]
    fn tick_labels_are_compact() {
        assert_eq!(tick_label(30.0), "30");
        assert_eq!(tick_label(5.25), "5.25");
        assert_eq!(tick_label(5_411_532.4), "5411532");
        assert_eq!(tick_label(2e12), "2.000e12");
    }
}
