//! The corpus browser in a real headless Chromium, driven through chromedriver (WebDriver):
//! a person searches, filters by a facet, opens a record and sees its rendered body, the
//! verified signature, an evaluation's indicators, the trail of a practice, and a record's files
//! (its photo shown inline from the node, its report listed with type and size). The page loads
//! nothing from outside the node, and breaks no rule of its Content-Security-Policy. A
//! screenshot is kept in target/test-artifacts/.
//!
//! Then a hostile author's record: `javascript:` links in every disguise, raw HTML, an image
//! pointing at a tracker the test runs on loopback. Its page is opened and every link in its
//! body clicked: nothing may run, and the tracker must see no request until a person follows
//! the image's link on purpose (and then no `Referer`).
//!
//! Needs Debian's `chromium` and `chromium-driver` (`./test.sh`, the README's test command,
//! installs them).

mod util;

use serde_json::{Value, json};
use std::cell::RefCell;
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use util::*;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Driver {
    process: Child,
    base: String,
    session: String,
    agent: ureq::Agent,
    /// The Content-Security-Policy violations seen so far, across page loads.
    violations: RefCell<Vec<String>>,
    /// Chromium's profile, removed once the browser is gone (fields drop after `drop`).
    _profile: tempfile::TempDir,
}

/// Installed before any script of every document: records each CSP violation the page causes.
const WATCH_VIOLATIONS: &str = "window.__violations = []; document.addEventListener('securitypolicyviolation', e => window.__violations.push(`${e.effectiveDirective} blocked ${e.blockedURI || 'inline'} at ${e.sourceFile}:${e.lineNumber}`));";

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self
            .agent
            .delete(format!("{}/session/{}", self.base, self.session))
            .call();
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn find_program(names: &[&str]) -> String {
    for name in names {
        for dir in ["/usr/bin", "/usr/local/bin", "/usr/lib/chromium"] {
            let path = format!("{dir}/{name}");
            if std::path::Path::new(&path).exists() {
                return path;
            }
        }
    }
    panic!("{names:?} not found: install Debian's chromium and chromium-driver (`./test.sh` does)")
}

