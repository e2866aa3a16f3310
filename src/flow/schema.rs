//! The JSON Schema of flow files (draft 2020-12), written by hand to match
//! [`crate::flow::model`]; `guichet schema` prints it for editors (YAML language servers
//! use it for completion and checks). A test walks the shipped flows against it so it
//! cannot drift from the real field names.
//!
//! ```
//! let s = guichet::flow::schema::json_schema();
//! assert_eq!(s["properties"]["nodes"]["type"], "object");
//! ```

use serde_json::{Value, json};

fn route() -> Value {
    json!({ "type": "string", "pattern": "^([A-Za-z0-9_-]+\\.)?[A-Za-z0-9_-]+$",
            "description": "A node of this file (`menu`) or of another (`impots.menu`)." })
}

fn node_kind(kind: &str, description: &str, body: Value) -> Value {
    json!({
        "type": "object",
        "description": description,
        "required": [kind],
        "additionalProperties": false,
        "properties": { kind: body }
    })
}

fn object(required: &[&str], properties: Value) -> Value {
    json!({ "type": "object", "required": required, "additionalProperties": false,
            "properties": properties })
}

/// The schema of one flow file.
pub fn json_schema() -> Value {
    let prompts = json!({ "type": "array", "items": { "$ref": "#/$defs/prompt" } });
    let nodes = vec![
        node_kind(
            "play",
            "Play prompts, then go on.",
            object(
                &["prompts", "next"],
                json!({
            "prompts": prompts, "next": { "$ref": "#/$defs/route" },
            "interruptible": { "type": "boolean" } }),
            ),
        ),
        node_kind(
            "menu",
            "Offer options by key.",
            object(
                &["options"],
                json!({
            "prompts": prompts,
            "options": { "type": "object",
                "propertyNames": { "$ref": "#/$defs/key" },
                "additionalProperties": object(&["goto"], json!({
                    "prompt": { "$ref": "#/$defs/prompt" },
                    "goto": { "$ref": "#/$defs/route" } })) },
            "footer": prompts,
            "no_input": { "$ref": "#/$defs/retry" },
            "invalid": { "$ref": "#/$defs/retry" },
            "timeout": { "$ref": "#/$defs/duration" },
            "retries": { "type": "integer", "minimum": 0 } }),
            ),
        ),
        node_kind(
            "collect",
            "Collect digits into a variable.",
            object(
                &["prompts", "into", "next"],
                json!({
            "prompts": prompts,
            "into": { "type": "string" },
            "min": { "type": "integer", "minimum": 0 },
            "max": { "type": "integer", "minimum": 1 },
            "pattern": { "type": "string",
                "description": "`postal_code`, `tax_number` or digits like `[0-9]{5}`." },
            "terminator": { "type": "string" },
            "inter_digit_timeout": { "$ref": "#/$defs/duration" },
            "timeout": { "$ref": "#/$defs/duration" },
            "retries": { "type": "integer", "minimum": 0 },
            "read_back": { "type": "boolean" },
            "confirm": object(&["question"], json!({
                "before": prompts, "question": prompts,
                "yes": { "$ref": "#/$defs/key" }, "no": { "$ref": "#/$defs/key" } })),
            "no_input": { "$ref": "#/$defs/retry" },
            "invalid": { "$ref": "#/$defs/retry" },
            "next": { "$ref": "#/$defs/route" } }),
            ),
        ),
        node_kind(
            "say",
            "Say a value with fragment prompts.",
            object(
                &["value", "as", "next"],
                json!({
            "value": { "type": "string", "description": "`$variable` or a literal." },
            "as": { "enum": ["digits", "number", "date", "time", "duration", "phone"] },
            "before": prompts, "after": prompts,
            "next": { "$ref": "#/$defs/route" } }),
            ),
        ),
        node_kind(
            "switch",
            "Route on hours, dates, caller or variables.",
            object(
                &["cases", "default"],
                json!({
            "cases": { "type": "array", "items": object(&["if", "goto"], json!({
                "if": { "$ref": "#/$defs/condition" },
                "goto": { "$ref": "#/$defs/route" } })) },
            "default": { "$ref": "#/$defs/route" } }),
            ),
        ),
        node_kind(
            "set",
            "Set variables.",
            object(
                &["values", "next"],
                json!({
            "values": { "type": "object", "additionalProperties": { "type": "string" } },
            "next": { "$ref": "#/$defs/route" } }),
            ),
        ),
        node_kind(
            "lookup",
            "Find a key in a table of flows/data/.",
            object(
                &["table", "key", "into", "found", "not_found"],
                json!({
            "table": { "type": "string" }, "key": { "type": "string" },
            "prefix": { "type": "boolean" }, "into": { "type": "string" },
            "found": { "$ref": "#/$defs/route" }, "not_found": { "$ref": "#/$defs/route" } }),
            ),
        ),
        node_kind(
            "queue",
            "Wait for an adviser.",
            object(
                &["name", "fallback"],
                json!({
            "name": { "type": "string" },
            "priority": { "type": "integer", "minimum": 0, "maximum": 255 },
            "prompts": prompts, "fallback": { "$ref": "#/$defs/route" } }),
            ),
        ),
        node_kind(
            "callback",
            "Register a callback.",
            object(
                &["next", "fallback"],
                json!({
            "queue": { "type": "string" }, "prompts": prompts,
            "next": { "$ref": "#/$defs/route" }, "fallback": { "$ref": "#/$defs/route" } }),
            ),
        ),
        node_kind(
            "voicemail",
            "Record a message.",
            object(
                &["mailbox", "next", "fallback"],
                json!({
            "mailbox": { "type": "string" }, "prompts": prompts,
            "next": { "$ref": "#/$defs/route" }, "fallback": { "$ref": "#/$defs/route" } }),
            ),
        ),
        node_kind(
            "transfer",
            "Transfer to a SIP URI.",
            object(
                &["uri", "fallback"],
                json!({
            "uri": { "type": "string", "pattern": "^sips?:" }, "prompts": prompts,
            "fallback": { "$ref": "#/$defs/route" } }),
            ),
        ),
        node_kind(
            "goto",
            "Go to another node.",
            json!({ "$ref": "#/$defs/route" }),
        ),
        node_kind(
            "call",
            "Run a sub-menu; its `return` comes back to `next`.",
            object(
                &["node", "next"],
                json!({
            "node": { "$ref": "#/$defs/route" }, "next": { "$ref": "#/$defs/route" } }),
            ),
        ),
        node_kind(
            "return",
            "Go back after the `call` that led here.",
            object(&[], json!({})),
        ),
        node_kind(
            "hangup",
            "Say goodbye and hang up.",
            object(&[], json!({ "prompts": prompts })),
        ),
    ];
    let conditions = json!([
        object(&["open"], json!({ "open": { "type": "string" } })),
        object(&["closed"], json!({ "closed": { "type": "string" } })),
        object(
            &["dates"],
            json!({ "dates": object(&["from", "to"], json!({
            "from": { "type": "string", "format": "date" }, "to": { "type": "string", "format": "date" } })) })
        ),
        object(
            &["caller_prefix"],
            json!({ "caller_prefix": { "type": "array", "items": { "type": "string" } } })
        ),
        object(
            &["var"],
            json!({ "var": object(&["name"], json!({
            "name": { "type": "string" }, "equals": { "type": "string" },
            "prefix": { "type": "string" }, "set": { "type": "boolean" } })) })
        ),
        object(
            &["calls_at_least"],
            json!({ "calls_at_least": { "type": "integer", "minimum": 0 } })
        ),
        object(
            &["all"],
            json!({ "all": { "type": "array", "items": { "$ref": "#/$defs/condition" } } })
        ),
        object(
            &["any"],
            json!({ "any": { "type": "array", "items": { "$ref": "#/$defs/condition" } } })
        ),
    ]);
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://guichet.example/schemas/flow.json",
        "title": "Guichet flow file",
        "description": "A voice-menu flow; see docs/flows.md.",
        "type": "object",
        "required": ["id", "language", "reviewed", "entry", "nodes"],
        "additionalProperties": false,
        "properties": {
            "id": { "type": "string", "description": "The file name without .yaml." },
            "language": { "type": "string", "examples": ["fr"] },
            "reviewed": { "type": "string", "format": "date" },
            "entry": route(),
            "agent": route(),
            "defaults": object(&[], json!({
                "no_input_timeout": { "$ref": "#/$defs/duration" },
                "inter_digit_timeout": { "$ref": "#/$defs/duration" },
                "retries": { "type": "integer", "minimum": 0 } })),
            "keys": object(&[], json!({
                "agent": { "$ref": "#/$defs/key" },
                "repeat": { "$ref": "#/$defs/key" },
                "back": { "$ref": "#/$defs/key" } })),
            "queues": { "type": "array", "items": { "type": "string" } },
            "limits": object(&[], json!({
                "max_seconds_to_human": { "type": "integer", "minimum": 1 } })),
            "relax": { "type": "array", "items": object(&["rule", "reason"], json!({
                "rule": { "enum": crate::flow::load::RELAXABLE },
                "reason": { "type": "string", "minLength": 10 } })) },
            "prompts": { "type": "object", "additionalProperties": { "type": "string" } },
            "nodes": { "type": "object", "additionalProperties": { "$ref": "#/$defs/node" } }
        },
        "$defs": {
            "route": route(),
            "prompt": { "type": "string",
                "description": "A prompt id of this file, `flow.prompt`, or `$variable`." },
            "duration": { "type": "string", "pattern": "^([0-9]+(ms|h|m|s))+$",
                "examples": ["5s", "1m30s", "500ms"] },
            "key": { "enum": ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "#"] },
            "retry": object(&[], json!({ "prompts": prompts, "then": { "$ref": "#/$defs/route" } })),
            "node": { "oneOf": nodes },
            "condition": { "oneOf": conditions }
        }
    })
}

