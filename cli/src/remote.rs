//! Talking to the node that runs for a home, through its local HTTP API. When a node runs, it
//! holds the store: every command that reads or writes records goes through it.

use anyhow::Context;
use cailloux_node::Home;
use serde_json::Value;
use std::io::Read;
use std::time::Duration;

/// A running node's API.
#[derive(Debug)]
pub struct Remote {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

/// The answer to a request: its status and its body as JSON.
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Remote {
    /// The node running for `home`, if one is: its `api.addr` exists and it answers.
    pub fn find(home: &Home) -> Option<Remote> {
        let addr = home.running_api()?;
        let token = std::fs::read_to_string(home.api_token_path())
            .ok()
            .map(|t| t.trim().to_owned());
        let remote = Remote::new(&addr, token);
        // A node killed without cleaning up leaves its api.addr behind, and another program may
        // have taken the port since: check that a Cailloux node answers there.
        let probe = remote
            .agent
            .get(format!("{}/api/v1/status", remote.base))
            .config()
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .call();
        let answer = probe.map_err(anyhow::Error::from).and_then(Remote::answer);
        match answer {
            Ok(a) if a.status == 200 && a.body["peer_id"].is_string() => Some(remote),
            Ok(a) => {
                tracing::debug!(
                    "{addr} answers, but not as a Cailloux node (status {}): using the store directly",
                    a.status
                );
                None
            }
            Err(e) => {
                tracing::debug!(
                    "{} names {addr}, which does not answer ({e}): using the store directly",
                    home.api_addr_path().display()
                );
                None
            }
        }
    }

    /// A node given by URL (`--node http://host:port`, or `host:port`): no token, so only what
    /// a signature authorises (submitting signed records) and reads. Plain HTTP only: what
    /// travels is signed and public, so a relay cannot alter it unseen.
    pub fn at(url: &str) -> anyhow::Result<Remote> {
        let url = url.trim().trim_end_matches('/');
        if url.starts_with("https://") {
            return Err(crate::Refused(format!(
                "--node {url}: this build speaks plain HTTP only; give the node's http:// \
                 address (records are signed, so nothing can be altered on the way unseen)"
            ))
            .into());
        }
        Ok(Remote::new(url.trim_start_matches("http://"), None))
    }

    fn new(addr: &str, token: Option<String>) -> Remote {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(2)))
            .build()
            .new_agent();
        Remote {
            base: format!("http://{addr}"),
            token,
            agent,
        }
    }

    fn auth(&self) -> String {
        format!("Bearer {}", self.token.as_deref().unwrap_or(""))
    }

    fn answer(mut response: ureq::http::Response<ureq::Body>) -> anyhow::Result<Answer> {
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_string()
            .context("the node's answer could not be read")?;
        // A route the node does not serve answers with an empty body: name the status instead.
        let body = match serde_json::from_str::<Value>(&text) {
            Ok(json) => json,
            Err(_) if status >= 400 => serde_json::json!({
                "error": format!("HTTP {status}{}{}", if text.is_empty() { "" } else { ": " }, text.trim())
            }),
            Err(e) => return Err(anyhow::Error::from(e).context("the node's answer is not JSON")),
        };
        Ok(Answer { status, body })
    }

    /// GET a JSON resource; `query` pairs are URL-encoded.
    pub fn get(&self, path: &str, query: &[(&str, &str)]) -> anyhow::Result<Answer> {
        let mut request = self.agent.get(format!("{}{path}", self.base));
        for (k, v) in query {
            request = request.query(*k, *v);
        }
        Self::answer(request.call().context("the node did not answer")?)
    }

    /// POST JSON to a write endpoint.
    pub fn post_json(&self, path: &str, body: &Value) -> anyhow::Result<Answer> {
        let response = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Authorization", self.auth())
            .send_json(body)
            .context("the node did not answer")?;
        Self::answer(response)
    }

    /// POST a stream to a write endpoint; `query` pairs are URL-encoded.
    pub fn post_stream(
        &self,
        path: &str,
        query: &[(&str, &str)],
        body: &mut dyn Read,
    ) -> anyhow::Result<Answer> {
        let mut request = self.agent.post(format!("{}{path}", self.base));
        for (k, v) in query {
            request = request.query(*k, *v);
        }
        let response = request
            .header("Authorization", self.auth())
            .send(ureq::SendBody::from_reader(body))
            .context("the node did not answer")?;
        Self::answer(response)
    }

    /// GET a streamed resource, copying it to `out`.
    pub fn download(
        &self,
        path: &str,
        query: &[(&str, &str)],
        out: &mut dyn std::io::Write,
    ) -> anyhow::Result<u64> {
        let mut request = self.agent.get(format!("{}{path}", self.base));
        for (k, v) in query {
            request = request.query(*k, *v);
        }
        let mut response = request.call().context("the node did not answer")?;
        if !response.status().is_success() {
            let answer = Self::answer(response)?;
            anyhow::bail!("{}", error_text(&answer.body));
        }
        let mut reader = response.body_mut().with_config().limit(u64::MAX).reader();
        Ok(std::io::copy(&mut reader, out)?)
    }
}

/// The `error` field of an error answer.
pub fn error_text(body: &Value) -> String {
    body["error"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| body.to_string())
}
