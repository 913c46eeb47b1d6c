//! Segments: saved audience rules, their live count and preview, and the marketing
//! audience campaigns draw from.
//!
//! A [`Rule`] is compiled into [`Piece`]s: SQL text that is always a `&'static str` written
//! in this file, and bound values. User input can only ever become a bound value; the type
//! of the pieces makes anything else impossible to express. The same pieces run on both
//! backends through sqlx's `QueryBuilder`, which numbers the placeholders per dialect.
//! Every leaf yields TRUE or FALSE (never NULL), so `not` means what it says. A rule naming a
//! tag or field the organisation does not have is `NotFound` (another tenant's id is 404).

use crate::StoreError;
use crate::audience::{ContactRecord, FieldDef, consent_state_sql, contact_cols};
use crate::audit::AuditRecord;
use crate::orgs::now_micros;
use crate::tenant::{TenantTx, Tx};
use frontdesk_domain::audience::{
    Attr, AttrCond, ConsentFilter, FieldCond, FieldKind, Op, Rule, TimeFilter, parse_field_value,
    parse_text,
};
use frontdesk_domain::{ContactId, ImportId, SegmentId};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

/// Most segments an organisation may save.
pub const MAX_SEGMENTS: i64 = 200;
/// Contacts a preview shows.
pub const PREVIEW_CONTACTS: i64 = 5;

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Bind {
    Text(String),
    Real(f64),
    Uuid(Uuid),
    Time(OffsetDateTime),
    Int(i64),
}

/// A piece of a compiled query: fixed SQL text, or a bound value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Piece {
    Sql(&'static str),
    Bind(Bind),
}

struct Compiler<'a> {
    defs: &'a [FieldDef],
    tags: &'a [Uuid],
    now: OffsetDateTime,
    out: Vec<Piece>,
}

fn invalid(m: impl Into<String>) -> StoreError {
    StoreError::Invalid(format!("rule: {}", m.into()))
}

/// The SQL of an operator on a scalar.
fn cmp_sql(op: Op) -> Option<&'static str> {
    Some(match op {
        Op::Eq => " = ",
        Op::Ne => " <> ",
        Op::Gt => " > ",
        Op::Gte => " >= ",
        Op::Lt => " < ",
        Op::Lte => " <= ",
        _ => return None,
    })
}

/// `%text%` for `LIKE … ESCAPE '\'`, lower-cased.
fn contains_pattern(q: &str) -> String {
    let mut s = String::from("%");
    for ch in q.to_lowercase().chars() {
        if matches!(ch, '%' | '_' | '\\') {
            s.push('\\');
        }
        s.push(ch);
    }
    s.push('%');
    s
}