/// Field names in `value` that the schema does not allow, as `path: name` strings. A
/// structural walk (properties, additionalProperties, items, oneOf by required key, $ref):
/// enough to keep the schema in step with the loader, not a full validator.
pub fn unknown_fields(value: &Value) -> Vec<String> {
    let root = json_schema();
    let mut out = Vec::new();
    walk(&root, &root, value, "", &mut out);
    out
}

fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => r
            .strip_prefix("#/")
            .map(|p| p.split('/').fold(root, |v, k| &v[k]))
            .unwrap_or(schema),
        None => schema,
    }
}

fn walk(root: &Value, schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
    let schema = resolve(root, schema);
    if let Some(branches) = schema.get("oneOf").and_then(Value::as_array) {
        let Some(obj) = value.as_object() else { return };
        let branch = branches.iter().find(|b| {
            let b = resolve(root, b);
            b["required"].as_array().is_some_and(|r| {
                r.iter()
                    .all(|k| k.as_str().is_some_and(|k| obj.contains_key(k)))
            }) && !b["required"].as_array().is_some_and(Vec::is_empty)
        });
        match branch {
            Some(b) => walk(root, b, value, path, out),
            None => out.push(format!(
                "{path}: no kind among {:?}",
                obj.keys().collect::<Vec<_>>()
            )),
        }
        return;
    }
    match value {
        Value::Object(obj) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            for (k, v) in obj {
                let here = format!("{path}/{k}");
                match (props.and_then(|p| p.get(k)), additional) {
                    (Some(s), _) => walk(root, s, v, &here, out),
                    (None, Some(Value::Bool(false))) => out.push(here),
                    (None, Some(s)) if s.is_object() => walk(root, s, v, &here, out),
                    _ => {}
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    walk(root, s, v, &format!("{path}/{i}"), out);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> Vec<(String, Value)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("flows");
        let mut v = Vec::new();
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "yaml") && !p.ends_with("calendar.yaml") {
                let text = std::fs::read_to_string(&p).unwrap();
                v.push((
                    p.display().to_string(),
                    serde_saphyr::from_str(&text).unwrap(),
                ));
            }
        }
        v
    }

    #[test]
    fn shipped_flows_use_only_schema_fields() {
        let files = shipped();
        assert!(files.len() >= 2);
        for (name, value) in files {
            assert_eq!(unknown_fields(&value), Vec::<String>::new(), "{name}");
        }
    }

    #[test]
    fn schema_lists_every_node_kind_and_top_field() {
        let s = json_schema();
        let kinds: Vec<&str> = s["$defs"]["node"]["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["required"][0].as_str().unwrap())
            .collect();
        assert_eq!(kinds, crate::flow::model::NODE_KINDS);
        let mut top: Vec<&str> = s["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut want = crate::flow::model::FLOW_FIELDS.to_vec();
        top.sort();
        want.sort();
        assert_eq!(top, want);
    }

    #[test]
    fn a_typo_is_found() {
        let v: Value = serde_json::json!({
            "id": "main", "nodes": { "a": { "menu": { "optoins": {} } }, "b": { "plya": {} } }
        });
        let bad = unknown_fields(&v);
        assert!(
            bad.iter().any(|b| b.ends_with("/nodes/a/menu/optoins")),
            "{bad:?}"
        );
        assert!(bad.iter().any(|b| b.contains("/nodes/b")), "{bad:?}");
    }
}
