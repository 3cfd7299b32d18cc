//! Templates as parametrised Redis commands: the definition (`command`, `args` with
//! `{{field}}` placeholders, typed `fields`, `kind`), its validation, and rendering a JSON
//! object of field values into the argument list of one command.
//!
//! Substitution never builds a command line: each template argument renders to exactly one
//! Redis argument, so a field value (spaces, quotes, CRLF, `*3\r\n…`) can never become
//! another argument or another command.
//!
//! Decisions: `fields` omitted means every placeholder is a required string; an argument that
//! is only the placeholder of a missing optional field is left out (`SET k v EX {{ttl}}` is not
//! valid without `ttl`, so put optional tails in their own template); inside a longer
//! argument a missing optional field renders as the empty string; booleans render as
//! `true`/`false`; numbers as JSON prints them.

use serde_json::{json, Map, Value};

use godwit_router::{flags, Class};

use crate::ControlError;

/// Type of a template field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// A JSON string.
    String,
    /// A JSON integer.
    Integer,
    /// Any JSON number.
    Number,
    /// `true` or `false`.
    Boolean,
}

impl FieldType {
    fn parse(s: &str) -> Option<FieldType> {
        match s.to_ascii_lowercase().as_str() {
            "string" | "str" => Some(FieldType::String),
            "integer" | "int" => Some(FieldType::Integer),
            "number" | "float" | "double" => Some(FieldType::Number),
            "boolean" | "bool" => Some(FieldType::Boolean),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Integer => "integer",
            FieldType::Number => "number",
            FieldType::Boolean => "boolean",
        }
    }
}

/// One declared field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Name used in `{{name}}`.
    pub name: String,
    /// Expected JSON type.
    pub ty: FieldType,
    /// A call without it is refused.
    pub required: bool,
}

/// Whether a template reads or writes (decides read or write routing under a migration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Read routing (split, shadow).
    Read,
    /// Write routing (dual write with the policy).
    Write,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    Var(String),
}

/// A validated template definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateDef {
    /// Command name as given (upper-cased).
    pub command: String,
    /// Read or write.
    pub kind: Kind,
    /// Declared fields.
    pub fields: Vec<Field>,
    args: Vec<Vec<Part>>,
}

fn bad(msg: impl Into<String>) -> ControlError {
    ControlError::bad(msg)
}

fn parse_arg(i: usize, s: &str) -> Result<Vec<Part>, ControlError> {
    let mut parts = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            parts.push(Part::Lit(rest[..start].to_string()));
        }
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| bad(format!("Template arg {i} has an unclosed '{{{{'")))?;
        let name = after[..end].trim();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        {
            return Err(bad(format!(
                "Template arg {i} has an invalid placeholder '{{{{{name}}}}}'"
            )));
        }
        parts.push(Part::Var(name.to_string()));
        rest = &after[end + 2..];
    }
    if !rest.is_empty() || parts.is_empty() {
        parts.push(Part::Lit(rest.to_string()));
    }
    Ok(parts)
}

fn arg_text(i: usize, v: &Value) -> Result<String, ControlError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(bad(format!("Template arg {i} must be a string"))),
    }
}

/// Eden's legacy Redis shape `{operation, key, value?, ttl?}` as command and args.
fn legacy(t: &Map<String, Value>) -> Result<(String, Vec<Value>), ControlError> {
    let op = t
        .get("operation")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("template.operation is required"))?;
    let mut args = Vec::new();
    for k in ["key", "value"] {
        if let Some(v) = t.get(k).filter(|v| !v.is_null()) {
            args.push(v.clone());
        }
    }
    if let Some(ttl) = t.get("ttl").filter(|v| !v.is_null()) {
        args.push(json!("EX"));
        args.push(ttl.clone());
    }
    Ok((op.to_string(), args))
}

