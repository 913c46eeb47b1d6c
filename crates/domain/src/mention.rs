//! @mentions in internal notes.
//!
//! A mention is written into the note's text as a token that carries the member's user id
//! and reads as their name: `@[Asha Kumar](user:0193…-…)`. The id makes it unambiguous
//! (display names contain spaces and two members may share one); the name is what the
//! note shows. The server resolves mentions from the text alone, and rewrites each
//! token's name to the member's current name when the note is written, so a note cannot
//! show one name while notifying another person.

use crate::UserId;
use serde::Serialize;

/// The most distinct members one note may mention.
pub const MAX_MENTIONS: usize = 20;

/// The longest name a token may carry (characters).
pub const MAX_TOKEN_NAME: usize = 200;

const OPEN: &str = "@[";
const LINK: &str = "](user:";
/// A hyphenated UUID's length.
const ID_LEN: usize = 36;

/// A piece of a note's text: plain text, or a mention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NotePart {
    Text { text: String },
    Mention { user_id: UserId, name: String },
}

/// A token found in a note's text: where it is and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MentionToken<'a> {
    /// Byte range of the whole token in the text.
    pub start: usize,
    pub end: usize,
    pub user: UserId,
    pub name: &'a str,
}

/// Every well-formed mention token in `text`, in order. Anything that only looks like one
/// (no closing bracket, a name with a line break or bracket, a malformed id) is plain text.
pub fn find_mentions(text: &str) -> Vec<MentionToken<'_>> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find(OPEN) {
        let start = from + i;
        match token_at(text, start) {
            Some(t) => {
                from = t.end;
                out.push(t);
            }
            None => from = start + 1,
        }
    }
    out
}

fn token_at(text: &str, start: usize) -> Option<MentionToken<'_>> {
    let name_start = start + OPEN.len();
    let rest = &text[name_start..];
    let close = rest.find(']')?;
    let name = &rest[..close];
    if !valid_token_name(name) {
        return None;
    }
    let after = &rest[close..];
    let id_part = after.strip_prefix(LINK)?;
    let id = id_part.get(..ID_LEN)?;
    if !id_part[ID_LEN..].starts_with(')') || id.chars().filter(|c| *c == '-').count() != 4 {
        return None;
    }
    let user = UserId::parse(id).ok()?;
    let end = name_start + close + LINK.len() + ID_LEN + 1;
    Some(MentionToken {
        start,
        end,
        user,
        name,
    })
}

fn valid_token_name(name: &str) -> bool {
    let n = name.chars().count();
    (1..=MAX_TOKEN_NAME).contains(&n) && !name.chars().any(|c| c == '[' || c.is_control())
}

/// The name as a token carries it: brackets become parentheses, control characters
/// (line breaks) spaces, at most [`MAX_TOKEN_NAME`] characters; never empty.
pub fn token_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| match c {
            '[' => '(',
            ']' => ')',
            c if c.is_control() => ' ',
            c => c,
        })
        .take(MAX_TOKEN_NAME)
        .collect();
    let trimmed = cleaned.trim();
    if trimmed.is_empty() {
        "member".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// The token that mentions `user`, reading as `name`.
pub fn mention_token(user: UserId, name: &str) -> String {
    format!("{OPEN}{}{LINK}{user})", token_name(name))
}

/// `text` with every token's name replaced by `name_of(user)` (the member's current name).
pub fn rewrite_mentions(text: &str, name_of: impl Fn(UserId) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for t in find_mentions(text) {
        out.push_str(&text[at..t.start]);
        match name_of(t.user) {
            Some(name) => out.push_str(&mention_token(t.user, &name)),
            None => out.push_str(&text[t.start..t.end]),
        }
        at = t.end;
    }
    out.push_str(&text[at..]);
    out
}

/// The note's text split for display: tokens of the members in `mentioned` become
/// [`NotePart::Mention`] (shown as `@name`), everything else stays text.
pub fn note_parts(text: &str, mentioned: &[UserId]) -> Vec<NotePart> {
    let mut parts = Vec::new();
    let mut pending = String::new();
    let mut at = 0;
    for t in find_mentions(text) {
        if !mentioned.contains(&t.user) {
            continue;
        }
        pending.push_str(&text[at..t.start]);
        if !pending.is_empty() {
            parts.push(NotePart::Text {
                text: std::mem::take(&mut pending),
            });
        }
        parts.push(NotePart::Mention {
            user_id: t.user,
            name: t.name.to_owned(),
        });
        at = t.end;
    }
    pending.push_str(&text[at..]);
    if !pending.is_empty() {
        parts.push(NotePart::Text { text: pending });
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
    const B: &str = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c";

    fn id(s: &str) -> UserId {
        UserId::parse(s).unwrap()
    }

    #[test]
    fn tokens_are_found_with_their_ids_and_names() {
        let text = format!("ask @[Asha Kumar](user:{A}) and @[Asha Kumar](user:{B}), please");
        let found = find_mentions(&text);
        assert_eq!(found.len(), 2);
        assert_eq!((found[0].user, found[0].name), (id(A), "Asha Kumar"));
        assert_eq!((found[1].user, found[1].name), (id(B), "Asha Kumar"));
        assert_eq!(
            &text[found[0].start..found[0].end],
            format!("@[Asha Kumar](user:{A})")
        );
    }

    #[test]
    fn things_that_only_look_like_tokens_are_text() {
        for text in [
            "@Asha".to_owned(),
            "@[Asha]".to_owned(),
            format!("@[](user:{A})"),
            format!("@[As\nha](user:{A})"),
            format!("@[Asha](user:{})", &A[..35]),
            format!("@[Asha](user:{}x)", &A[..35]),
            format!("@[Asha](user:{})", A.replace('-', "")),
            format!("@[Asha](team:{A})"),
            format!("@[Asha](user:{A}"),
            format!("@[A[sha](user:{A})"),
        ] {
            assert!(find_mentions(&text).is_empty(), "{text:?}");
        }
        // A broken opening does not hide a good token after it.
        let text = format!("@[oops @[Ravi](user:{A})");
        assert_eq!(find_mentions(&text).len(), 1);
    }

    #[test]
    fn names_in_tokens_cannot_break_out_of_them() {
        let t = mention_token(id(A), "Eve](user:x) [<script>\n");
        assert_eq!(t, format!("@[Eve)(user:x) (<script>](user:{A})"));
        let found = find_mentions(&t);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].user, id(A));
        assert_eq!(mention_token(id(A), " \n "), format!("@[member](user:{A})"));
        assert_eq!(token_name(&"x".repeat(300)).chars().count(), MAX_TOKEN_NAME);
    }

    #[test]
    fn rewriting_puts_current_names_in_and_keeps_the_rest() {
        let text = format!("hi @[Boss](user:{A}) and @[Who](user:{B}) ok");
        let out = rewrite_mentions(&text, |u| (u == id(A)).then(|| "Asha".to_owned()));
        assert_eq!(out, format!("hi @[Asha](user:{A}) and @[Who](user:{B}) ok"));
    }

    #[test]
    fn parts_show_only_the_notes_mentions() {
        let text = format!("@[Asha](user:{A}) call @[Ravi](user:{B})!");
        assert_eq!(
            note_parts(&text, &[id(A)]),
            vec![
                NotePart::Mention {
                    user_id: id(A),
                    name: "Asha".into()
                },
                NotePart::Text {
                    text: format!(" call @[Ravi](user:{B})!")
                },
            ]
        );
        assert_eq!(
            note_parts("plain", &[]),
            vec![NotePart::Text {
                text: "plain".into()
            }]
        );
    }
}
