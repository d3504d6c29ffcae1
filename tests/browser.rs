//! The corpus browser in a real headless Chromium, driven through chromedriver (WebDriver):
//! a person searches, filters by a facet, opens a record and sees its rendered body, the
//! verified signature, an evaluation's indicators and the trail of a practice. The page loads
//! nothing from outside the node. A screenshot is kept in target/test-artifacts/.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them).

mod util;

use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use util::*;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Driver {
    process: Child,
    base: String,
    session: String,
    agent: ureq::Agent,
}

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
    panic!("{names:?} not found: install Debian's chromium and chromium-driver (`.ci/run` does)")
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
                         format!("--user-data-dir={}", profile.keep().display())]
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
        Driver {
            process,
            base,
            session,
            agent,
        }
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
}
