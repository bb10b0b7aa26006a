//! The XML answers of OSS: ListObjectsV2 pages (keys, sizes, last-modified times, the
//! continuation token) and error bodies (`<Error><Code>…</Code><Message>…`).

/// One `<Contents>` of a listing.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Object {
    pub(super) key: String,
    pub(super) size: u64,
    pub(super) last_modified: Option<String>,
}

/// One page of a ListObjectsV2 answer.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Page {
    pub(super) objects: Vec<Object>,
    /// The token of the next page, when the answer is truncated.
    pub(super) next: Option<String>,
}

/// The objects and the next token of a `<ListBucketResult>` body.
pub(super) fn parse_list(body: &str) -> Result<Page, String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(body);
    let mut page = Page::default();
    let (mut stack, mut text) = (Vec::<String>::new(), String::new());
    let (mut truncated, mut token) = (false, None);
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("the server's object listing is not valid XML: {e}"))?;
        match event {
            Event::Start(e) => {
                let name = e.local_name().as_ref().to_owned();
                if name == "Contents" {
                    page.objects.push(Object::default());
                }
                stack.push(name);
                text.clear();
            }
            Event::Text(t) => text.push_str(&t.xml10_content()),
            Event::GeneralRef(r) => text.push(entity(r.as_ref(), &r)),
            Event::End(_) => {
                let name = stack.pop().unwrap_or_default();
                let parent = stack.last().map(String::as_str).unwrap_or_default();
                let value = std::mem::take(&mut text).trim().to_owned();
                let last = page.objects.last_mut();
                match (parent, name.as_str(), last) {
                    ("Contents", "Key", Some(o)) => o.key = value,
                    ("Contents", "Size", Some(o)) => o.size = value.parse().unwrap_or(0),
                    ("Contents", "LastModified", Some(o)) => o.last_modified = Some(value),
                    ("ListBucketResult", "IsTruncated", _) => truncated = value == "true",
                    ("ListBucketResult", "NextContinuationToken", _) => {
                        token = Some(value).filter(|t| !t.is_empty());
                    }
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    page.next = token.filter(|_| truncated);
    Ok(page)
}

/// The character an entity reference names (`&amp;`, `&#47;`…); `?` when unknown.
fn entity(name: &str, r: &quick_xml::events::BytesRef<'_>) -> char {
    match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        _ => r.resolve_char_ref().ok().flatten().unwrap_or('?'),
    }
}

/// The `<Code>` and the first line of the `<Message>` of an `<Error>` body, if any.
pub(super) fn parse_error(body: &str) -> (Option<String>, Option<String>) {
    let pick = |tag: &str| {
        let open = format!("<{tag}>");
        let start = body.find(&open)? + open.len();
        let end = body[start..].find("</")? + start;
        let value = body[start..end].lines().next()?.trim().to_owned();
        Some(value).filter(|v| !v.is_empty())
    };
    (pick("Code"), pick("Message"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_gives_keys_sizes_times_and_the_next_token_when_truncated() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult><Name>b</Name><Prefix>db/0000/</Prefix><MaxKeys>2</MaxKeys>
 <Contents><Key>db/0000/0000000000000001-0000000000000002.ltx</Key>
  <LastModified>2026-12-01T10:00:06.000Z</LastModified><ETag>"x"</ETag><Size>4096</Size></Contents>
 <Contents><Key>db/0000/a&amp;b.txt</Key><Size>7</Size></Contents>
 <IsTruncated>true</IsTruncated><NextContinuationToken>tok&amp;1</NextContinuationToken>
</ListBucketResult>"#;
        let page = parse_list(body).unwrap();
        assert_eq!(
            page.objects[0],
            Object {
                key: "db/0000/0000000000000001-0000000000000002.ltx".into(),
                size: 4096,
                last_modified: Some("2026-12-01T10:00:06.000Z".into()),
            }
        );
        assert_eq!(page.objects[1].key, "db/0000/a&b.txt");
        assert_eq!(page.next.as_deref(), Some("tok&1"));
        let last = parse_list(
            "<ListBucketResult><IsTruncated>false</IsTruncated>\
             <NextContinuationToken>t</NextContinuationToken></ListBucketResult>",
        )
        .unwrap();
        assert_eq!(last, Page::default());
        assert!(parse_list("<ListBucketResult></Oops>").is_err());
    }

    #[test]
    fn error_bodies_give_the_code_and_message() {
        let body = "<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code>\
                    <Message>The request signature we calculated does not match.</Message></Error>";
        let (code, message) = parse_error(body);
        assert_eq!(code.as_deref(), Some("SignatureDoesNotMatch"));
        assert!(message.unwrap().starts_with("The request signature"));
        assert_eq!(parse_error(""), (None, None));
    }
}
