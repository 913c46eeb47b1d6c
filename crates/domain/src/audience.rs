//! The audience's rules, without I/O: contact languages, custom field types and the
//! validation of their values, the marketing consent vocabulary, and segment rules (a typed
//! JSON tree, bounded in depth and size) that the store compiles to SQL.

use crate::{FieldId, TagId};
use serde::{Deserialize, Serialize};

/// Longest free-text value (names, companies, text fields).
pub const MAX_TEXT: usize = 200;
/// Longest value of a text custom field.
pub const MAX_FIELD_TEXT: usize = 1000;
/// Most options a choice field may have.
pub const MAX_CHOICES: usize = 100;
/// Most custom fields an organisation may define.
pub const MAX_FIELDS: i64 = 100;
/// Most tags in an organisation's catalogue.
pub const MAX_TAGS: i64 = 500;

/// A language code as WhatsApp templates name them: `en`, `pt_BR`, `zh_Hant`, `es_419`
/// (a hyphen is accepted and becomes an underscore). Returns the normalised code.
pub fn parse_language(s: &str) -> Result<String, &'static str> {
    const MSG: &str = "a language code like en, pt_BR or es_419";
    let s = s.trim().replace('-', "_");
    let (lang, region) = match s.split_once('_') {
        Some((l, r)) => (l, Some(r)),
        None => (s.as_str(), None),
    };
    if !(2..=3).contains(&lang.len()) || !lang.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(MSG);
    }
    let mut out = lang.to_ascii_lowercase();
    if let Some(r) = region {
        let ok = (r.len() == 2 && r.chars().all(|c| c.is_ascii_alphabetic()))
            || (r.len() == 3 && r.chars().all(|c| c.is_ascii_digit()))
            || (r.len() == 4 && r.chars().all(|c| c.is_ascii_alphabetic()));
        if !ok {
            return Err(MSG);
        }
        out.push('_');
        if r.len() == 4 {
            // A script (Hant): title case.
            out.push_str(&r[..1].to_ascii_uppercase());
            out.push_str(&r[1..].to_ascii_lowercase());
        } else {
            out.push_str(&r.to_ascii_uppercase());
        }
    }
    Ok(out)
}

/// Trims a free-text value; empty means absent. Refuses control characters and overlong text.
pub fn parse_text(s: &str, max: usize) -> Result<Option<String>, String> {
    let t = s.trim();
    if t.is_empty() {
        return Ok(None);
    }
    if t.chars().count() > max {
        return Err(format!("at most {max} characters"));
    }
    if t.chars().any(|c| c.is_control()) {
        return Err("no control characters".into());
    }
    Ok(Some(t.to_owned()))
}

/// A custom field's key: lower-case letters, digits and `_`, starting with a letter, 1–40.
pub fn parse_field_key(s: &str) -> Result<String, &'static str> {
    let s = s.trim();
    let ok = !s.is_empty()
        && s.len() <= 40
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(s.to_owned())
    } else {
        Err("lower-case letters, digits and _, starting with a letter (at most 40)")
    }
}

/// A tag's name: 1 to 50 characters, trimmed.
pub fn parse_tag_name(s: &str) -> Result<String, &'static str> {
    match parse_text(s, 50) {
        Ok(Some(t)) => Ok(t),
        _ => Err("a tag is 1 to 50 characters"),
    }
}

/// The type of a custom field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    Text,
    Number,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// One of the field's options.
    Choice,
    Boolean,
}

