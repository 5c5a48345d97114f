//! A run's steps as an inline SVG timeline: one row per step, a bar from its start to its end on a
//! shared time axis, and the downtime window (QuiesceSource start to VerifyDNS end) drawn across all
//! rows. Pure: a [`Run`] in, SVG text out; every string goes through [`super::html::escape`].

use super::html::escape;
use super::model::{Run, StepState};
use super::words;

const WIDTH: f64 = 1000.0;
const LABEL: f64 = 260.0;
const CHART: f64 = WIDTH - LABEL - 20.0;
const ROW: f64 = 22.0;
const TOP: f64 = 34.0;

/// The timeline of `run` as an `<svg>` element.
pub fn svg(run: &Run) -> String {
    let t0 = run.started.as_deref();
    let window = run.downtime.as_ref().map(|w| {
        let from = t0.and_then(|t0| words::seconds_between(t0, &w.start));
        let to = match (&w.end, w.seconds) {
            (Some(_), Some(seconds)) => from.map(|f| f + seconds),
            _ => None,
        };
        (from, to)
    });
    let end = run
        .steps
        .iter()
        .filter_map(|s| Some(s.offset? + s.seconds.unwrap_or(0.0)))
        .chain(window.and_then(|(_, to)| to))
        .fold(0.0_f64, f64::max);
    let span = if end > 0.0 { end } else { 1.0 };
    let x = |seconds: f64| LABEL + (seconds.max(0.0) / span) * CHART;
    let height = TOP + ROW * run.steps.len() as f64 + 10.0;
    let mut out = format!(
        "<svg class=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {height}\" \
         width=\"{WIDTH}\" height=\"{height}\" role=\"img\" aria-label=\"{}\">\n",
        escape(&format!("Timeline of {}", run.name))
    );
    // The axis: five ticks over the run.
    for tick in 0..=4 {
        let seconds = span * f64::from(tick) / 4.0;
        let at = x(seconds);
        out.push_str(&format!(
            "<line x1=\"{at:.1}\" y1=\"{}\" x2=\"{at:.1}\" y2=\"{:.1}\" class=\"tick\"/>\
             <text x=\"{at:.1}\" y=\"14\" class=\"axis\">{}</text>\n",
            TOP - 8.0,
            height - 6.0,
            escape(&words::duration(seconds))
        ));
    }
    if let Some((Some(from), to)) = window {
        let open = to.is_none();
        let to = to.unwrap_or(span);
        let label = match run.downtime.as_ref().and_then(|w| w.seconds) {
            Some(seconds) => format!("downtime {}", words::duration(seconds)),
            None => "downtime (still open)".to_string(),
        };
        out.push_str(&format!(
            "<rect class=\"downtime{}\" x=\"{:.1}\" y=\"{}\" width=\"{:.1}\" height=\"{:.1}\"/>\
             <text class=\"downtime-label\" x=\"{:.1}\" y=\"28\">{}</text>\n",
            if open { " open" } else { "" },
            x(from),
            TOP - 8.0,
            (x(to) - x(from)).max(2.0),
            ROW * run.steps.len() as f64 + 8.0,
            x(from) + 2.0,
            escape(&label)
        ));
    }
    for (row, step) in run.steps.iter().enumerate() {
        let y = TOP + ROW * row as f64;
        out.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" class=\"step {}\">{}</text>",
            LABEL - 8.0,
            y + 14.0,
            class(step.state),
            escape(&step.position)
        ));
        if let Some(offset) = step.offset {
            let width = (x(offset + step.seconds.unwrap_or(0.0)) - x(offset)).max(2.0);
            out.push_str(&format!(
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{width:.1}\" height=\"{:.1}\" class=\"bar {}\">\
                 <title>{}</title></rect>",
                x(offset),
                y + 3.0,
                ROW - 6.0,
                class(step.state),
                escape(&format!(
                    "{}: {}",
                    step.name,
                    step.seconds.map(words::duration).unwrap_or_default()
                ))
            ));
        }
        out.push('\n');
    }
    out.push_str("</svg>");
    out
}

/// The CSS class of a step's state.
pub fn class(state: StepState) -> &'static str {
    match state {
        StepState::Done => "done",
        StepState::Failed => "failed",
        StepState::Skipped => "skipped",
        StepState::Running => "running",
        StepState::NotStarted => "not-started",
    }
}
