//! Drawings of a flow set: Mermaid (`flowchart TD`, for Markdown) and Graphviz dot. One box
//! per node (`flow.node` and its kind), one arrow per route, labelled with the key or the
//! event that takes it (`1`, `silence`, `invalide`, `repli`...).
//!
//! ```
//! use guichet::flow::{graph, ir::FlowSet};
//! let yaml = "id: main\nlanguage: fr\nreviewed: 2026-12-05\nentry: a\nprompts: {}\n\
//!             nodes:\n  a:\n    goto: b\n  b:\n    hangup: {}\n";
//! let set = FlowSet::from_texts(&[("main", yaml)]).unwrap();
//! assert!(graph::mermaid(&set).contains("main_a -->|suite| main_b"));
//! ```

use std::fmt::Write;

use crate::flow::ir::{Condition, FlowSet, NodeIdx, NodeKind, Via};

/// Routes out of a node with their labels.
pub fn labelled_edges(kind: &NodeKind) -> Vec<(String, NodeIdx)> {
    kind.routes()
        .into_iter()
        .map(|(via, to)| {
            let label = match via {
                Via::Next => "suite".to_owned(),
                Via::Key(k) => k.to_string(),
                Via::NoInput => "silence".to_owned(),
                Via::Invalid => "invalide".to_owned(),
                Via::Collected => "saisi".to_owned(),
                Via::Case(i) => match kind {
                    NodeKind::Switch { cases, .. } => {
                        cases.get(i).map(|(c, _)| describe(c)).unwrap_or_default()
                    }
                    _ => String::new(),
                },
                Via::Default => "sinon".to_owned(),
                Via::Found => "trouvé".to_owned(),
                Via::NotFound => "absent".to_owned(),
                Via::Fallback => "repli".to_owned(),
                Via::Callee => "appel".to_owned(),
                Via::AfterCall => "retour".to_owned(),
            };
            (label, to)
        })
        .collect()
}

fn describe(c: &Condition) -> String {
    match c {
        Condition::Open(s) => format!("{s} ouvert"),
        Condition::Closed(s) => format!("{s} fermé"),
        Condition::Dates { from, to } => format!("du {from} au {to}"),
        Condition::CallerPrefix(p) => format!("appelant {}", p.join("/")),
        Condition::VarEquals(k, v) => format!("{k} = {v}"),
        Condition::VarPrefix(k, p) => format!("{k} commence par {p}"),
        Condition::VarSet(k, true) => format!("{k} connu"),
        Condition::VarSet(k, false) => format!("{k} inconnu"),
        Condition::CallsAtLeast(n) => format!("{n} appels ou plus"),
        Condition::All(v) => v.iter().map(describe).collect::<Vec<_>>().join(" et "),
        Condition::Any(v) => v.iter().map(describe).collect::<Vec<_>>().join(" ou "),
    }
}

/// The kind of a node, as written in YAML.
pub fn kind_name(kind: &NodeKind) -> &'static str {
    match kind {
        NodeKind::Play { .. } => "play",
        NodeKind::Menu(_) => "menu",
        NodeKind::Collect(_) => "collect",
        NodeKind::Say { .. } => "say",
        NodeKind::Switch { .. } => "switch",
        NodeKind::Set { .. } => "set",
        NodeKind::Lookup { .. } => "lookup",
        NodeKind::Queue { .. } => "queue",
        NodeKind::Callback { .. } => "callback",
        NodeKind::Voicemail { .. } => "voicemail",
        NodeKind::Transfer { .. } => "transfer",
        NodeKind::Goto(_) => "goto",
        NodeKind::Call { .. } => "call",
        NodeKind::Return => "return",
        NodeKind::Hangup { .. } => "hangup",
    }
}