impl Compiler<'_> {
    fn sql(&mut self, s: &'static str) {
        self.out.push(Piece::Sql(s));
    }

    fn bind(&mut self, b: Bind) {
        self.out.push(Piece::Bind(b));
    }

    /// `(a SEP b SEP c)`, or `empty` for no parts.
    fn list(
        &mut self,
        rs: &[Rule],
        sep: &'static str,
        empty: &'static str,
    ) -> Result<(), StoreError> {
        if rs.is_empty() {
            self.sql(empty);
            return Ok(());
        }
        self.sql("(");
        for (i, r) in rs.iter().enumerate() {
            if i > 0 {
                self.sql(sep);
            }
            self.rule(r)?;
        }
        self.sql(")");
        Ok(())
    }

    fn rule(&mut self, r: &Rule) -> Result<(), StoreError> {
        match r {
            Rule::And(rs) => self.list(rs, " AND ", "(1 = 1)"),
            Rule::Or(rs) => self.list(rs, " OR ", "(1 = 0)"),
            Rule::Not(r) => {
                self.sql("(NOT ");
                self.rule(r)?;
                self.sql(")");
                Ok(())
            }
            Rule::HasTag(t) => {
                // Another organisation's id names nothing here: not found, like everywhere.
                if !self.tags.contains(&t.as_uuid()) {
                    return Err(StoreError::NotFound);
                }
                self.sql("EXISTS (SELECT 1 FROM contact_tags t WHERE t.org_id = k.org_id AND t.contact_id = k.id AND t.tag_id = ");
                self.bind(Bind::Uuid(t.as_uuid()));
                self.sql(")");
                Ok(())
            }
            Rule::Consent(f) => {
                self.sql(match f {
                    ConsentFilter::OptIn => {
                        concat!("coalesce(", consent_state_sql!(), ", '') = 'opt_in'")
                    }
                    ConsentFilter::OptOut => {
                        concat!("coalesce(", consent_state_sql!(), ", '') = 'opt_out'")
                    }
                    ConsentFilter::Unknown => concat!(consent_state_sql!(), " IS NULL"),
                });
                Ok(())
            }
            Rule::LastInbound(t) => {
                const WROTE: &str = "EXISTS (SELECT 1 FROM conversations c WHERE c.org_id = k.org_id AND c.contact_id = k.id AND c.last_inbound_at IS NOT NULL)";
                const SINCE: &str = "EXISTS (SELECT 1 FROM conversations c WHERE c.org_id = k.org_id AND c.contact_id = k.id AND c.last_inbound_at >= ";
                match *t {
                    TimeFilter::WithinDays(d) => {
                        self.sql(SINCE);
                        self.bind(Bind::Time(self.now - time::Duration::days(i64::from(d))));
                        self.sql(")");
                    }
                    TimeFilter::OlderThanDays(d) => {
                        self.sql("(");
                        self.sql(WROTE);
                        self.sql(" AND NOT ");
                        self.sql(SINCE);
                        self.bind(Bind::Time(self.now - time::Duration::days(i64::from(d))));
                        self.sql("))");
                    }
                    TimeFilter::Never(true) => {
                        self.sql("(NOT ");
                        self.sql(WROTE);
                        self.sql(")");
                    }
                    TimeFilter::Never(false) => self.sql(WROTE),
                }
                Ok(())
            }
            Rule::OpenConversation(open) => {
                if !open {
                    self.sql("NOT ");
                }
                self.sql("EXISTS (SELECT 1 FROM conversations c WHERE c.org_id = k.org_id AND c.contact_id = k.id AND c.status <> 'resolved')");
                Ok(())
            }
            Rule::Attr(a) => self.attr(a),
            Rule::Field(f) => self.field(f),
        }
    }

    fn text_value(v: &serde_json::Value) -> Result<String, StoreError> {
        match v {
            serde_json::Value::String(s) => parse_text(s, 1000)
                .map_err(invalid)?
                .ok_or_else(|| invalid("empty value")),
            _ => Err(invalid("a text value is a string")),
        }
    }

    fn attr(&mut self, a: &AttrCond) -> Result<(), StoreError> {
        let col: &'static str = match a.name {
            Attr::Name => "lower(coalesce(k.name, k.profile_name, ''))",
            Attr::Email => "lower(coalesce(k.email, ''))",
            Attr::Language => "lower(coalesce(k.language, ''))",
            Attr::Company => "lower(coalesce(k.company, ''))",
            Attr::Username => "lower(coalesce(k.username, ''))",
        };
        let raw: &'static str = match a.name {
            Attr::Name => "coalesce(k.name, k.profile_name)",
            Attr::Email => "k.email",
            Attr::Language => "k.language",
            Attr::Company => "k.company",
            Attr::Username => "k.username",
        };
        match a.op {
            Op::IsSet | Op::IsNotSet => {
                self.sql("(");
                self.sql(raw);
                self.sql(if a.op == Op::IsSet {
                    " IS NOT NULL)"
                } else {
                    " IS NULL)"
                });
            }
            Op::Eq | Op::Ne => {
                let v = Self::text_value(&a.value)?.to_lowercase();
                self.sql("(");
                self.sql(col);
                self.sql(cmp_sql(a.op).expect("eq and ne compare"));
                self.bind(Bind::Text(v));
                self.sql(")");
            }
            Op::Contains => {
                let v = Self::text_value(&a.value)?;
                self.sql("(");
                self.sql(col);
                self.sql(" LIKE ");
                self.bind(Bind::Text(contains_pattern(&v)));
                self.sql(" ESCAPE '\\')");
            }
            Op::In => {
                let serde_json::Value::Array(vs) = &a.value else {
                    return Err(invalid("`in` takes a list"));
                };
                self.sql("(");
                self.sql(col);
                self.sql(" IN (");
                for (i, v) in vs.iter().enumerate() {
                    if i > 0 {
                        self.sql(", ");
                    }
                    self.bind(Bind::Text(Self::text_value(v)?.to_lowercase()));
                }
                self.sql("))");
            }
            Op::Gt | Op::Gte | Op::Lt | Op::Lte => {
                return Err(invalid(
                    "built-in attributes compare with eq, ne, in, contains, is_set, is_not_set",
                ));
            }
        }
        Ok(())
    }

    fn field_value(def: &FieldDef, v: &serde_json::Value) -> Result<Bind, StoreError> {
        let stored = parse_field_value(def.kind, &def.options, v)
            .map_err(|m| invalid(format!("field {}: {m}", def.key)))?;
        Ok(match (stored.number, stored.text) {
            (Some(n), _) => Bind::Real(n),
            (None, Some(t)) if def.kind == FieldKind::Text => Bind::Text(t.to_lowercase()),
            (None, Some(t)) => Bind::Text(t),
            (None, None) => return Err(invalid(format!("field {}: no value", def.key))),
        })
    }

    fn field(&mut self, f: &FieldCond) -> Result<(), StoreError> {
        let def = self
            .defs
            .iter()
            .find(|d| d.id == f.id)
            .ok_or(StoreError::NotFound)?
            .clone();
        const HAS: &str = "EXISTS (SELECT 1 FROM contact_field_values v WHERE v.org_id = k.org_id AND v.contact_id = k.id AND v.field_id = ";
        let col: &'static str = match def.kind {
            FieldKind::Number => " AND v.value_number",
            FieldKind::Text => " AND lower(v.value_text)",
            _ => " AND v.value_text",
        };
        let ordered = matches!(def.kind, FieldKind::Number | FieldKind::Date);
        match f.op {
            Op::IsSet | Op::IsNotSet => {
                if f.op == Op::IsNotSet {
                    self.sql("NOT ");
                }
                self.sql(HAS);
                self.bind(Bind::Uuid(def.id.as_uuid()));
                self.sql(")");
            }
            Op::Eq | Op::Ne | Op::Gt | Op::Gte | Op::Lt | Op::Lte => {
                if !ordered && !matches!(f.op, Op::Eq | Op::Ne) {
                    return Err(invalid(format!(
                        "field {} ({}) compares with eq, ne, in, is_set, is_not_set{}",
                        def.key,
                        def.kind.as_str(),
                        if def.kind == FieldKind::Text {
                            ", contains"
                        } else {
                            ""
                        }
                    )));
                }
                let v = Self::field_value(&def, &f.value)?;
                // "not equal" includes contacts without a value.
                let (neg, op) = if f.op == Op::Ne {
                    (true, Op::Eq)
                } else {
                    (false, f.op)
                };
                if neg {
                    self.sql("NOT ");
                }
                self.sql(HAS);
                self.bind(Bind::Uuid(def.id.as_uuid()));
                self.sql(col);
                self.sql(cmp_sql(op).expect("a comparison"));
                self.bind(v);
                self.sql(")");
            }
            Op::In => {
                let serde_json::Value::Array(vs) = &f.value else {
                    return Err(invalid("`in` takes a list"));
                };
                self.sql(HAS);
                self.bind(Bind::Uuid(def.id.as_uuid()));
                self.sql(col);
                self.sql(" IN (");
                for (i, v) in vs.iter().enumerate() {
                    if i > 0 {
                        self.sql(", ");
                    }
                    let b = Self::field_value(&def, v)?;
                    self.bind(b);
                }
                self.sql("))");
            }
            Op::Contains => {
                if def.kind != FieldKind::Text {
                    return Err(invalid(format!(
                        "field {}: contains is for text fields",
                        def.key
                    )));
                }
                let v = Self::text_value(&f.value)?;
                self.sql(HAS);
                self.bind(Bind::Uuid(def.id.as_uuid()));
                self.sql(" AND lower(v.value_text) LIKE ");
                self.bind(Bind::Text(contains_pattern(&v)));
                self.sql(" ESCAPE '\\')");
            }
        }
        Ok(())
    }
}