impl Driver {
    fn start() -> Driver {
        let chromium = find_program(&["chromium", "chromium-browser"]);
        let chromedriver = find_program(&["chromedriver"]);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("{e}"));
        let process = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start chromedriver: {e}"));
        let base = format!("http://127.0.0.1:{port}");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .new_agent();
        let ready = wait_until(Duration::from_secs(20), || {
            agent
                .get(format!("{base}/status"))
                .call()
                .ok()
                .and_then(|mut r| r.body_mut().read_json::<Value>().ok())
                .is_some_and(|v| v["value"]["ready"] == true)
        });
        assert!(ready, "chromedriver did not start");
        let profile = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--disable-dev-shm-usage", "--window-size=1280,1100",
                         format!("--user-data-dir={}", profile.path().display())]
            }
        }}});
        let mut response = agent
            .post(format!("{base}/session"))
            .send_json(&capabilities)
            .unwrap_or_else(|e| panic!("{e}"));
        let body: Value = response.body_mut().read_json().unwrap_or(Value::Null);
        let session = body["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {body}"))
            .to_owned();
        let driver = Driver {
            process,
            base,
            session,
            agent,
            violations: RefCell::new(Vec::new()),
            _profile: profile,
        };
        // Chromedriver's door to the DevTools protocol: a script run before the page's own.
        let installed = driver.call(
            "POST",
            "/goog/cdp/execute",
            Some(json!({ "cmd": "Page.addScriptToEvaluateOnNewDocument",
                         "params": { "source": WATCH_VIOLATIONS } })),
        );
        assert!(
            installed["identifier"].is_string(),
            "cannot watch CSP violations: {installed}"
        );
        driver
    }

    /// Moves the violations the current document recorded into `self.violations`.
    fn collect_violations(&self) {
        let seen =
            self.script("const v = window.__violations || []; window.__violations = []; return v;");
        self.violations.borrow_mut().extend(
            seen.as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned),
        );
    }

    /// Every violation so far (none is expected, ever).
    fn violations(&self) -> Vec<String> {
        self.collect_violations();
        self.violations.borrow().clone()
    }

    /// The text of an open alert, prompt or confirm, if one is open.
    fn alert(&self) -> Option<String> {
        self.call("GET", "/alert/text", None)
            .as_str()
            .map(str::to_owned)
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let response = match method {
            "GET" => self.agent.get(url).call(),
            _ => self
                .agent
                .post(url)
                .send_json(body.unwrap_or_else(|| json!({}))),
        };
        let mut response = response.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        response
            .body_mut()
            .read_json::<Value>()
            .map(|v| v["value"].clone())
            .unwrap_or(Value::Null)
    }

    fn go(&self, url: &str) {
        self.collect_violations();
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    /// The elements matching `css`, once there is at least one (or none after the deadline).
    fn wait_for(&self, css: &str) -> Vec<String> {
        let mut found = Vec::new();
        wait_until(Duration::from_secs(10), || {
            let v = self.call(
                "POST",
                "/elements",
                Some(json!({ "using": "css selector", "value": css })),
            );
            found = v
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e[ELEMENT].as_str().map(str::to_owned))
                .collect();
            !found.is_empty()
        });
        found
    }

    fn text(&self, element: &str) -> String {
        self.call("GET", &format!("/element/{element}/text"), None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    fn click(&self, element: &str) {
        self.call("POST", &format!("/element/{element}/click"), None);
    }

    fn type_into(&self, element: &str, text: &str) {
        self.call(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        );
    }

    fn script(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
    }

    fn wait_text(&self, css: &str, wanted: &str) -> bool {
        wait_until(Duration::from_secs(10), || {
            self.wait_for(css)
                .first()
                .is_some_and(|e| self.text(e).contains(wanted))
        })
    }
}

/// A tracker on loopback: answers anything with an empty PNG and keeps the head of every
/// request it is sent (a connection opened without a request, as a browser may pre-open, is no
/// request).
struct Tracker {
    url: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Tracker {
    fn start() -> Tracker {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                if head.is_empty() {
                    continue;
                }
                if let Ok(mut all) = seen.lock() {
                    all.push(String::from_utf8_lossy(&head).into_owned());
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        Tracker {
            url: format!("http://{addr}/pixel.png"),
            requests,
        }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// A record written to attack its readers. `{tracker}` is the tracker's URL, `{origin}` the id
/// prefix of a record it claims to adapt (so that it appears in that record's trail).
const HOSTILE: &str = r#"---
kind: experiment
title: "Fiche piégée <img src=x onerror=window.__pwned='title'> <script>window.__pwned='title2'</script>"
summary: "Une fiche piégée <img src=x onerror=window.__pwned='summary'> qui essaie de tout."
themes: [food]
outcome: partial
links:
  - { rel: adapts, id: "{origin}" }
---
## Liens piégés

[x](javascript:window.__pwned=1)
[y](JaVaScRiPt:void(window.__pwned=2))
<javascript:void(window.__pwned=3)>
[z](java&#115;cript:void(window.__pwned=4))
[t](<java	script:void(window.__pwned=5)>)
[n](java&#9;script:void(window.__pwned=6))
[v](vbscript:msgbox(1))
[d](data:text/html,<script>alert(7)</script>)
[s](javascript:void(fetch('/api/v1/status').then(r=>r.text()).then(t=>window.__pwned=t)))
[a](javascript:alert(document.domain))
[r][piege]
[p](//127.0.0.1:9/x)

[piege]: javascript:void(window.__pwned=8)

<script>window.__pwned = 9</script>

<img src=x onerror="window.__pwned=10">

Un pixel : ![track]({tracker}). Et [l'expérience adaptée](#/record/{origin}).

| gauche | droite |
|:-------|-------:|
| a      | b      |
"#;

/// A 6 x 4 pixel PNG (green), whole: a browser decodes it.
const PHOTO: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 0x04, 0x08, 0x02, 0x00, 0x00, 0x00, 0x22, 0x66, 0xd9,
    0x14, 0x00, 0x00, 0x00, 0x11, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xd0, 0xcf, 0x8f, 0x43,
    0x43, 0x0c, 0xe4, 0x0a, 0x01, 0x00, 0x7d, 0xd1, 0x17, 0xa1, 0x34, 0xfe, 0x62, 0xe6, 0x00, 0x00,
    0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

#[test]
fn a_person_searches_filters_opens_a_record_and_follows_its_trail() {
    let node = NodeProcess::start("Vallon-sur-Orge", &[]);
    node.home
        .ok(&["publish", examples().to_str().unwrap_or_default()]);
    let base = format!("http://{}/", node.api());
    let driver = Driver::start();

    // Search, without accents, for a plural of what the text says in the singular.
    driver.go(&base);
    let input = driver
        .wait_for("#q")
        .pop()
        .unwrap_or_else(|| panic!("no search box"));
    driver.type_into(&input, "forets nourricieres");
    let button = driver
        .wait_for("#search-form button")
        .pop()
        .unwrap_or_else(|| panic!("no button"));
    driver.click(&button);
    assert!(
        driver.wait_text("#count", "1 résultat"),
        "count: {:?}",
        driver.wait_for("#count").first().map(|e| driver.text(e))
    );
    let first = driver.wait_for(".result h2 a");
    assert!(
        driver.text(&first[0]).contains("forêt nourricière"),
        "{}",
        driver.text(&first[0])
    );
    let marked = driver.wait_for(".result mark");
    assert!(!marked.is_empty(), "the matched words are marked");

    // Facets: French labels and counts; clicking one narrows the list.
    driver.go(&base);
    let facet = driver.wait_for("a[data-facet=\"kind\"][data-value=\"evaluation\"]");
    let facet_text = driver.text(&facet[0]);
    assert!(facet_text.contains("résultat d'évaluation"), "{facet_text}");
    driver.click(&facet[0]);
    assert!(driver.wait_text(".chips", "résultat d'évaluation"));
    let badges: Vec<String> = driver
        .wait_for(".result .kind")
        .iter()
        .map(|b| driver.text(b))
        .collect();
    assert!(
        !badges.is_empty() && badges.iter().all(|b| b == "résultat d'évaluation"),
        "{badges:?}"
    );

    // An evaluation: its indicators as a table.
    let evaluation = driver.wait_for(".result h2 a");
    driver.click(&evaluation[0]);
    assert!(driver.wait_text("#signature", "Signature vérifiée"));
    let rows = driver.wait_for("#indicators tr");
    assert!(rows.len() >= 3, "header and indicators: {}", rows.len());

    // The experiment behind a practice: rendered body, links both ways, the trail across towns.
    driver.go(&format!(
        "{base}#/?q=jardins%20partag%C3%A9s%20au%20pied%20des%20immeubles"
    ));
    let hit = driver.wait_for(".result h2 a");
    driver.click(&hit[0]);
    assert!(driver.wait_text("#record h1", "Des jardins partagés au pied des immeubles"));
    let headings: Vec<String> = driver
        .wait_for("#body h2")
        .iter()
        .map(|h| driver.text(h))
        .collect();
    assert!(
        headings.contains(&"Contexte".to_owned()),
        "the Markdown is rendered: {headings:?}"
    );
    assert!(
        driver.wait_text(".links", "Brieuc-la-Forêt"),
        "the town that adapted it is linked"
    );
    let circles = driver.wait_for("#trail-svg circle");
    assert!(
        circles.len() >= 3,
        "the trail shows the experiment, its practice, its evaluation and the adaptation: {}",
        circles.len()
    );
    let trail = driver.text(&driver.wait_for("#trail")[0]);
    assert!(trail.contains("2 communes"), "{trail}");

    // A record with a photo and a report: the photo shown inline, from this node, the report
    // listed with its type and size, and a link that answers its bytes.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let report = [&b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"[..], &[b'x'; 150_000][..]].concat();
    std::fs::write(dir.path().join("rapport.pdf"), &report).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.path().join("jardin.png"), PHOTO).unwrap_or_else(|e| panic!("{e}"));
    let file = dir.path().join("fichiers.md");
    std::fs::write(
        &file,
        "---\nkind: practice\ntitle: Un bilan avec ses fichiers\nsummary: Le rapport et une photo.\n\
         themes: [food]\nattachments:\n  - { file: jardin.png, title: \"Le jardin en mai\" }\n\
         \x20 - { file: rapport.pdf, title: \"Rapport d'évaluation 2023\" }\n---\nLe bilan.\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let with_files =
        published(
            &node
                .home
                .ok(&["publish", "--json", file.to_str().unwrap_or_default()]),
        )[0]
        .1
        .clone();
    driver.go(&format!("{base}#/record/{with_files}"));
    assert!(driver.wait_text("#attachments figcaption", "Le jardin en mai"));
    assert!(
        wait_until(Duration::from_secs(10), || {
            driver.script(
                "const img = document.querySelector('#attachments img'); \
                 return img.complete && img.naturalWidth > 0;",
            ) == json!(true)
        }),
        "the photo is decoded and shown"
    );
    let shown = driver.script(
        "const img = document.querySelector('#attachments img'); \
         return [img.naturalWidth, img.naturalHeight, new URL(img.src).origin];",
    );
    assert_eq!(
        shown,
        json!([6, 4, base.trim_end_matches('/')]),
        "the photo"
    );
    let listed: Vec<String> = driver
        .wait_for("#files li")
        .iter()
        .map(|li| driver.text(li))
        .collect();
    assert_eq!(listed.len(), 1, "only the report is listed: {listed:?}");
    assert!(
        listed[0].contains("Rapport d'évaluation 2023")
            && listed[0].contains("PDF")
            && listed[0].replace('\u{a0}', " ").contains("146,5 Ko"),
        "the report with its type and size: {listed:?}"
    );
    let href = driver.script("return document.querySelector('#files a').href;");
    let served = ureq::get(href.as_str().unwrap_or_default())
        .call()
        .unwrap_or_else(|e| panic!("{href}: {e}"))
        .into_body()
        .read_to_vec()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(served == report, "the link answers the report's bytes");

    // Nothing came from outside the node.
    let resources = driver.script(
        "return performance.getEntriesByType('resource').map(e => e.name).concat([location.href]);",
    );
    for url in resources
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        assert!(url.starts_with(&base), "{url} is not served by the node");
    }

    // Keep a picture of what a person sees.
    let png = driver.call("GET", "/screenshot", None);
    let bytes = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap_or_default())
            .unwrap_or_default()
    };
    assert!(bytes.starts_with(b"\x89PNG"), "a PNG screenshot");
    let dir = workspace().join("target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.join("corpus-browser.png"), bytes).unwrap_or_else(|e| panic!("{e}"));

    // The overview draws its charts.
    driver.go(&format!("{base}#/overview"));
    assert!(!driver.wait_for("#chart-theme-year rect").is_empty());
    assert!(!driver.wait_for("#chart-town rect").is_empty());

    // A retracted record says so, with the reason, before anything else on its page.
    let gone = node.home.listed_ids()[0].clone();
    node.home
        .ok(&["retract", &gone, "--reason", "doublon d'une autre fiche"]);
    driver.go(&format!("{base}#/record/{gone}"));
    assert!(driver.wait_text("#retracted", "doublon d'une autre fiche"));
    assert!(!node.home.listed_ids().contains(&gone));

    // No page of the normal use above broke the Content-Security-Policy.
    assert_eq!(driver.violations(), Vec::<String>::new(), "CSP violations");

    // Every response says what the page may do.
    let headers = ureq::get(&base).call().unwrap_or_else(|e| panic!("{e}"));
    let csp = headers
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(csp, cailloux_node::api::CONTENT_SECURITY_POLICY);
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "the page's CSP: {csp:?}"
    );

    // A hostile author's record, in the trail of the experiment it claims to adapt.
    let tracker = Tracker::start();
    let experiment =
        node.home
            .json(&["search", "jardins partagés au pied des immeubles", "--json"])[0]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
    let file = node.home.path().join("piege.md");
    std::fs::write(
        &file,
        HOSTILE
            .replace("{tracker}", &tracker.url)
            .replace("{origin}", &experiment[..12]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let hostile =
        published(
            &node
                .home
                .ok(&["publish", "--json", file.to_str().unwrap_or_default()]),
        )[0]
        .1
        .clone();
    let mut problems = Vec::new();
    let check = |driver: &Driver, step: &str, problems: &mut Vec<String>| {
        std::thread::sleep(Duration::from_millis(300));
        if let Some(text) = driver.alert() {
            problems.push(format!("{step}: an alert opened: {text:?}"));
            driver.call("POST", "/alert/dismiss", None);
        }
        let state = driver.script(
            "const pwned = String(window.__pwned); delete window.__pwned; \
             return { pwned, origin: location.origin, \
                      injected: document.querySelectorAll('#app img, #app script, #app iframe, #app object, #app [style]').length };",
        );
        if state["pwned"] != "undefined" {
            problems.push(format!(
                "{step}: the author's script ran: {}",
                state["pwned"]
            ));
        }
        if base.trim_end_matches('/') != state["origin"].as_str().unwrap_or_default() {
            problems.push(format!(
                "{step}: the page left the node: {}",
                state["origin"]
            ));
        }
        if state["injected"] != 0 {
            problems.push(format!(
                "{step}: {} author elements in the page",
                state["injected"]
            ));
        }
    };

    // Found by search: its title and summary are text in the results, never markup.
    driver.go(&format!("{base}#/?q=pi%C3%A9g%C3%A9e"));
    let hit = driver.wait_for(".result h2 a");
    let title = driver.text(&hit[0]);
    assert!(title.contains("<img src=x onerror="), "{title}");
    check(&driver, "search", &mut problems);
    // Listed without words: the snippet is the summary, escaped on the server.
    driver.go(&format!("{base}#/?kind=experiment&theme=food"));
    assert!(driver.wait_text("#results", "Une fiche piégée <img src=x"));
    check(&driver, "listing", &mut problems);

    // Its page, its trail, then every link of its body, clicked one by one.
    let page = format!("{base}#/record/{hostile}");
    driver.go(&page);
    assert!(driver.wait_text("#record h1", "Fiche piégée <img"));
    assert!(!driver.wait_for("#trail-svg circle").is_empty());
    let titles = driver.script(
        "return [...document.querySelectorAll('#trail-svg title')].map(t => t.textContent);",
    );
    assert!(
        titles.to_string().contains("<script>window.__pwned"),
        "the trail names it as text: {titles}"
    );
    check(&driver, "record page", &mut problems);
    let links = driver.script(
        "return [...document.querySelectorAll('#body a')].map(a => [a.getAttribute('href'), a.rel, a.className]);",
    );
    let links: Vec<Value> = links.as_array().cloned().unwrap_or_default();
    for (i, link) in links.iter().enumerate() {
        let href = link[0].as_str().unwrap_or_default();
        if !href.starts_with("http://")
            && !href.starts_with("https://")
            && !href.starts_with("mailto:")
            && !href.starts_with('#')
        {
            problems.push(format!("a link to {href:?} in the body"));
        }
        if link[1] != "nofollow noopener noreferrer" {
            problems.push(format!("the link to {href:?} has rel {}", link[1]));
        }
        if href == tracker.url {
            continue; // followed on purpose below
        }
        driver.go(&page);
        let anchors = driver.wait_for("#body a");
        if let Some(anchor) = anchors.get(i) {
            driver.click(anchor);
        }
        check(&driver, &format!("clicking {href:?}"), &mut problems);
    }
    // The tracker's image is a link, not an image: nothing was asked of the tracker.
    driver.go(&page);
    assert!(driver.wait_text("#record h1", "Fiche piégée"));
    std::thread::sleep(Duration::from_millis(500));
    let asked = tracker.requests();
    if !asked.is_empty() {
        problems.push(format!("the tracker was asked {asked:?}"));
    }
    let image_link = driver.wait_for("#body a.image-link");
    if image_link.is_empty() {
        problems.push("the remote image is not shown as a link".into());
    } else if driver.text(&image_link[0]) != "track" {
        problems.push(format!(
            "the image link reads {:?}",
            driver.text(&image_link[0])
        ));
    }
    assert_eq!(driver.violations(), Vec::<String>::new(), "CSP violations");
    assert!(problems.is_empty(), "{problems:#?}");

    // A person who follows the image's link on purpose reaches it, and tells it nothing.
    driver.click(&image_link[0]);
    assert!(wait_until(Duration::from_secs(10), || !tracker
        .requests()
        .is_empty()));
    // (Once there, the browser may ask the tracker for its favicon, naming the tracker's page.)
    let asked = tracker.requests();
    let pixel = asked
        .iter()
        .find(|r| r.starts_with("GET /pixel.png "))
        .unwrap_or_else(|| panic!("{asked:?}"));
    assert!(
        !pixel.to_ascii_lowercase().contains("\nreferer:"),
        "{pixel}"
    );
    assert!(
        asked.iter().all(|r| !r.contains(node.api().as_str())),
        "the tracker learnt where its reader was: {asked:?}"
    );
}