fn ident(set: &FlowSet, n: NodeIdx) -> String {
    set.node_name(n)
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn clean(s: &str) -> String {
    s.replace(['"', '|', '[', ']', '{', '}'], "'")
}

/// Mermaid flowchart of every node, grouped by flow.
pub fn mermaid(set: &FlowSet) -> String {
    mermaid_of(set, None)
}

/// Graphviz dot of every node, one cluster per flow.
pub fn dot(set: &FlowSet) -> String {
    dot_of(set, None)
}

/// Which nodes and edges a drawing shows: with `only`, the nodes of that flow, their
/// edges, and the nodes of other flows those edges lead to (so a sub-menu's exits show).
fn selection(set: &FlowSet, only: Option<&str>) -> (Vec<bool>, Vec<bool>) {
    let n = set.nodes().len();
    let in_flow = |i: usize| match only {
        None => true,
        Some(id) => set.nodes().get(i).is_some_and(|node| {
            set.flows()
                .get(node.flow.0 as usize)
                .is_some_and(|f| f.id == id)
        }),
    };
    let source: Vec<bool> = (0..n).map(in_flow).collect();
    let mut shown = source.clone();
    for (i, node) in set.nodes().iter().enumerate() {
        if source[i] {
            for (_, to) in labelled_edges(&node.kind) {
                if let Some(slot) = shown.get_mut(to.0 as usize) {
                    *slot = true;
                }
            }
        }
    }
    (shown, source)
}

/// The shown nodes of flow number `fi`, in order.
fn members(set: &FlowSet, shown: &[bool], fi: usize) -> Vec<usize> {
    set.nodes()
        .iter()
        .enumerate()
        .filter(|(i, node)| shown.get(*i).copied().unwrap_or(false) && node.flow.0 as usize == fi)
        .map(|(i, _)| i)
        .collect()
}

/// Mermaid flowchart, of every flow or of one (`only`).
pub fn mermaid_of(set: &FlowSet, only: Option<&str>) -> String {
    let (shown, source) = selection(set, only);
    let mut s = String::from("flowchart TD\n");
    for (fi, flow) in set.flows().iter().enumerate() {
        let members = members(set, &shown, fi);
        if members.is_empty() {
            continue;
        }
        let _ = writeln!(s, "  subgraph {}", flow.id);
        for i in members {
            let idx = NodeIdx(i as u32);
            let _ = writeln!(
                s,
                "    {}[\"{}<br/>{}\"]",
                ident(set, idx),
                clean(&set.node_name(idx)),
                kind_name(&set.nodes()[i].kind)
            );
        }
        let _ = writeln!(s, "  end");
    }
    for (i, node) in set.nodes().iter().enumerate() {
        if !source[i] {
            continue;
        }
        let from = ident(set, NodeIdx(i as u32));
        for (label, to) in labelled_edges(&node.kind) {
            let _ = writeln!(s, "  {from} -->|{}| {}", clean(&label), ident(set, to));
        }
    }
    s
}

/// Graphviz dot, one cluster per flow, of every flow or of one (`only`).
pub fn dot_of(set: &FlowSet, only: Option<&str>) -> String {
    let (shown, source) = selection(set, only);
    let mut s = String::from("digraph flows {\n  rankdir=TB;\n  node [shape=box];\n");
    for (fi, flow) in set.flows().iter().enumerate() {
        let members = members(set, &shown, fi);
        if members.is_empty() {
            continue;
        }
        let _ = writeln!(
            s,
            "  subgraph cluster_{fi} {{\n    label=\"{}\";",
            clean(&flow.id)
        );
        for i in members {
            let idx = NodeIdx(i as u32);
            let _ = writeln!(
                s,
                "    {} [label=\"{}\\n{}\"];",
                ident(set, idx),
                clean(&set.node_name(idx)),
                kind_name(&set.nodes()[i].kind)
            );
        }
        s.push_str("  }\n");
    }
    for (i, node) in set.nodes().iter().enumerate() {
        if !source[i] {
            continue;
        }
        let from = ident(set, NodeIdx(i as u32));
        for (label, to) in labelled_edges(&node.kind) {
            let _ = writeln!(
                s,
                "  {from} -> {} [label=\"{}\"];",
                ident(set, to),
                clean(&label)
            );
        }
    }
    s.push_str("}\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_drawn() {
        let yaml = r#"
id: main
language: fr
reviewed: 2026-12-05
entry: m
prompts: { p: "Pour les impôts, tapez 1." }
nodes:
  m:
    menu:
      options: { "1": { prompt: p, goto: fin } }
      no_input: { then: fin }
  fin:
    hangup: {}
"#;
        let set = FlowSet::from_texts(&[("main", yaml)]).unwrap();
        let m = mermaid(&set);
        assert!(m.contains("main_m -->|1| main_fin"), "{m}");
        assert!(m.contains("main_m -->|silence| main_fin"), "{m}");
        let d = dot(&set);
        assert!(d.contains("main_m -> main_fin [label=\"1\"];"), "{d}");
        assert!(d.trim_end().ends_with('}'));
    }

    #[test]
    fn one_flow_shows_its_nodes_and_where_they_lead() {
        let main = r#"
id: main
language: fr
reviewed: 2026-12-05
entry: m
prompts: { p: "Pour les impôts, tapez 1." }
nodes:
  m:
    menu:
      options: { "1": { prompt: p, goto: impots.menu } }
      no_input: { then: fin }
  fin:
    hangup: {}
"#;
        let impots = r#"
id: impots
language: fr
reviewed: 2026-12-05
entry: menu
prompts: { q: "Pour payer, tapez 1." }
nodes:
  menu:
    menu:
      options: { "1": { prompt: q, goto: fin } }
      no_input: { then: fin }
  fin:
    hangup: {}
"#;
        let set = FlowSet::from_texts(&[("main", main), ("impots", impots)]).unwrap();
        let m = mermaid_of(&set, Some("main"));
        assert!(m.contains("main_m -->|1| impots_menu"), "{m}");
        assert!(
            m.contains("impots_menu["),
            "the target of an exit is drawn: {m}"
        );
        assert!(
            !m.contains("impots_fin"),
            "other flows' insides are not: {m}"
        );
        assert!(!m.contains("impots_menu -->"), "nor their edges: {m}");
        let d = dot_of(&set, Some("impots"));
        assert!(d.contains("impots_menu -> impots_fin"), "{d}");
        assert!(!d.contains("main_"), "{d}");
        assert_eq!(mermaid(&set), mermaid_of(&set, None));
    }
}