/// Runs pieces on the transaction's backend with `$fetch` (`fetch_one`, `fetch_all`).
macro_rules! run_pieces {
    ($tx:expr, $pieces:expr, $build:ident, $ty:ty, $fetch:ident) => {
        match &mut $tx {
            Tx::Sqlite(t) => {
                let mut qb = sqlx::QueryBuilder::<sqlx::Sqlite>::new("");
                $crate::segments::push_pieces!(qb, $pieces);
                qb.$build::<$ty>().$fetch(&mut **t).await?
            }
            Tx::Postgres(t) => {
                let mut qb = sqlx::QueryBuilder::<sqlx::Postgres>::new("");
                $crate::segments::push_pieces!(qb, $pieces);
                qb.$build::<$ty>().$fetch(&mut **t).await?
            }
        }
    };
}

pub(crate) use run_pieces;

macro_rules! push_pieces {
    ($qb:ident, $pieces:expr) => {
        for p in $pieces {
            match p {
                $crate::segments::Piece::Sql(s) => {
                    $qb.push(*s);
                }
                $crate::segments::Piece::Bind($crate::segments::Bind::Text(v)) => {
                    $qb.push_bind(v.clone());
                }
                $crate::segments::Piece::Bind($crate::segments::Bind::Real(v)) => {
                    $qb.push_bind(*v);
                }
                $crate::segments::Piece::Bind($crate::segments::Bind::Uuid(v)) => {
                    $qb.push_bind(*v);
                }
                $crate::segments::Piece::Bind($crate::segments::Bind::Time(v)) => {
                    $qb.push_bind(*v);
                }
                $crate::segments::Piece::Bind($crate::segments::Bind::Int(v)) => {
                    $qb.push_bind(*v);
                }
            }
        }
    };
}
pub(crate) use push_pieces;