impl FieldKind {
    pub const ALL: [FieldKind; 5] = [
        FieldKind::Text,
        FieldKind::Number,
        FieldKind::Date,
        FieldKind::Choice,
        FieldKind::Boolean,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FieldKind::Text => "text",
            FieldKind::Number => "number",
            FieldKind::Date => "date",
            FieldKind::Choice => "choice",
            FieldKind::Boolean => "boolean",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A choice field's options: 1 to 100 distinct, non-empty, at most 100 characters each.
pub fn parse_options(kind: FieldKind, options: &[String]) -> Result<Vec<String>, String> {
    if kind != FieldKind::Choice {
        return if options.is_empty() {
            Ok(vec![])
        } else {
            Err("only a choice field has options".into())
        };
    }
    if options.is_empty() || options.len() > MAX_CHOICES {
        return Err(format!("a choice field has 1 to {MAX_CHOICES} options"));
    }
    let mut out: Vec<String> = Vec::new();
    for o in options {
        let o = parse_text(o, 100)
            .map_err(|e| format!("option: {e}"))?
            .ok_or("an option cannot be empty")?;
        if out.contains(&o) {
            return Err(format!("option {o:?} is listed twice"));
        }
        out.push(o);
    }
    Ok(out)
}

/// A field value as stored: numbers apart (so they compare as numbers), the rest as text.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredValue {
    pub text: Option<String>,
    pub number: Option<f64>,
}

/// Checks a value against a field's type. JSON strings are accepted for every type (forms
/// and CSV files carry text); numbers and booleans also in their JSON form.
pub fn parse_field_value(
    kind: FieldKind,
    options: &[String],
    v: &serde_json::Value,
) -> Result<StoredValue, String> {
    use serde_json::Value;
    let text = |t: String| StoredValue {
        text: Some(t),
        number: None,
    };
    match (kind, v) {
        (FieldKind::Number, Value::Number(n)) => n
            .as_f64()
            .filter(|f| f.is_finite())
            .map(|f| StoredValue {
                text: None,
                number: Some(f),
            })
            .ok_or_else(|| "not a number".into()),
        (FieldKind::Number, Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(|f| StoredValue {
                text: None,
                number: Some(f),
            })
            .ok_or_else(|| format!("{:?} is not a number", trunc(s))),
        (FieldKind::Boolean, Value::Bool(b)) => Ok(text(b.to_string())),
        (FieldKind::Boolean, Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Ok(text("true".into())),
            "false" | "no" | "0" => Ok(text("false".into())),
            _ => Err(format!("{:?} is not yes or no", trunc(s))),
        },
        (FieldKind::Date, Value::String(s)) => parse_date(s.trim())
            .map(text)
            .ok_or_else(|| format!("{:?} is not a date (YYYY-MM-DD)", trunc(s))),
        (FieldKind::Choice, Value::String(s)) => {
            let s = s.trim();
            options
                .iter()
                .find(|o| o.as_str() == s || o.eq_ignore_ascii_case(s))
                .map(|o| text(o.clone()))
                .ok_or_else(|| format!("{:?} is not one of the options", trunc(s)))
        }
        (FieldKind::Text, Value::String(s)) => match parse_text(s, MAX_FIELD_TEXT)? {
            Some(t) => Ok(text(t)),
            None => Err("empty".into()),
        },
        (k, _) => Err(format!("not a {} value", k.as_str())),
    }
}

fn trunc(s: &str) -> String {
    s.chars().take(40).collect()
}

/// `YYYY-MM-DD` of a real date.
pub fn parse_date(s: &str) -> Option<String> {
    let f = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &f).ok().map(|d| {
        let f = time::macros::format_description!("[year]-[month]-[day]");
        d.format(&f).unwrap_or_default()
    })
}

/// Marketing consent: the latest ledger event decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConsentState {
    OptIn,
    OptOut,
}

impl ConsentState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentState::OptIn => "opt_in",
            ConsentState::OptOut => "opt_out",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "opt_in" => Some(ConsentState::OptIn),
            "opt_out" => Some(ConsentState::OptOut),
            _ => None,
        }
    }
}

/// Where a consent event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConsentSource {
    /// A web or paper form the customer filled in.
    Form,
    /// The customer wrote an opt-out or opt-in keyword on WhatsApp.
    Keyword,
    /// A CSV import.
    Import,
    /// An agent recorded it (e.g. on the phone).
    Agent,
    /// An API client recorded it.
    Api,
}