impl TemplateDef {
    /// Validates a definition (the stored body of `POST /templates`).
    pub fn parse(body: &Value) -> Result<TemplateDef, ControlError> {
        let (command, raw_args) = match (body.get("command"), body.get("template")) {
            (Some(Value::String(c)), _) => {
                let args = match body.get("args") {
                    None | Some(Value::Null) => vec![],
                    Some(Value::Array(a)) => a.clone(),
                    Some(_) => return Err(bad("args must be an array of strings")),
                };
                (c.clone(), args)
            }
            (Some(_), _) => return Err(bad("command must be a string")),
            (None, Some(Value::Object(t))) => match t.get("template") {
                Some(Value::Object(inner)) => legacy(inner)?,
                _ => legacy(t)?,
            },
            (None, _) => return Err(bad("Required field 'command' is missing")),
        };
        let command = command.trim().to_ascii_uppercase();
        if command.is_empty() || command.contains(char::is_whitespace) {
            return Err(bad(
                "command must be one Redis command name (arguments go in args)",
            ));
        }
        let info = godwit_router::lookup(command.as_bytes());
        if let Some(info) = info {
            if info.has(flags::BLOCKING)
                || info.has(flags::PUBSUB)
                || info.class == Class::ConnectionState
                || matches!(info.name, "multi" | "exec" | "watch" | "discard" | "select")
            {
                return Err(bad(format!(
                    "command {command} cannot run in a template (blocking, pub/sub or connection state)"
                )));
            }
        }
        let mut args = Vec::with_capacity(raw_args.len());
        for (i, a) in raw_args.iter().enumerate() {
            args.push(parse_arg(i, &arg_text(i, a)?)?);
        }
        let placeholders: Vec<&str> = args
            .iter()
            .flatten()
            .filter_map(|p| match p {
                Part::Var(v) => Some(v.as_str()),
                Part::Lit(_) => None,
            })
            .collect();
        let fields = match body.get("fields") {
            None | Some(Value::Null) => {
                let mut f: Vec<Field> = Vec::new();
                for p in &placeholders {
                    if !f.iter().any(|x| x.name == *p) {
                        f.push(Field {
                            name: (*p).to_string(),
                            ty: FieldType::String,
                            required: true,
                        });
                    }
                }
                f
            }
            Some(Value::Array(items)) => parse_fields(items)?,
            Some(_) => return Err(bad("fields must be an array")),
        };
        for (i, a) in args.iter().enumerate() {
            for p in a {
                if let Part::Var(v) = p {
                    if !fields.iter().any(|f| &f.name == v) {
                        return Err(bad(format!(
                            "Template arg {i} uses unknown field '{v}' (declare it in fields)"
                        )));
                    }
                }
            }
        }
        let kind = match body.get("kind").and_then(Value::as_str) {
            Some(k) => match k.to_ascii_lowercase().as_str() {
                "read" => Kind::Read,
                "write" | "transaction" => Kind::Write,
                _ => return Err(bad("kind must be read, write or transaction")),
            },
            None => match info.map(|i| i.class) {
                Some(Class::Write) => Kind::Write,
                Some(_) => Kind::Read,
                None => {
                    return Err(bad(format!(
                        "unknown command {command}: give kind (read or write) explicitly"
                    )))
                }
            },
        };
        Ok(TemplateDef {
            command,
            kind,
            fields,
            args,
        })
    }