/// A saved segment.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Segment {
    pub id: SegmentId,
    pub name: String,
    pub rule: Rule,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// How many contacts a rule selects now, and the newest few.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SegmentPreview {
    pub count: i64,
    pub contacts: Vec<ContactRecord>,
}

/// Which contacts a marketing send may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentRequirement {
    /// Only contacts whose latest consent event is an opt-in.
    OptedIn,
    /// Everyone but those who opted out (unknown included).
    NotOptedOut,
}

type SegmentRow = (Uuid, String, String, OffsetDateTime, OffsetDateTime);

fn segment(r: SegmentRow) -> Result<Segment, StoreError> {
    Ok(Segment {
        id: SegmentId::from_uuid(r.0),
        name: r.1,
        rule: serde_json::from_str(&r.2)
            .map_err(|_| StoreError::Corrupt("a stored segment rule does not parse".into()))?,
        created_at: r.3,
        updated_at: r.4,
    })
}

impl TenantTx {
    /// Compiles a rule (shape, tags, fields and values checked) into SQL pieces over `k`.
    pub(crate) async fn compile_rule(
        &mut self,
        rule: &Rule,
        now: OffsetDateTime,
    ) -> Result<Vec<Piece>, StoreError> {
        rule.check_shape().map_err(invalid)?;
        let defs = self.fields().await?;
        let tags: Vec<Uuid> = self
            .tags()
            .await?
            .into_iter()
            .map(|t| t.id.as_uuid())
            .collect();
        let mut c = Compiler {
            defs: &defs,
            tags: &tags,
            now,
            out: Vec::new(),
        };
        c.rule(rule)?;
        Ok(c.out)
    }

