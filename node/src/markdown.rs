//! A record's Markdown body as HTML for the corpus browser.
//!
//! Bodies are written by other towns' authors, and the page shows them inside its own origin:
//! whatever this function lets through runs or loads with the page's rights. So nothing an
//! author writes may run or load anything:
//! - raw HTML (blocks and inline) is shown as text, never as markup;
//! - a link is a link only when its target, as pulldown-cmark decoded it (entities, escapes),
//!   is `http://…`, `https://…`, `mailto:…` or in-page (`#…`): an allow-list on the parsed
//!   scheme, case-insensitive. Anything else (`javascript:` in any disguise, `data:`,
//!   `vbscript:`, scheme-relative `//host`, relative paths) is shown as its text only. Links get
//!   `rel="nofollow noopener noreferrer"`;
//! - an image is never loaded (a remote image lets its author count and locate readers): it is
//!   a link to the image (`class="image-link"`, its alt text as the text) when the target is
//!   allowed, its alt text otherwise. No `<img>` at all;
//! - no `style` attribute (the page's Content-Security-Policy refuses them): table column
//!   alignment is dropped.
//!
//! Link and image tags are written here, not by pulldown-cmark's writer, which has no `rel`;
//! they are the only markup this module writes itself, after the author's raw HTML has become
//! text.

use pulldown_cmark::{Alignment, CowStr, Event, LinkType, Options, Parser, Tag, TagEnd, html};
use pulldown_cmark_escape::{escape_href, escape_html};

/// What every link the renderer writes carries: no endorsement for search engines, no handle on
/// this page for the target, no `Referer`.
const REL: &str = "nofollow noopener noreferrer";

/// The body's Markdown as HTML in which nothing runs or loads (see the module's header).
pub fn to_html(markdown: &str) -> String {
    let parser = Parser::new_ext(
        markdown,
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH,
    );
    let mut out: Vec<Event> = Vec::new();
    // One entry per link open in the source: whether it was written as an `<a>`.
    let mut links: Vec<bool> = Vec::new();
    let mut image: Option<Image> = None;
    for event in parser {
        if let Some(open) = &mut image {
            if open.take(event) {
                let inside_anchor = links.contains(&true);
                if let Some(done) = image.take() {
                    done.write(inside_anchor, &mut out);
                }
            }
            continue;
        }
        match event {
            Event::Html(raw) | Event::InlineHtml(raw) => out.push(Event::Text(raw)),
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                ..
            }) => {
                // Links cannot nest in CommonMark; this keeps it so whatever the parser does.
                let href = allowed_href(link_type, &dest_url).filter(|_| !links.contains(&true));
                links.push(href.is_some());
                if let Some(href) = href {
                    out.push(Event::InlineHtml(anchor(&href, &title, false).into()));
                }
            }
            Event::End(TagEnd::Link) => {
                if links.pop() == Some(true) {
                    out.push(Event::InlineHtml("</a>".into()));
                }
            }
            Event::Start(Tag::Image {
                link_type,
                dest_url,
                title,
                ..
            }) => {
                image = Some(Image {
                    href: allowed_href(link_type, &dest_url),
                    title: title.into_string(),
                    alt: String::new(),
                    depth: 0,
                });
            }
            // pulldown-cmark writes alignment as a `style` attribute, which the CSP refuses.
            Event::Start(Tag::Table(columns)) => out.push(Event::Start(Tag::Table(vec![
                Alignment::None;
                columns.len()
            ]))),
            other => out.push(other),
        }
    }
    let mut html = String::new();
    html::push_html(&mut html, out.into_iter());
    html
}

/// An image being read: its target if allowed, and its alt text, flattened to plain text.
struct Image {
    href: Option<String>,
    title: String,
    alt: String,
    /// Images nested in the alt text, still open.
    depth: usize,
}

impl Image {
    /// Takes in one event of the image; true at its end.
    fn take(&mut self, event: Event) -> bool {
        match event {
            Event::Start(Tag::Image { .. }) => self.depth += 1,
            Event::End(TagEnd::Image) if self.depth == 0 => return true,
            Event::End(TagEnd::Image) => self.depth -= 1,
            Event::Text(text) | Event::Code(text) | Event::Html(text) | Event::InlineHtml(text) => {
                self.alt.push_str(&text)
            }
            Event::SoftBreak | Event::HardBreak => self.alt.push(' '),
            _ => {}
        }
        false
    }

