//! The media WhatsApp carries: which file types, of which message kind, up to what size.

/// One mebibyte.
const MB: usize = 1024 * 1024;

/// Largest file WhatsApp carries (a document).
pub const MAX_MEDIA_BYTES: usize = 100 * MB;

/// The message kind a file of type `mime` is sent as, and the largest such file WhatsApp
/// accepts; `None` for types WhatsApp does not carry. Parameters (`audio/ogg; codecs=opus`)
/// and case are ignored.
pub fn media_limit(mime: &str) -> Option<(&'static str, usize)> {
    let base = mime
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    Some(match base.as_str() {
        "image/jpeg" | "image/png" => ("image", 5 * MB),
        "image/webp" => ("sticker", 500 * 1024),
        "audio/aac" | "audio/amr" | "audio/mpeg" | "audio/mp4" | "audio/ogg" => ("audio", 16 * MB),
        "video/mp4" | "video/3gpp" => ("video", 16 * MB),
        "text/plain"
        | "application/pdf"
        | "application/msword"
        | "application/vnd.ms-excel"
        | "application/vnd.ms-powerpoint"
        | "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        | "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        | "application/vnd.openxmlformats-officedocument.presentationml.presentation" => {
            ("document", MAX_MEDIA_BYTES)
        }
        _ => return None,
    })
}

/// Whether WhatsApp carries files of type `mime` at all.
pub fn media_type_allowed(mime: &str) -> bool {
    media_limit(mime).is_some()
}

/// Whether a file of type `mime` may go out as a message of kind `kind`: its own kind, or
/// any file as a document (WhatsApp delivers images and videos as documents too).
pub fn media_fits_kind(mime: &str, kind: &str) -> bool {
    media_limit(mime).is_some_and(|(k, _)| k == kind || kind == "document")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_limits_follow_whatsapp() {
        assert_eq!(media_limit("image/jpeg"), Some(("image", 5 * MB)));
        assert_eq!(
            media_limit("Audio/OGG; codecs=opus"),
            Some(("audio", 16 * MB))
        );
        assert_eq!(media_limit("image/webp"), Some(("sticker", 500 * 1024)));
        assert_eq!(media_limit("application/pdf"), Some(("document", 100 * MB)));
        assert!(!media_type_allowed("text/html"));
        assert!(!media_type_allowed("application/x-msdownload"));
        assert!(media_fits_kind("image/png", "image"));
        assert!(media_fits_kind("image/png", "document"));
        assert!(!media_fits_kind("application/pdf", "image"));
        assert!(!media_fits_kind("text/html", "document"));
    }
}
