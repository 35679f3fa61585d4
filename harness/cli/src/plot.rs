//! PNG learning curves of a training report (plotters, with an embedded DejaVu Sans font so
//! no system font is needed).

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use supo_core::fs::write_atomic;
use supo_train::Report;

const FONT: &str = "sans-serif";

fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // DejaVu Sans is a valid TrueType font; a failure here would be a packaging bug.
        let _ = register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
    });
}

/// The moving average of `ys` over `window` points.
fn smooth(ys: &[f64], window: usize) -> Vec<f64> {
    (0..ys.len())
        .map(|i| {
            let lo = i.saturating_sub(window - 1);
            ys[lo..=i].iter().sum::<f64>() / (i + 1 - lo) as f64
        })
        .collect()
}

/// Draws each arm's training success and SUPO's facts-kept share per RL step; writes the PNG
/// atomically.
pub fn learning_curves(report: &Report, path: &Path) -> Result<(), String> {
    register();
    let (w, h) = (900u32, 520u32);
    let mut pixels = vec![0u8; (w * h * 3) as usize];
    let err = |e: &dyn std::fmt::Display| format!("cannot draw the learning curves: {e}");
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let steps = report
            .arms
            .iter()
            .map(|a| a.curve.len())
            .max()
            .unwrap_or(1)
            .max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "SUPO vs GRPO on the ledger task (training rollouts)",
                (FONT, 22),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(1f64..steps as f64, 0f64..1f64)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("RL step")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_desc("success (moving average of 5 steps)")
            .label_style((FONT, 14))
            .draw()
            .map_err(|e| err(&e))?;
        let colors = [RED, BLUE, GREEN];
        for (arm, color) in report.arms.iter().zip(colors) {
            let ys: Vec<f64> = arm.curve.iter().map(|p| p.success).collect();
            let pts: Vec<(f64, f64)> = arm
                .curve
                .iter()
                .zip(smooth(&ys, 5))
                .map(|(p, y)| (p.step as f64, y))
                .collect();
            let label = format!(
                "{} (W={}, S={})",
                arm.name, arm.working_context, arm.max_summaries
            );
            chart
                .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                .map_err(|e| err(&e))?
                .label(label)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color));
        }
        if let Some(supo) = report.arms.iter().find(|a| a.name == "supo_w") {
            let ys: Vec<f64> = supo
                .curve
                .iter()
                .map(|p| p.facts_kept.unwrap_or(0.0))
                .collect();
            let pts: Vec<(f64, f64)> = supo
                .curve
                .iter()
                .zip(smooth(&ys, 5))
                .map(|(p, y)| (p.step as f64, y))
                .collect();
            let style = BLACK.mix(0.6).stroke_width(1);
            chart
                .draw_series(LineSeries::new(pts, style))
                .map_err(|e| err(&e))?
                .label("supo_w: queried facts kept in summaries")
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .label_font((FONT, 14))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    let mut png = Vec::new();
    let image = image::RgbImage::from_raw(w, h, pixels).ok_or("bad image buffer")?;
    image
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| err(&e))?;
    write_atomic(path, &png).map_err(|e| format!("cannot write {}: {e}", path.display()))
}
