//! `--plot FILE.png`: delivered and produced events/s (top) and p50/p99 latency (bottom) per
//! second. Text is drawn with ab_glyph from a TrueType file read at run time (Debian's
//! `fonts-dejavu-core` or `fonts-liberation`); without one the chart is drawn without labels.

use plotters::prelude::*;

use crate::report::Summary;

/// A named, coloured series of (seconds, value).
type Line<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

fn load_font() -> bool {
    for path in FONTS {
        if let Ok(bytes) = std::fs::read(path) {
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                return true;
            }
        }
    }
    false
}

pub fn draw(s: &Summary, file: &str) -> Result<(), String> {
    let text = load_font();
    if !text {
        eprintln!(
            "note: no font found ({}); the plot has no labels",
            FONTS.join(", ")
        );
    }
    let rows = &s.timeline;
    if rows.is_empty() {
        return Err("nothing to plot (no per-second samples)".into());
    }
    let root = BitMapBackend::new(file, (1000, 700)).into_drawing_area();
    let e = |e: DrawingAreaErrorKind<_>| format!("{e:?}");
    root.fill(&WHITE).map_err(e)?;
    let (top, bottom) = root.split_vertically(350);
    let t_max = rows.last().map_or(1.0, |r| r.t_s).max(1.0);
    let rate_max = rows
        .iter()
        .map(|r| r.delivered_per_s.max(r.produced_per_s))
        .fold(1.0, f64::max)
        * 1.1;
    let lat_max = rows
        .iter()
        .map(|r| r.p99_us as f64 / 1000.0)
        .fold(0.1, f64::max)
        * 1.1;
    let caption = format!(
        "{} vs {} — MQTT {} QoS {} {} {} B",
        s.scenario, s.label, s.mqtt_version, s.qos, s.mode, s.payload_bytes
    );
    let series = |area: &DrawingArea<BitMapBackend, _>,
                  title: &str,
                  y_max: f64,
                  lines: Vec<Line<'_>>|
     -> Result<(), String> {
        let mut b = ChartBuilder::on(area);
        b.margin(10);
        if text {
            b.caption(title, ("sans-serif", 18))
                .x_label_area_size(30)
                .y_label_area_size(70);
        }
        let mut chart = b
            .build_cartesian_2d(0.0..t_max, 0.0..y_max)
            .map_err(|e| format!("{e:?}"))?;
        let mut mesh = chart.configure_mesh();
        if text {
            mesh.x_desc("seconds");
        } else {
            mesh.disable_x_mesh().disable_y_mesh();
        }
        mesh.draw().map_err(|e| format!("{e:?}"))?;
        for (name, color, points) in lines {
            let s = chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(|e| format!("{e:?}"))?;
            if text {
                s.label(name).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            }
        }
        if text {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| format!("{e:?}"))?;
        }
        Ok(())
    };
    series(
        &top,
        &format!("{caption}: events/s"),
        rate_max,
        vec![
            (
                "delivered/s",
                BLUE,
                rows.iter().map(|r| (r.t_s, r.delivered_per_s)).collect(),
            ),
            (
                "produced/s",
                GREEN,
                rows.iter().map(|r| (r.t_s, r.produced_per_s)).collect(),
            ),
        ],
    )?;
    series(
        &bottom,
        "latency, ms (per second)",
        lat_max,
        vec![
            (
                "p50",
                BLUE,
                rows.iter()
                    .map(|r| (r.t_s, r.p50_us as f64 / 1000.0))
                    .collect(),
            ),
            (
                "p99",
                RED,
                rows.iter()
                    .map(|r| (r.t_s, r.p99_us as f64 / 1000.0))
                    .collect(),
            ),
        ],
    )?;
    root.present()
        .map_err(|e| format!("writing {file}: {e:?}"))?;
    Ok(())
}