    /// A link to the image when its target is allowed and no link is open around it, else the
    /// alt text.
    fn write(self, inside_anchor: bool, out: &mut Vec<Event<'_>>) {
        match self.href.filter(|_| !inside_anchor) {
            Some(href) => {
                let text = if self.alt.trim().is_empty() {
                    href.clone()
                } else {
                    self.alt
                };
                out.push(Event::InlineHtml(anchor(&href, &self.title, true).into()));
                out.push(Event::Text(text.into()));
                out.push(Event::InlineHtml("</a>".into()));
            }
            None => out.push(Event::Text(self.alt.into())),
        }
    }
}

/// An opening `<a>` tag, every value escaped.
fn anchor(href: &str, title: &str, image: bool) -> String {
    let mut tag = String::from("<a href=\"");
    // Writing to a String cannot fail.
    let _ = escape_href(&mut tag, href);
    tag.push_str("\" rel=\"");
    tag.push_str(REL);
    tag.push('"');
    if image {
        tag.push_str(" class=\"image-link\"");
    }
    if !title.is_empty() {
        tag.push_str(" title=\"");
        let _ = escape_html(&mut tag, title);
        tag.push('"');
    }
    tag.push('>');
    tag
}

/// The `href` of a link or image target if it is allowed: `http://` or `https://` with
/// something after, `mailto:` with something after, or `#…`. The target is what pulldown-cmark
/// decoded; the scheme must be a well-formed one (a letter, then letters, digits, `+-.`), so
/// any tab, newline, space or control character a browser would strip makes it refused.
fn allowed_href(link_type: LinkType, target: &CowStr) -> Option<String> {
    let url = match link_type {
        LinkType::Email => format!("mailto:{target}"),
        _ => target.to_string(),
    };
    if url.starts_with('#') {
        return Some(url);
    }
    let (scheme, rest) = url.split_once(':')?;
    let well_formed = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !well_formed {
        return None;
    }
    let allowed = match scheme.to_ascii_lowercase().as_str() {
        "http" | "https" => rest.strip_prefix("//").is_some_and(|host| {
            host.starts_with(|c: char| !matches!(c, '/' | '\\' | '?' | '#') && !c.is_whitespace())
        }),
        "mailto" => !rest.is_empty(),
        _ => false,
    };
    allowed.then_some(url)
}

#[cfg(test)]
mod tests {
    use super::to_html;

    const REL: &str = r#"rel="nofollow noopener noreferrer""#;

    /// Link targets that must never become a link: each is shown as text.
    const REFUSED: &[&str] = &[
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        "JAVASCRIPT:alert(1)",
        "java&#115;cript:alert(1)",
        "&#106;avascript:alert(1)",
        "&#x6A;avascript:alert(1)",
        "javascript&#58;alert(1)",
        "javascript&colon;alert(1)",
        r"javascript\:alert(1)",
        "java&#9;script:alert(1)",
        "java&#10;script:alert(1)",
        "java&#13;script:alert(1)",
        "&#32;javascript:alert(1)",
        "&#1;javascript:alert(1)",
        "<java\tscript:alert(1)>",
        "<javascript:alert(1)>",
        "javascript://%0aalert(1)",
        "vbscript:msgbox(1)",
        "VBScript:msgbox(1)",
        "data:text/html,<script>alert(1)</script>",
        "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
        "data:image/png;base64,iVBORw0KGgo=",
        "file:///etc/passwd",
        "ftp://example.org/",
        "blob:https://example.org/x",
        "//evil.example/x",
        r"\\evil.example\x",
        "/api/v1/status",
        "api/v1/status",
        "../up",
        "?q=1",
        "https:evil.example",
        r"https:\\evil.example",
        "http:/evil.example",
        "https://",
        "",
    ];

    fn assert_no_link(markdown: &str, html: &str) {
        assert!(!html.contains("<a"), "{markdown:?} became a link: {html}");
        assert!(!html.contains("href"), "{markdown:?}: {html}");
    }

    #[test]
    fn links_to_anything_but_http_https_mailto_and_the_page_are_text() {
        for target in REFUSED {
            let markdown = format!("[le texte]({target})");
            let html = to_html(&markdown);
            assert_no_link(&markdown, &html);
            assert!(html.contains("le texte"), "{markdown:?}: {html}");
            // The same target as a reference link.
            let markdown = format!("[le texte][r]\n\n[r]: {target}\n");
            assert_no_link(&markdown, &to_html(&markdown));
        }
    }