    /// Renders field values (a JSON object; `null` = none) into the command's arguments,
    /// the command name first.
    pub fn render(&self, values: &Value) -> Result<Vec<Vec<u8>>, ControlError> {
        let empty = Map::new();
        let values = match values {
            Value::Null => &empty,
            Value::Object(m) => m,
            _ => return Err(bad("the body must be a JSON object of field values")),
        };
        for k in values.keys() {
            if !self.fields.iter().any(|f| &f.name == k) {
                return Err(bad(format!("Unknown field '{k}'")));
            }
        }
        let mut texts: Map<String, Value> = Map::new();
        for f in &self.fields {
            match values.get(&f.name).filter(|v| !v.is_null()) {
                None if f.required => {
                    return Err(bad(format!("Required field '{}' is missing", f.name)))
                }
                None => {}
                Some(v) => {
                    texts.insert(f.name.clone(), Value::String(typed(f, v)?));
                }
            }
        }
        let mut out = Vec::with_capacity(self.args.len() + 1);
        out.push(self.command.as_bytes().to_vec());
        for arg in &self.args {
            if let [Part::Var(v)] = arg.as_slice() {
                // a missing optional field: the argument is left out
                if let Some(s) = texts.get(v).and_then(Value::as_str) {
                    out.push(s.as_bytes().to_vec());
                }
                continue;
            }
            let mut s = String::new();
            for p in arg {
                match p {
                    Part::Lit(l) => s.push_str(l),
                    Part::Var(v) => s.push_str(texts.get(v).and_then(Value::as_str).unwrap_or("")),
                }
            }
            out.push(s.into_bytes());
        }
        Ok(out)
    }

    /// The first key of a rendered command (for sticky routing), per the command table.
    pub fn first_key(args: &[Vec<u8>]) -> Option<&[u8]> {
        let info = godwit_router::lookup(args.first()?)?;
        if info.first_key <= 0 {
            return None;
        }
        args.get(info.first_key as usize).map(Vec::as_slice)
    }
}

fn parse_fields(items: &[Value]) -> Result<Vec<Field>, ControlError> {
    let mut out: Vec<Field> = Vec::with_capacity(items.len());
    for item in items {
        let Some(o) = item.as_object() else {
            return Err(bad("each field must be an object {name, type, required}"));
        };
        let name = o
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| bad("each field needs a name"))?;
        let ty = match o.get("type").or_else(|| o.get("field_type")) {
            None | Some(Value::Null) => FieldType::String,
            Some(Value::String(t)) => FieldType::parse(t).ok_or_else(|| {
                bad(format!(
                    "field '{name}': type must be string, integer, number or boolean"
                ))
            })?,
            Some(_) => return Err(bad(format!("field '{name}': type must be a string"))),
        };
        let required = match o.get("required") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(bad(format!("field '{name}': required must be a boolean"))),
        };
        if out.iter().any(|f| f.name == name) {
            return Err(bad(format!("field '{name}' is declared twice")));
        }
        out.push(Field {
            name: name.to_string(),
            ty,
            required,
        });
    }
    Ok(out)
}