impl ConsentSource {
    pub const ALL: [ConsentSource; 5] = [
        ConsentSource::Form,
        ConsentSource::Keyword,
        ConsentSource::Import,
        ConsentSource::Agent,
        ConsentSource::Api,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConsentSource::Form => "form",
            ConsentSource::Keyword => "keyword",
            ConsentSource::Import => "import",
            ConsentSource::Agent => "agent",
            ConsentSource::Api => "api",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A keyword as customers' messages are compared with it: trimmed, upper-case, inner
/// whitespace collapsed. The whole message must be the keyword.
pub fn normalise_keyword(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_uppercase()
}

/// A consent keyword: 1 to 30 characters of letters, digits and spaces.
pub fn parse_keyword(s: &str) -> Result<String, String> {
    let k = normalise_keyword(s);
    if k.is_empty() || k.chars().count() > 30 || !k.chars().all(|c| c.is_alphanumeric() || c == ' ')
    {
        return Err(format!(
            "{:?}: a keyword is 1 to 30 letters, digits or spaces",
            trunc(s)
        ));
    }
    Ok(k)
}

// ---- segments ----

/// Deepest nesting of and/or/not a rule may have.
pub const MAX_RULE_DEPTH: usize = 6;
/// Most nodes in a rule.
pub const MAX_RULE_NODES: usize = 60;
/// Most values in one `in` list.
pub const MAX_IN_VALUES: usize = 100;

/// A segment rule: a tree of and/or/not over conditions on contacts.
///
/// ```json
/// {"and": [{"has_tag": "…tag id…"},
///          {"last_inbound": {"older_than_days": 30}},
///          {"field": {"id": "…field id…", "op": "in", "value": ["Pune", "Mumbai"]}}]}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
#[schema(no_recursion)]
pub enum Rule {
    /// Every sub-rule holds (an empty list: everyone).
    And(Vec<Rule>),
    /// At least one sub-rule holds.
    Or(Vec<Rule>),
    Not(Box<Rule>),
    /// The contact carries this tag.
    HasTag(TagId),
    /// The contact's current marketing consent: `opt_in`, `opt_out`, or `unknown` (no event).
    Consent(ConsentFilter),
    /// When the customer last wrote (on any number).
    LastInbound(TimeFilter),
    /// Whether the contact has a conversation that is not resolved.
    OpenConversation(bool),
    /// A built-in attribute.
    Attr(AttrCond),
    /// A custom field, by its definition's id.
    Field(FieldCond),
}

/// A consent state to match; `unknown` is a contact without any ledger event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConsentFilter {
    OptIn,
    OptOut,
    Unknown,
}

/// A time condition relative to now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TimeFilter {
    /// Within the last N days.
    WithinDays(u32),
    /// Wrote at some point, but not in the last N days.
    OlderThanDays(u32),
    /// Never wrote.
    Never(bool),
}

/// The built-in attributes a rule may compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Attr {
    /// The business's name for the contact, else the WhatsApp profile name.
    Name,
    Email,
    Language,
    Company,
    Username,
}

/// How a value is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Eq,
    Ne,
    In,
    /// Text contains (case-insensitive).
    Contains,
    Gt,
    Gte,
    Lt,
    Lte,
    IsSet,
    IsNotSet,
}

/// A condition on a built-in attribute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttrCond {
    pub name: Attr,
    pub op: Op,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub value: serde_json::Value,
}

/// A condition on a custom field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldCond {
    pub id: FieldId,
    pub op: Op,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub value: serde_json::Value,
}

impl Rule {
    /// Everyone.
    pub fn all() -> Self {
        Rule::And(vec![])
    }

    /// Checks the rule's shape: depth, size, `in` lists, days. Types of values are checked
    /// against the field definitions when the rule is compiled.
    pub fn check_shape(&self) -> Result<(), String> {
        let mut nodes = 0;
        self.walk(1, &mut nodes)
    }

