//! The prompt catalogue of a flow set, and rendering it to WAV files.
//!
//! Owns the list of everything a call can play: every catalogue prompt of every flow
//! (id `<language>/<flow>/<prompt>`, as [`crate::flow::ir::PromptId`] derives it, so the
//! WAV is `audio/<language>/<flow>/<prompt>.wav`, the path the checker's `missing-wav` rule
//! looks for) and every fragment that `say` nodes and collect read-backs use
//! ([`crate::flow::say::fragments`], id `<language>/<fragment>`, e.g. `fr/num/20`).
//!
//! Input: a flow directory (loaded with [`FlowSet::load`]) or a loaded [`FlowSet`].
//! Output: `(id, text)` pairs sorted by id ([`catalogue`], [`catalogue_of`]); [`render_all`]
//! hands them to [`render::render_catalogue`] (espeak-ng, the flow's language as the voice,
//! 140 words per minute, 8 kHz mono 16-bit), which skips prompts whose text did not change.
//! This is an operator tool (`guichet prompts render`), never called while handling calls;
//! only [`render_all`] starts processes (through the media layer).
//!
//! The `say` fragments are French words; they are listed under every language a flow uses,
//! because the interpreter plays them from `<language>/<fragment>`.
//!
//! ```no_run
//! use std::path::Path;
//! use guichet::flow::prompts;
//!
//! for (id, text) in prompts::catalogue(Path::new("flows")).unwrap() {
//!     println!("{id}: {text}");
//! }
//! let report = prompts::render_all(Path::new("flows"), Path::new("audio")).unwrap();
//! println!("{} rendered, {} unchanged", report.rendered, report.skipped);
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::flow::diagnostic::Diagnostic;
use crate::flow::ir::FlowSet;
use crate::flow::say;
use crate::media::render::{self, RenderError, RenderReport};

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum PromptsError {
    /// The flow directory does not load; the diagnostics say where and why.
    #[error("the flows in {} do not load ({} problem(s)):\n{}", dir.display(), diagnostics.len(), lines(diagnostics))]
    Load {
        dir: PathBuf,
        diagnostics: Vec<Diagnostic>,
    },
    /// Rendering a prompt failed (espeak-ng missing, a write error, ...).
    #[error("rendering the prompts failed: {0}")]
    Render(#[from] RenderError),
}

fn lines(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every prompt id of the flows in `set_dir` with its text (see the module docs), sorted.
pub fn catalogue(set_dir: &Path) -> Result<Vec<(String, String)>, PromptsError> {
    let set = FlowSet::load(set_dir).map_err(|diagnostics| PromptsError::Load {
        dir: set_dir.to_owned(),
        diagnostics,
    })?;
    Ok(catalogue_of(&set))
}

/// Every prompt id of a loaded flow set with its text, sorted by id.
pub fn catalogue_of(set: &FlowSet) -> Vec<(String, String)> {
    let mut all = BTreeMap::new();
    for p in set.prompts() {
        all.insert(p.id.0.clone(), p.text.clone());
    }
    let languages: BTreeSet<&str> = set.flows().iter().map(|f| f.language.as_str()).collect();
    for language in languages {
        for (fragment, text) in say::fragments() {
            all.insert(format!("{language}/{fragment}"), text);
        }
    }
    all.into_iter().collect()
}

/// Render every prompt of the flows in `flows_dir` into `audio_dir` (`<audio_dir>/<id>.wav`),
/// with the espeak-ng voice of each prompt's language at 140 words per minute. Unchanged
/// prompts are skipped (see [`render::render_catalogue`]).
pub fn render_all(flows_dir: &Path, audio_dir: &Path) -> Result<RenderReport, PromptsError> {
    let entries = catalogue(flows_dir)?;
    let mut by_language: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for (id, text) in entries {
        let language = id.split_once('/').map_or("fr", |(l, _)| l).to_owned();
        by_language.entry(language).or_default().push((id, text));
    }
    let mut total = RenderReport::default();
    for (language, entries) in &by_language {
        let r = render::render_catalogue(entries, audio_dir, language)?;
        total.rendered += r.rendered;
        total.skipped += r.skipped;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::interp::say_value;
    use crate::flow::ir::{NodeKind, Value};

    const MAIN: &str = r#"
id: main
language: fr
reviewed: 2026-12-05
entry: accueil
agent: file
queues: [accueil]
prompts:
  bonjour: "Bonjour."
nodes:
  accueil:
    say: { before: [bonjour], value: "3230", as: phone, next: file }
  file:
    queue: { name: accueil, prompts: [bonjour], fallback: fin }
  fin:
    hangup: { prompts: [bonjour] }
"#;

    #[test]
    fn catalogue_lists_prompts_and_fragments_under_the_language() {
        let set = FlowSet::from_texts(&[("main", MAIN)]).unwrap();
        let cat = catalogue_of(&set);
        let map: BTreeMap<_, _> = cat.iter().cloned().collect();
        assert_eq!(
            map.get("fr/main/bonjour").map(String::as_str),
            Some("Bonjour.")
        );
        assert_eq!(
            map.get("fr/num/32").map(String::as_str),
            Some("trente-deux")
        );
        assert_eq!(cat.len(), 1 + say::fragments().len());
        let ids: Vec<&String> = cat.iter().map(|(id, _)| id).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }

    #[test]
    fn catalogue_reports_load_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("main.yaml"), "id: main\nnodes: 3\n").unwrap();
        let err = catalogue(dir.path()).unwrap_err();
        assert!(matches!(err, PromptsError::Load { .. }), "{err}");
    }

    /// Every prompt and fragment the shipped flows can play is in the catalogue.
    #[test]
    fn shipped_catalogue_covers_every_played_id() {
        let set = FlowSet::load(Path::new("flows")).unwrap();
        let cat: BTreeMap<String, String> =
            catalogue(Path::new("flows")).unwrap().into_iter().collect();
        for p in set.prompts() {
            assert!(cat.contains_key(&p.id.0), "{}", p.id);
        }
        for node in set.nodes() {
            if let NodeKind::Say {
                value: Value::Literal(v),
                as_,
                ..
            } = &node.kind
            {
                for f in say_value(*as_, v) {
                    assert!(cat.contains_key(&format!("fr/{f}")), "{f}");
                }
            }
        }
    }

    /// The committed recordings match the shipped flows: no `missing-wav`, and they are
    /// 8 kHz mono 16-bit. Re-render with `render_shipped_prompts` after editing a prompt.
    #[test]
    fn shipped_audio_is_complete() {
        let report = crate::flow::check::check_dir(Path::new("flows"), Some(Path::new("audio")));
        let missing: Vec<String> = report
            .diagnostics
            .iter()
            .filter(|d| d.rule == "missing-wav")
            .map(ToString::to_string)
            .collect();
        assert!(missing.is_empty(), "{}", missing.join("\n"));
        for wav in ["audio/fr/main/bienvenue.wav", "audio/fr/num/20.wav"] {
            let spec = hound::WavReader::open(wav).unwrap().spec();
            assert_eq!(
                (spec.sample_rate, spec.channels, spec.bits_per_sample),
                (8000, 1, 16)
            );
        }
    }

    /// Renders the shipped flows into `audio/` (needs espeak-ng):
    /// `cargo test --lib flow::prompts -- --ignored`.
    #[test]
    #[ignore = "runs espeak-ng and writes into audio/"]
    fn render_shipped_prompts() {
        let report = render_all(Path::new("flows"), Path::new("audio")).unwrap();
        let count = catalogue(Path::new("flows")).unwrap().len();
        assert_eq!(report.rendered + report.skipped, count);
    }
}
