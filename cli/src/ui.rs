//! What the commands share for a person at a terminal: progress bars.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

/// A progress bar on stderr when a person is watching (stdout and stderr are terminals), and a
/// hidden one otherwise, so piped output stays clean.
pub(crate) fn progress_bar(len: Option<u64>, what: &str) -> ProgressBar {
    if !(std::io::stdout().is_terminal() && std::io::stderr().is_terminal()) {
        return ProgressBar::hidden();
    }
    let bar = match len {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    let template = match len {
        Some(_) => format!("{what} [{{bar:30}}] {{pos}}/{{len}} ({{eta}} left)"),
        None => format!("{what} {{spinner}} {{pos}} lines ({{elapsed}})"),
    };
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