fn typed(f: &Field, v: &Value) -> Result<String, ControlError> {
    let wrong = || {
        let article = if f.ty == FieldType::Integer {
            "an"
        } else {
            "a"
        };
        bad(format!(
            "Field '{}' must be {article} {}",
            f.name,
            f.ty.name()
        ))
    };
    match (f.ty, v) {
        (FieldType::String, Value::String(s)) => Ok(s.clone()),
        (FieldType::Integer, Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
        (FieldType::Number, Value::Number(n)) => Ok(n.to_string()),
        (FieldType::Boolean, Value::Bool(b)) => Ok(b.to_string()),
        _ => Err(wrong()),
    }
}

/// The rendered command as JSON text (`{command, args}`), arguments lossily as UTF-8.
pub fn rendered_view(args: &[Vec<u8>]) -> Value {
    let text = |a: &Vec<u8>| Value::String(String::from_utf8_lossy(a).into_owned());
    json!({
        "command": args.first().map(text).unwrap_or(Value::Null),
        "args": args.iter().skip(1).map(text).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(v: Value) -> Result<TemplateDef, ControlError> {
        TemplateDef::parse(&v)
    }

    fn strs(args: &[Vec<u8>]) -> Vec<String> {
        args.iter()
            .map(|a| String::from_utf8(a.clone()).unwrap())
            .collect()
    }

    #[test]
    fn renders_whole_arguments() {
        let t = def(
            json!({"command": "set", "args": ["user:{{id}}", "{{v}}", "EX", "{{ttl}}"],
            "fields": [{"name": "id", "type": "integer", "required": true},
                       {"name": "v", "type": "string", "required": true},
                       {"name": "ttl", "type": "integer"}]}),
        )
        .unwrap();
        assert_eq!(t.kind, Kind::Write);
        let a = t
            .render(&json!({"id": 7, "v": "a b\r\n*3\r\n$3\r\nDEL", "ttl": 60}))
            .unwrap();
        assert_eq!(
            strs(&a),
            ["SET", "user:7", "a b\r\n*3\r\n$3\r\nDEL", "EX", "60"]
        );
        // a missing optional whole-argument field is left out
        let a = t.render(&json!({"id": 1, "v": "x"})).unwrap();
        assert_eq!(strs(&a), ["SET", "user:1", "x", "EX"]);
        assert_eq!(TemplateDef::first_key(&a), Some(&b"user:1"[..]));
    }

    #[test]
    fn field_errors_are_clear() {
        let t = def(json!({"command": "GET", "args": ["user:{{id}}"],
            "fields": [{"name": "id", "type": "integer", "required": true},
                       {"name": "flag", "type": "boolean"}, {"name": "n", "type": "number"}]}))
        .unwrap();
        assert_eq!(t.kind, Kind::Read);
        let msg = |v: Value| t.render(&v).unwrap_err().to_string();
        assert_eq!(msg(json!({})), "Required field 'id' is missing");
        assert_eq!(msg(json!({"id": "7"})), "Field 'id' must be an integer");
        assert_eq!(msg(json!({"id": 1.5})), "Field 'id' must be an integer");
        assert_eq!(
            msg(json!({"id": 1, "flag": 1})),
            "Field 'flag' must be a boolean"
        );
        assert_eq!(
            msg(json!({"id": 1, "n": "x"})),
            "Field 'n' must be a number"
        );
        assert_eq!(msg(json!({"id": 1, "zzz": 1})), "Unknown field 'zzz'");
        assert_eq!(
            msg(json!([1])),
            "the body must be a JSON object of field values"
        );
        assert!(t.render(&json!({"id": 1, "flag": true, "n": 2.5})).is_ok());
    }

    #[test]
    fn definitions_are_validated() {
        let err = |v: Value| def(v).unwrap_err().to_string();
        assert!(
            err(json!({"command": "GET", "args": ["{{nope}}"], "fields": []}))
                .contains("unknown field 'nope'")
        );
        assert!(err(json!({"command": "BLPOP", "args": ["q", "0"]})).contains("cannot run"));
        assert!(err(json!({"command": "GET", "args": ["{{a"]})).contains("unclosed"));
        assert!(err(json!({"command": "GET",
            "fields": [{"name": "a", "type": "date"}]}))
        .contains("type must be"));
        assert!(err(json!({"command": "GET", "kind": "sideways"})).contains("kind"));
        assert!(err(json!({"command": "MYMODULE.CMD"})).contains("give kind"));
        assert!(err(json!({"args": []})).contains("'command' is missing"));
        assert!(err(json!({"command": "GET x"})).contains("one Redis command"));
        // fields omitted: placeholders are required strings
        let t = def(json!({"command": "GET", "args": ["user:{{id}}"]})).unwrap();
        assert_eq!(t.fields.len(), 1);
        assert!(t.fields[0].required);
        // Eden's legacy shape
        let t = def(
            json!({"template": {"operation": "set", "key": "session:{{user_id}}",
            "value": "{{data}}", "ttl": "{{ttl}}"}}),
        )
        .unwrap();
        let a = t
            .render(&json!({"user_id": "u", "data": "d", "ttl": "5"}))
            .unwrap();
        assert_eq!(strs(&a), ["SET", "session:u", "d", "EX", "5"]);
        assert_eq!(
            rendered_view(&a),
            json!({"command": "SET", "args": ["session:u", "d", "EX", "5"]})
        );
    }
}