    /// The contacts `k` of this organisation the rule selects, as a WHERE clause.
    fn where_rule(&self, rule: Vec<Piece>) -> Vec<Piece> {
        self.where_rule_in(None, rule)
    }

    /// As [`Self::where_rule`], and with `import`, only the contacts that import's rows
    /// became (a campaign's CSV audience).
    fn where_rule_in(&self, import: Option<ImportId>, rule: Vec<Piece>) -> Vec<Piece> {
        let mut p = vec![
            Piece::Sql(" FROM contacts k WHERE k.org_id = "),
            Piece::Bind(Bind::Uuid(self.org())),
            // Erased contacts are tombstones: in no audience.
            Piece::Sql(" AND k.erased_at IS NULL AND "),
        ];
        if let Some(i) = import {
            p.push(Piece::Sql(
                "EXISTS (SELECT 1 FROM contact_import_contacts ic WHERE ic.org_id = k.org_id AND ic.import_id = ",
            ));
            p.push(Piece::Bind(Bind::Uuid(i.as_uuid())));
            p.push(Piece::Sql(" AND ic.contact_id = k.id) AND "));
        }
        p.extend(rule);
        p
    }

    /// How many contacts the rule selects now (within `import`'s contacts when given).
    pub(crate) async fn count_rule_in(
        &mut self,
        import: Option<ImportId>,
        rule: &Rule,
        now: OffsetDateTime,
    ) -> Result<i64, StoreError> {
        let compiled = self.compile_rule(rule, now).await?;
        let mut q = vec![Piece::Sql("SELECT count(*)")];
        q.extend(self.where_rule_in(import, compiled));
        Ok(run_pieces!(self.tx, &q, build_query_scalar, i64, fetch_one))
    }

    /// How many contacts the rule selects now, and the newest few (masked as the caller
    /// must see them).
    pub async fn preview_rule(
        &mut self,
        rule: &Rule,
        now: OffsetDateTime,
    ) -> Result<SegmentPreview, StoreError> {
        let compiled = self.compile_rule(rule, now).await?;
        let body = self.where_rule(compiled);
        let mut count_q = vec![Piece::Sql("SELECT count(*)")];
        count_q.extend(body.iter().cloned());
        let count: i64 = run_pieces!(self.tx, &count_q, build_query_scalar, i64, fetch_one);
        let mut rows_q = vec![Piece::Sql(concat!("SELECT ", contact_cols!()))];
        rows_q.extend(body);
        rows_q.push(Piece::Sql(" ORDER BY k.created_at DESC, k.id DESC LIMIT "));
        rows_q.push(Piece::Bind(Bind::Int(PREVIEW_CONTACTS)));
        let rows: Vec<crate::audience::ContactRow> = run_pieces!(
            self.tx,
            &rows_q,
            build_query_as,
            crate::audience::ContactRow,
            fetch_all
        );
        let mut contacts = Vec::with_capacity(rows.len());
        for r in rows {
            contacts.push(self.record_of(r).await?);
        }
        Ok(SegmentPreview { count, contacts })
    }

    /// The contacts a marketing send to this rule may reach, in id order after `after`, at
    /// most `limit`. Opted-out contacts are never among them, whatever the rule says: the
    /// exclusion is added outside the rule.
    pub async fn marketing_audience(
        &mut self,
        rule: &Rule,
        consent: ConsentRequirement,
        after: Option<ContactId>,
        limit: i64,
        now: OffsetDateTime,
    ) -> Result<Vec<ContactId>, StoreError> {
        self.marketing_audience_in(None, rule, consent, after, limit, now)
            .await
    }