    #[test]
    fn autolinks_to_other_schemes_are_text() {
        for target in [
            "<javascript:alert(1)>",
            "<JaVaScRiPt:alert(document.domain)>",
            "<vbscript:msgbox(1)>",
            "<data:text/html,x>",
            "<file:///etc/passwd>",
        ] {
            let html = to_html(target);
            assert_no_link(target, &html);
        }
    }

    #[test]
    fn allowed_links_keep_their_target_escaped_and_get_rel() {
        for (markdown, href) in [
            (
                "[a](https://example.org/a?b=1&c=2)",
                "https://example.org/a?b=1&amp;c=2",
            ),
            ("[a](HTTP://EXAMPLE.ORG/)", "HTTP://EXAMPLE.ORG/"),
            ("[a](http://example.org)", "http://example.org"),
            (
                "[a](mailto:mairie@example.org)",
                "mailto:mairie@example.org",
            ),
            (
                "[a](MailTo:mairie@example.org)",
                "MailTo:mairie@example.org",
            ),
            ("<https://example.org/x>", "https://example.org/x"),
            ("<mairie@example.org>", "mailto:mairie@example.org"),
            ("[a](#contexte)", "#contexte"),
            ("[a](#/record/abc)", "#/record/abc"),
            (
                "[a][r]\n\n[r]: https://example.org/r\n",
                "https://example.org/r",
            ),
            (
                r#"[a](<https://example.org/"onmouseover=alert(1)>)"#,
                "https://example.org/%22onmouseover=alert(1)",
            ),
        ] {
            let html = to_html(markdown);
            let expected = format!(r#"<a href="{href}" {REL}>"#);
            assert!(html.contains(&expected), "{markdown:?}: {html}");
        }
    }

    #[test]
    fn a_link_title_cannot_open_an_attribute() {
        let html = to_html(r#"[a](https://example.org "x&quot; onmouseover=&quot;alert(1)")"#);
        assert!(
            html.contains(r#"title="x&quot; onmouseover=&quot;alert(1)""#),
            "{html}"
        );
        assert!(!html.contains(r#"" onmouseover"#), "{html}");
    }

    #[test]
    fn raw_html_is_text() {
        for markdown in [
            "<script>window.__pwned = 1</script>",
            "<img src=x onerror=alert(1)>",
            "Du texte <img src=x onerror=alert(1)> au milieu.",
            "<iframe src=\"https://example.org\"></iframe>",
            "<a href=\"javascript:alert(1)\">ici</a>",
            "<svg onload=alert(1)>",
            "<style>body { display: none }</style>",
            "<div style=\"position:fixed\">x</div>",
            "<!-- <script>alert(1)</script> -->",
            "<details open ontoggle=alert(1)>",
        ] {
            let html = to_html(markdown);
            for tag in [
                "<script", "<img", "<iframe", "<a ", "<svg", "<style", "<div", "<!--", "<details",
            ] {
                assert!(!html.contains(tag), "{markdown:?}: {html}");
            }
            assert!(html.contains("&lt;"), "shown as text: {markdown:?}: {html}");
        }
    }

    #[test]
    fn images_are_never_loaded_but_linked() {
        let html = to_html("Un pixel : ![le suivi](http://tracker.example/p.png).");
        assert!(!html.contains("<img"), "{html}");
        assert!(
            html.contains(&format!(
                r#"<a href="http://tracker.example/p.png" {REL} class="image-link">le suivi</a>"#
            )),
            "{html}"
        );
        // Alt text with markup is flattened; an empty one shows the target.
        let html = to_html("![un *beau* `plan`](https://example.org/plan.png)");
        assert!(html.contains(">un beau plan</a>"), "{html}");
        let html = to_html("![](https://example.org/plan.png)");
        assert!(html.contains(">https://example.org/plan.png</a>"), "{html}");
        // A refused target leaves the alt text only.
        for target in [
            "javascript:alert(1)",
            "data:image/png;base64,AAAA",
            "/x.png",
        ] {
            let markdown = format!("![le plan]({target})");
            let html = to_html(&markdown);
            assert_no_link(&markdown, &html);
            assert!(!html.contains("<img"), "{html}");
            assert!(html.contains("le plan"), "{html}");
        }
        let html = to_html("![a][img]\n\n[img]: https://example.org/i.png\n");
        assert!(
            !html.contains("<img") && html.contains("image-link"),
            "{html}"
        );
    }

    #[test]
    fn links_never_nest() {
        // An image inside a link: one anchor, the outer link's.
        let html = to_html("[![plan](https://example.org/p.png)](https://example.org/page)");
        assert_eq!(html.matches("<a ").count(), 1, "{html}");
        assert!(
            html.contains(r#"href="https://example.org/page""#),
            "{html}"
        );
        assert!(!html.contains("<img"), "{html}");
        // A refused outer link leaves the image's own link.
        let html = to_html("[![plan](https://example.org/p.png)](javascript:alert(1))");
        assert_eq!(html.matches("<a ").count(), 1, "{html}");
        assert!(
            html.contains(r#"href="https://example.org/p.png""#),
            "{html}"
        );
        assert!(!html.contains("javascript"), "{html}");
        assert_eq!(html.matches("</a>").count(), 1, "{html}");
    }

    #[test]
    fn tables_carry_no_style_attribute() {
        let html = to_html("| a | b | c |\n|:--|:-:|--:|\n| 1 | 2 | 3 |\n");
        assert!(
            html.contains("<table>") && html.contains("<td>3</td>"),
            "{html}"
        );
        assert!(!html.contains("style"), "{html}");
    }

    #[test]
    fn ordinary_markdown_still_renders() {
        let html = to_html(
            "## Contexte\n\nDu **gras**, de l'*italique*, ~~barré~~, `code`.\n\n- un\n- deux\n\n```rust\nfn main() {}\n```\n",
        );
        for part in [
            "<h2>Contexte</h2>",
            "<strong>gras</strong>",
            "<em>italique</em>",
            "<del>barré</del>",
            "<code>code</code>",
            "<li>un</li>",
            r#"<code class="language-rust">"#,
        ] {
            assert!(html.contains(part), "{part}: {html}");
        }
    }

    /// What the renderer may write: these elements, these attributes, and `href`s that are
    /// allowed. Parses the output's tags (text is escaped, so every `<` opens one of ours).
    fn check_markup(html: &str) -> Result<(), String> {
        const ELEMENTS: &[&str] = &[
            "p",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "a",
            "em",
            "strong",
            "del",
            "code",
            "pre",
            "ul",
            "ol",
            "li",
            "blockquote",
            "hr",
            "br",
            "table",
            "thead",
            "tbody",
            "tr",
            "th",
            "td",
        ];
        let mut rest = html;
        while let Some(start) = rest.find('<') {
            let after = &rest[start + 1..];
            let end = after
                .find('>')
                .ok_or_else(|| format!("unclosed tag in {html}"))?;
            let tag = &after[..end];
            rest = &after[end + 1..];
            let tag = tag.strip_prefix('/').unwrap_or(tag).trim_end_matches('/');
            let (name, mut attrs) = tag.split_once(' ').unwrap_or((tag, ""));
            if !ELEMENTS.contains(&name) {
                return Err(format!("element <{name}> in {html}"));
            }
            while !attrs.trim().is_empty() {
                let (attr, value_and_rest) = attrs
                    .trim_start()
                    .split_once("=\"")
                    .ok_or_else(|| format!("bad attributes {attrs:?} in {html}"))?;
                let (value, after_value) = value_and_rest
                    .split_once('"')
                    .ok_or_else(|| format!("unquoted attribute in {html}"))?;
                attrs = after_value;
                let allowed = match (name, attr) {
                    ("a", "href") => allowed_href(value),
                    ("a", "rel" | "title" | "class") => true,
                    ("code", "class") => value.starts_with("language-"),
                    ("ol", "start") => value.bytes().all(|b| b.is_ascii_digit()),
                    _ => false,
                };
                if !allowed {
                    return Err(format!("{attr}={value:?} on <{name}> in {html}"));
                }
                if value.contains(['<', '>']) {
                    return Err(format!("unescaped attribute {value:?} in {html}"));
                }
            }
        }
        Ok(())
    }

    /// An `href` as a browser reads it: entities decoded, tabs and newlines removed, leading
    /// spaces and control characters trimmed. Then the allow-list.
    fn allowed_href(value: &str) -> bool {
        // The writer only ever escapes with these; any other entity would be decoded by a
        // browser into who knows what.
        const ENTITIES: [(&str, &str); 6] = [
            ("&amp;", "&"),
            ("&quot;", "\""),
            ("&#x27;", "'"),
            ("&#39;", "'"),
            ("&lt;", "<"),
            ("&gt;", ">"),
        ];
        let mut decoded = String::new();
        let mut rest = value;
        while let Some(at) = rest.find('&') {
            decoded.push_str(&rest[..at]);
            let Some((entity, text)) = ENTITIES.iter().find(|(e, _)| rest[at..].starts_with(e))
            else {
                return false;
            };
            decoded.push_str(text);
            rest = &rest[at + entity.len()..];
        }
        decoded.push_str(rest);
        let url: String = decoded
            .trim_start_matches(|c: char| c <= ' ')
            .chars()
            .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
            .collect();
        let lower = url.to_ascii_lowercase();
        lower.starts_with('#')
            || lower.starts_with("http://")
            || lower.starts_with("https://")
            || lower.starts_with("mailto:")
    }

    #[test]
    fn the_markup_checker_refuses_what_it_must() {
        assert!(check_markup(r#"<p><a href="https://x.org" rel="nofollow">x</a></p>"#).is_ok());
        for bad in [
            r#"<a href="javascript:x">x</a>"#,
            r#"<a href="&#106;avascript:x">x</a>"#,
            r#"<a href="//x.org">x</a>"#,
            r#"<img src="https://x.org/p.png">"#,
            r#"<p onclick="x">x</p>"#,
            r#"<td style="text-align: left">x</td>"#,
            "<script>x</script>",
        ] {
            assert!(check_markup(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_hostile_input_renders_to_allowed_markup() {
        for target in REFUSED {
            for markdown in [
                format!("[x]({target})"),
                format!("![x]({target})"),
                format!("[x][r]\n\n[r]: {target}"),
                format!("<{target}>"),
            ] {
                let html = to_html(&markdown);
                check_markup(&html).unwrap_or_else(|e| panic!("{markdown:?}: {e}"));
            }
        }
    }

    mod properties {
        use super::{check_markup, to_html};
        use proptest::prelude::*;

        /// Pieces of Markdown and HTML that attacks are made of, to be strung together.
        fn piece() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("[".to_owned()),
                Just("]".to_owned()),
                Just("(".to_owned()),
                Just(")".to_owned()),
                Just("![".to_owned()),
                Just("<".to_owned()),
                Just(">".to_owned()),
                Just("\n".to_owned()),
                Just("\n\n".to_owned()),
                Just("\t".to_owned()),
                Just(" ".to_owned()),
                Just(":".to_owned()),
                Just("//".to_owned()),
                Just("&#".to_owned()),
                Just(";".to_owned()),
                Just("\"".to_owned()),
                Just("'".to_owned()),
                Just("`".to_owned()),
                Just("*".to_owned()),
                Just("|".to_owned()),
                Just("|:-|-:|\n".to_owned()),
                Just("\\".to_owned()),
                Just("javascript".to_owned()),
                Just("JaVaScRiPt:".to_owned()),
                Just("java&#115;cript:".to_owned()),
                Just("data:".to_owned()),
                Just("vbscript:".to_owned()),
                Just("https://".to_owned()),
                Just("http:".to_owned()),
                Just("mailto:".to_owned()),
                Just("#".to_owned()),
                Just("[r]: ".to_owned()),
                Just("[r]".to_owned()),
                Just("<script>".to_owned()),
                Just("<img src=x onerror=alert(1)>".to_owned()),
                Just(" onerror=".to_owned()),
                Just("style=".to_owned()),
                Just("<a href=".to_owned()),
                Just("a@b.org".to_owned()),
                "[a-zA-Z0-9%&#;=.]{1,8}",
                any::<char>().prop_map(String::from),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn no_output_holds_a_disallowed_target_or_author_markup(
                pieces in proptest::collection::vec(piece(), 0..40)
            ) {
                let markdown = pieces.concat();
                let html = to_html(&markdown);
                if let Err(e) = check_markup(&html) {
                    return Err(TestCaseError::fail(format!("{markdown:?}: {e}")));
                }
            }

            #[test]
            fn any_text_renders_without_panicking_to_allowed_markup(markdown in any::<String>()) {
                let html = to_html(&markdown);
                if let Err(e) = check_markup(&html) {
                    return Err(TestCaseError::fail(format!("{markdown:?}: {e}")));
                }
            }
        }
    }
}
