//! The XML answers of the Blob service: List Blobs pages (names, sizes, creation
//! times, the `litestreamtimestamp` metadata, the next marker) and error bodies.

/// Litestream's metadata key for the creation time (Azure metadata keys are C#
/// identifiers, so no hyphen as in S3's `litestream-timestamp`).
pub(super) const TIMESTAMP_META: &str = "litestreamtimestamp";

/// One `<Blob>` of a List Blobs answer.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Blob {
    pub(super) name: String,
    pub(super) size: u64,
    pub(super) creation_time: Option<String>,
    pub(super) timestamp: Option<String>,
}

/// One page of a List Blobs answer.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Page {
    pub(super) blobs: Vec<Blob>,
    pub(super) next_marker: Option<String>,
}

/// The blobs and the next marker of an `<EnumerationResults>` body.
pub(super) fn parse_list(body: &str) -> Result<Page, String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(body);
    let mut page = Page::default();
    let mut stack: Vec<String> = Vec::new();
    let mut text = String::new();
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("the server's List Blobs answer is not valid XML: {e}"))?;
        match event {
            Event::Start(e) => {
                let name = e.local_name().as_ref().to_owned();
                if name == "Blob" {
                    page.blobs.push(Blob::default());
                }
                stack.push(name);
                text.clear();
            }
            Event::Text(t) => text.push_str(&t.xml10_content()),
            Event::GeneralRef(r) => {
                let named = match r.as_ref() {
                    "amp" => Some('&'),
                    "lt" => Some('<'),
                    "gt" => Some('>'),
                    "quot" => Some('"'),
                    "apos" => Some('\''),
                    _ => None,
                };
                if let Some(c) = named.or_else(|| r.resolve_char_ref().ok().flatten()) {
                    text.push(c);
                }
            }
            Event::End(_) => {
                let name = stack.pop().unwrap_or_default();
                let parent = stack.last().map(String::as_str).unwrap_or_default();
                let value = std::mem::take(&mut text);
                let value = value.trim();
                match (parent, name.as_str()) {
                    ("Blob", "Name") => {
                        if let Some(b) = page.blobs.last_mut() {
                            b.name = value.to_owned();
                        }
                    }
                    ("Properties", "Content-Length") => {
                        if let Some(b) = page.blobs.last_mut() {
                            b.size = value.parse().unwrap_or(0);
                        }
                    }
                    ("Properties", "Creation-Time") => {
                        if let Some(b) = page.blobs.last_mut() {
                            b.creation_time = Some(value.to_owned());
                        }
                    }
                    ("Metadata", key) if key.eq_ignore_ascii_case(TIMESTAMP_META) => {
                        if let Some(b) = page.blobs.last_mut() {
                            b.timestamp = Some(value.to_owned());
                        }
                    }
                    ("EnumerationResults", "NextMarker") => {
                        page.next_marker = Some(value.to_owned()).filter(|m| !m.is_empty());
                    }
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(page)
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
    fn a_list_blobs_answer_gives_names_sizes_metadata_and_the_marker() {
        let body = r#"<?xml version="1.0" encoding="utf-8"?>
<EnumerationResults ServiceEndpoint="http://127.0.0.1:10000/devstoreaccount1" ContainerName="c">
 <Prefix>db/ltx/0/</Prefix><MaxResults>5000</MaxResults>
 <Blobs>
  <Blob><Name>db/ltx/0/0000000000000001-0000000000000002.ltx</Name>
   <Properties><Creation-Time>Tue, 01 Dec 2026 10:00:05 GMT</Creation-Time>
    <Last-Modified>Tue, 01 Dec 2026 10:00:06 GMT</Last-Modified><Content-Length>4096</Content-Length>
    <BlobType>BlockBlob</BlobType></Properties>
   <Metadata><litestreamtimestamp>2026-12-01T10:00:04.123Z</litestreamtimestamp></Metadata>
  </Blob>
  <Blob><Name>db/ltx/0/a&amp;b.txt</Name><Properties><Content-Length>7</Content-Length></Properties><Metadata/></Blob>
 </Blobs>
 <NextMarker>2!92!MDAwMDQ2</NextMarker>
</EnumerationResults>"#;
        let page = parse_list(body).unwrap();
        assert_eq!(
            page.blobs[0],
            Blob {
                name: "db/ltx/0/0000000000000001-0000000000000002.ltx".into(),
                size: 4096,
                creation_time: Some("Tue, 01 Dec 2026 10:00:05 GMT".into()),
                timestamp: Some("2026-12-01T10:00:04.123Z".into()),
            }
        );
        assert_eq!(page.blobs[1].name, "db/ltx/0/a&b.txt");
        assert_eq!(page.blobs[1].timestamp, None);
        assert_eq!(page.next_marker.as_deref(), Some("2!92!MDAwMDQ2"));
        let last =
            parse_list("<EnumerationResults><Blobs/><NextMarker/></EnumerationResults>").unwrap();
        assert_eq!(last, Page::default());
        let err = parse_list("<EnumerationResults><Blobs></Oops>").unwrap_err();
        assert!(err.contains("List Blobs"), "{err}");
    }

    #[test]
    fn error_bodies_give_the_code_and_the_first_line_of_the_message() {
        let body = "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>AuthenticationFailed</Code>\
                    <Message>Server failed to authenticate the request.\nRequestId:1\nTime:x</Message>\
                    <AuthenticationErrorDetail>The MAC signature found in the HTTP request 'abc=' is not the same</AuthenticationErrorDetail></Error>";
        let (code, message) = parse_error(body);
        assert_eq!(code.as_deref(), Some("AuthenticationFailed"));
        assert_eq!(
            message.as_deref(),
            Some("Server failed to authenticate the request.")
        );
        assert_eq!(parse_error(""), (None, None));
    }
}