    /// As [`Self::marketing_audience`], within the contacts of a CSV import when given.
    pub(crate) async fn marketing_audience_in(
        &mut self,
        import: Option<ImportId>,
        rule: &Rule,
        consent: ConsentRequirement,
        after: Option<ContactId>,
        limit: i64,
        now: OffsetDateTime,
    ) -> Result<Vec<ContactId>, StoreError> {
        let compiled = self.compile_rule(rule, now).await?;
        let mut q = vec![Piece::Sql("SELECT k.id")];
        q.extend(self.where_rule_in(import, vec![Piece::Sql("(")]));
        q.extend(compiled);
        q.push(Piece::Sql(concat!(
            ") AND coalesce(",
            consent_state_sql!(),
            ", '') <> 'opt_out'"
        )));
        if consent == ConsentRequirement::OptedIn {
            q.push(Piece::Sql(concat!(
                " AND coalesce(",
                consent_state_sql!(),
                ", '') = 'opt_in'"
            )));
        }
        if let Some(a) = after {
            q.push(Piece::Sql(" AND k.id > "));
            q.push(Piece::Bind(Bind::Uuid(a.as_uuid())));
        }
        q.push(Piece::Sql(" ORDER BY k.id LIMIT "));
        q.push(Piece::Bind(Bind::Int(limit.clamp(1, 10_000))));
        let ids: Vec<Uuid> = run_pieces!(self.tx, &q, build_query_scalar, Uuid, fetch_all);
        Ok(ids.into_iter().map(ContactId::from_uuid).collect())
    }

    /// The organisation's segments, by name.
    pub async fn segments(&mut self) -> Result<Vec<Segment>, StoreError> {
        let org = self.org();
        let rows: Vec<SegmentRow> = crate::tenant::with_conn!(self.tx, c => {
            sqlx::query_as("SELECT id, name, rule, created_at, updated_at FROM segments WHERE org_id = $1 ORDER BY name")
                .bind(org).fetch_all(c).await?
        });
        rows.into_iter().map(segment).collect()
    }

    /// One segment.
    pub async fn segment(&mut self, id: SegmentId) -> Result<Segment, StoreError> {
        let org = self.org();
        let row: Option<SegmentRow> = crate::tenant::with_conn!(self.tx, c => {
            sqlx::query_as("SELECT id, name, rule, created_at, updated_at FROM segments WHERE org_id = $1 AND id = $2")
                .bind(org).bind(id.as_uuid()).fetch_optional(c).await?
        });
        segment(row.ok_or(StoreError::NotFound)?)
    }