    fn walk(&self, depth: usize, nodes: &mut usize) -> Result<(), String> {
        *nodes += 1;
        if *nodes > MAX_RULE_NODES {
            return Err(format!("a rule has at most {MAX_RULE_NODES} conditions"));
        }
        if depth > MAX_RULE_DEPTH {
            return Err(format!("a rule nests at most {MAX_RULE_DEPTH} levels"));
        }
        match self {
            Rule::And(rs) | Rule::Or(rs) => rs.iter().try_for_each(|r| r.walk(depth + 1, nodes)),
            Rule::Not(r) => r.walk(depth + 1, nodes),
            Rule::LastInbound(TimeFilter::WithinDays(d) | TimeFilter::OlderThanDays(d))
                if *d > 36_500 =>
            {
                Err("days are at most 36500".into())
            }
            Rule::Attr(AttrCond { op, value, .. }) | Rule::Field(FieldCond { op, value, .. }) => {
                match (op, value) {
                    (Op::In, serde_json::Value::Array(vs))
                        if !vs.is_empty() && vs.len() <= MAX_IN_VALUES =>
                    {
                        Ok(())
                    }
                    (Op::In, _) => Err(format!("`in` takes a list of 1 to {MAX_IN_VALUES} values")),
                    (Op::IsSet | Op::IsNotSet, _) => Ok(()),
                    (_, serde_json::Value::Array(_) | serde_json::Value::Object(_)) => {
                        Err("this comparison takes one value".into())
                    }
                    (_, serde_json::Value::Null) => Err("this comparison needs a value".into()),
                    _ => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn languages_normalise_and_odd_codes_are_refused() {
        assert_eq!(parse_language("en").unwrap(), "en");
        assert_eq!(parse_language("pt-br").unwrap(), "pt_BR");
        assert_eq!(parse_language("es_419").unwrap(), "es_419");
        assert_eq!(parse_language("zh_hant").unwrap(), "zh_Hant");
        for bad in ["", "e", "english", "en_", "en_B", "12", "en_BR_x", "pt;BR"] {
            assert!(parse_language(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn field_values_are_checked_against_their_type() {
        let opts = vec!["Pune".to_string(), "Mumbai".to_string()];
        let v = |k, j| parse_field_value(k, &opts, &j);
        assert_eq!(
            v(FieldKind::Number, json!("42.5")).unwrap().number,
            Some(42.5)
        );
        assert_eq!(v(FieldKind::Number, json!(7)).unwrap().number, Some(7.0));
        assert!(v(FieldKind::Number, json!("forty")).is_err());
        assert_eq!(
            v(FieldKind::Choice, json!("pune")).unwrap().text.as_deref(),
            Some("Pune")
        );
        assert!(v(FieldKind::Choice, json!("Delhi")).is_err());
        assert_eq!(
            v(FieldKind::Date, json!("2026-02-28"))
                .unwrap()
                .text
                .as_deref(),
            Some("2026-02-28")
        );
        assert!(v(FieldKind::Date, json!("2026-02-30")).is_err());
        assert_eq!(
            v(FieldKind::Boolean, json!("Yes")).unwrap().text.as_deref(),
            Some("true")
        );
        assert!(v(FieldKind::Boolean, json!("maybe")).is_err());
        assert!(v(FieldKind::Text, json!(5)).is_err());
        assert!(v(FieldKind::Text, json!("x".repeat(1001))).is_err());
    }

    #[test]
    fn choice_fields_need_distinct_options_and_others_none() {
        assert!(parse_options(FieldKind::Choice, &[]).is_err());
        assert!(parse_options(FieldKind::Choice, &["a".into(), "a".into()]).is_err());
        assert!(parse_options(FieldKind::Text, &["a".into()]).is_err());
        assert_eq!(
            parse_options(FieldKind::Choice, &[" a ".into(), "b".into()]).unwrap(),
            vec!["a", "b"]
        );
    }

    #[test]
    fn keywords_match_the_whole_message_case_insensitively() {
        assert_eq!(normalise_keyword("  stop  "), "STOP");
        assert_eq!(normalise_keyword("Stop  now"), "STOP NOW");
        assert!(parse_keyword("un-subscribe").is_err());
        assert_eq!(parse_keyword("unsubscribe").unwrap(), "UNSUBSCRIBE");
    }

    #[test]
    fn rules_parse_from_json_and_their_size_is_bounded() {
        let tag = TagId::new();
        let field = FieldId::new();
        let r: Rule = serde_json::from_value(json!({ "and": [
            { "has_tag": tag },
            { "last_inbound": { "older_than_days": 30 } },
            { "field": { "id": field, "op": "in", "value": ["Pune", "Mumbai"] } },
            { "not": { "consent": "opt_out" } },
        ]}))
        .unwrap();
        r.check_shape().unwrap();
        assert!(serde_json::from_value::<Rule>(json!({ "drop_table": 1 })).is_err());
        let mut deep = Rule::all();
        for _ in 0..MAX_RULE_DEPTH {
            deep = Rule::Not(Box::new(deep));
        }
        assert!(deep.check_shape().is_err());
        let wide = Rule::Or(vec![Rule::OpenConversation(true); MAX_RULE_NODES]);
        assert!(wide.check_shape().is_err());
        let empty_in = Rule::Attr(AttrCond {
            name: Attr::Language,
            op: Op::In,
            value: json!([]),
        });
        assert!(empty_in.check_shape().is_err());
    }
}

// ---- CSV import ----

/// Largest CSV file an import takes.
pub const MAX_IMPORT_BYTES: usize = 16 * 1024 * 1024;
/// Most data rows an import takes.
pub const MAX_IMPORT_ROWS: usize = 100_000;
/// Most columns an import takes.
pub const MAX_IMPORT_COLUMNS: usize = 60;

/// CSV records one at a time (RFC 4180: commas, double quotes with `""` inside, CRLF or LF
/// line ends; a UTF-8 byte order mark is skipped). Blank lines are skipped. A quoted value
/// left open at the end is an error.
struct CsvRecords<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> CsvRecords<'a> {
    fn new(text: &'a str) -> Self {
        let pos = if text.starts_with('\u{feff}') {
            '\u{feff}'.len_utf8()
        } else {
            0
        };
        Self { text, pos }
    }
}

impl Iterator for CsvRecords<'_> {
    type Item = Result<Vec<String>, String>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.pos < self.text.len() {
            let rest = self.text.get(self.pos..)?;
            let mut row = Vec::new();
            let mut cell = String::new();
            let mut quoted = false;
            let mut end = rest.len();
            let mut chars = rest.char_indices().peekable();
            while let Some((i, c)) = chars.next() {
                let next = chars.peek().map(|p| p.1);
                if quoted {
                    match c {
                        '"' if next == Some('"') => {
                            chars.next();
                            cell.push('"');
                        }
                        '"' => quoted = false,
                        _ => cell.push(c),
                    }
                    continue;
                }
                match c {
                    '"' if cell.is_empty() => quoted = true,
                    ',' => row.push(std::mem::take(&mut cell)),
                    '\r' if next == Some('\n') => {}
                    '\n' | '\r' => {
                        end = i + 1;
                        break;
                    }
                    _ => cell.push(c),
                }
            }
            if quoted {
                self.pos = self.text.len();
                return Some(Err("a quoted value is not closed".into()));
            }
            row.push(cell);
            self.pos += end;
            if !(row.len() == 1 && row[0].trim().is_empty()) {
                return Some(Ok(row));
            }
        }
        None
    }
}

/// Parses CSV (as `CsvRecords` reads it) and checks it against the import's bounds. Returns the header
/// and the rows, each row as long as the header (short rows padded, long ones refused).
pub fn parse_csv(text: &str) -> Result<(Vec<String>, Vec<Vec<String>>), String> {
    if text.len() > MAX_IMPORT_BYTES {
        return Err(format!(
            "the file is larger than {} MB",
            MAX_IMPORT_BYTES / 1024 / 1024
        ));
    }
    let mut records = CsvRecords::new(text);
    let header: Vec<String> = records
        .next()
        .ok_or("the file is empty")??
        .into_iter()
        .map(|h| h.trim().to_owned())
        .collect();
    if header.len() > MAX_IMPORT_COLUMNS {
        return Err(format!("more than {MAX_IMPORT_COLUMNS} columns"));
    }
    if header
        .iter()
        .any(|h| h.is_empty() || h.chars().count() > 100)
    {
        return Err("every column needs a name (1 to 100 characters) in the first row".into());
    }
    for (i, h) in header.iter().enumerate() {
        if header[..i].contains(h) {
            return Err(format!("column {h:?} appears twice"));
        }
    }
    let mut out = Vec::new();
    for r in records {
        let mut r = r?;
        if out.len() == MAX_IMPORT_ROWS {
            return Err(format!("more than {MAX_IMPORT_ROWS} rows"));
        }
        if r.len() > header.len() {
            return Err(format!(
                "row {} has more values than the header has columns",
                out.len() + 2
            ));
        }
        r.resize(header.len(), String::new());
        out.push(r);
    }
    Ok((header, out))
}

#[cfg(test)]
mod csv_tests {
    use super::*;

    #[test]
    fn csv_quotes_line_ends_and_bounds() {
        let (h, rows) =
            parse_csv("\u{feff}name,phone\r\n\"Rao, Asha\",\"+91 \"\"98\"\"\"\n\nRavi\n").unwrap();
        assert_eq!(h, ["name", "phone"]);
        assert_eq!(rows, [vec!["Rao, Asha", "+91 \"98\""], vec!["Ravi", ""]]);
        assert!(parse_csv("a,b\n1,2,3\n").is_err());
        assert!(parse_csv("a,a\n").is_err());
        assert!(parse_csv("a\n\"open\n").is_err());
        assert!(parse_csv("").is_err());
        let big = format!("a\n{}", "1\n".repeat(MAX_IMPORT_ROWS + 1));
        assert!(parse_csv(&big).is_err());
        let full = format!("a\n{}", "1\n".repeat(MAX_IMPORT_ROWS));
        assert_eq!(parse_csv(&full).unwrap().1.len(), MAX_IMPORT_ROWS);
    }

    #[test]
    fn quoted_values_may_span_lines_and_hold_any_script() {
        let text = "\u{feff}name,note\r\n\"Rao, Asha\",\"two\nlines\"\n\nRavi\nÉmile,é\n";
        let (h, rows) = parse_csv(text).unwrap();
        assert_eq!(h, ["name", "note"]);
        assert_eq!(
            rows,
            [
                vec!["Rao, Asha", "two\nlines"],
                vec!["Ravi", ""],
                vec!["Émile", "é"]
            ]
        );
    }
}