    /// Saves a new segment (or, with `id`, changes one); the rule must compile.
    pub async fn save_segment(
        &mut self,
        id: Option<SegmentId>,
        name: &str,
        rule: &Rule,
    ) -> Result<Segment, StoreError> {
        let name = match parse_text(name, 80) {
            Ok(Some(n)) => n,
            _ => return Err(StoreError::Invalid("name: 1 to 80 characters".into())),
        };
        self.compile_rule(rule, now_micros()).await?;
        let text = serde_json::to_string(rule).expect("rules serialise");
        let org = self.org();
        let taken: Option<Uuid> = crate::tenant::with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT id FROM segments WHERE org_id = $1 AND name = $2").bind(org).bind(&name).fetch_optional(c).await?
        });
        if taken.is_some_and(|t| Some(t) != id.map(|i| i.as_uuid())) {
            return Err(StoreError::Conflict("segment_name_taken"));
        }
        let now = now_micros();
        let id = match id {
            Some(id) => {
                let n = crate::tenant::with_conn!(self.tx, c => {
                    sqlx::query("UPDATE segments SET name = $3, rule = $4, updated_at = $5 WHERE org_id = $1 AND id = $2")
                        .bind(org).bind(id.as_uuid()).bind(&name).bind(&text).bind(now).execute(c).await?.rows_affected()
                });
                if n == 0 {
                    return Err(StoreError::NotFound);
                }
                self.audit(AuditRecord::new(
                    "segment.updated",
                    "segment",
                    id.to_string(),
                    serde_json::json!({ "name": name }),
                ))
                .await?;
                id
            }
            None => {
                let count: i64 = crate::tenant::with_conn!(self.tx, c => {
                    sqlx::query_scalar("SELECT count(*) FROM segments WHERE org_id = $1").bind(org).fetch_one(c).await?
                });
                if count >= MAX_SEGMENTS {
                    return Err(StoreError::Conflict("too_many_segments"));
                }
                let id = SegmentId::new();
                crate::tenant::with_conn!(self.tx, c => {
                    sqlx::query("INSERT INTO segments (org_id, id, name, rule, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)")
                        .bind(org).bind(id.as_uuid()).bind(&name).bind(&text).bind(now).execute(c).await?;
                });
                self.audit(AuditRecord::new(
                    "segment.created",
                    "segment",
                    id.to_string(),
                    serde_json::json!({ "name": name }),
                ))
                .await?;
                id
            }
        };
        self.segment(id).await
    }

    /// Deletes a segment.
    pub async fn delete_segment(&mut self, id: SegmentId) -> Result<(), StoreError> {
        let org = self.org();
        let n = crate::tenant::with_conn!(self.tx, c => {
            sqlx::query("DELETE FROM segments WHERE org_id = $1 AND id = $2").bind(org).bind(id.as_uuid()).execute(c).await?.rows_affected()
        });
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        self.audit(AuditRecord::new(
            "segment.deleted",
            "segment",
            id.to_string(),
            serde_json::json!({}),
        ))
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use frontdesk_domain::FieldId;
    use serde_json::json;

    fn compile(rule: serde_json::Value, defs: &[FieldDef]) -> Result<Vec<Piece>, StoreError> {
        let rule: Rule = serde_json::from_value(rule).unwrap();
        rule.check_shape().map_err(invalid)?;
        let mut c = Compiler {
            defs,
            tags: &[],
            now: OffsetDateTime::UNIX_EPOCH,
            out: vec![],
        };
        c.rule(&rule)?;
        Ok(c.out)
    }

    #[test]
    fn user_values_only_ever_become_bound_values() {
        let id = FieldId::new();
        let defs = vec![FieldDef {
            id,
            key: "city".into(),
            label: "City".into(),
            kind: FieldKind::Text,
            options: vec![],
        }];
        let evil = "x'); DROP TABLE contacts; --";
        let pieces = compile(
            json!({ "or": [
                { "attr": { "name": "company", "op": "contains", "value": evil } },
                { "field": { "id": id, "op": "in", "value": [evil, "Pune"] } },
            ]}),
            &defs,
        )
        .unwrap();
        for p in &pieces {
            if let Piece::Sql(s) = p {
                assert!(!s.contains("DROP"), "{s}");
            }
        }
        let binds = pieces
            .iter()
            .filter(|p| matches!(p, Piece::Bind(_)))
            .count();
        assert_eq!(binds, 1 + 1 + 2, "the pattern, the field id, two values");
    }

    #[test]
    fn values_are_checked_against_the_field_type_and_unknown_ids_refused() {
        let id = FieldId::new();
        let defs = vec![FieldDef {
            id,
            key: "visits".into(),
            label: "Visits".into(),
            kind: FieldKind::Number,
            options: vec![],
        }];
        assert!(
            compile(
                json!({ "field": { "id": id, "op": "gt", "value": "many" } }),
                &defs
            )
            .is_err()
        );
        assert!(
            compile(
                json!({ "field": { "id": id, "op": "gt", "value": 3 } }),
                &defs
            )
            .is_ok()
        );
        assert!(
            compile(
                json!({ "field": { "id": FieldId::new(), "op": "is_set" } }),
                &defs
            )
            .is_err()
        );
        assert!(compile(json!({ "has_tag": uuid::Uuid::now_v7() }), &defs).is_err());
        assert!(
            compile(
                json!({ "attr": { "name": "email", "op": "gt", "value": "a" } }),
                &defs
            )
            .is_err()
        );
    }
}
