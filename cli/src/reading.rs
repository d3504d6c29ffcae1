//! Reading the corpus: `list`, `search`, `stats`, `reindex` and `show`.

use crate::Refused;
use crate::args::*;
use crate::remote::{Remote, error_text};
use crate::ui::progress_bar;
use cailloux_node::search::{MAX_LIMIT, SearchIndex, SearchQuery, results_json};
use cailloux_node::{Filter, Home, ResolveError, Store};
use cailloux_protocol::attachment::human_size;
use cailloux_protocol::view::{full_json, summary_json};
use cailloux_protocol::{IdPrefix, Kind, Record, Theme};
use serde_json::Value;
use std::io::{IsTerminal, Write};

pub(crate) fn parse_theme(s: &str) -> anyhow::Result<Theme> {
    Theme::from_slug(s).ok_or_else(|| {
        let hint = Theme::suggest(s)
            .map(|t| format!("did you mean `{t}`? "))
            .unwrap_or_default();
        Refused(format!(
            "`{s}` is not a theme; {hint}the themes are: {}",
            Theme::slugs().join(", ")
        ))
        .into()
    })
}

pub(crate) fn list(
    home: &Home,
    filter: FilterArgs,
    hidden: &HiddenArgs,
    json: bool,
) -> anyhow::Result<()> {
    let FilterArgs { kind, theme, town } = filter;
    let theme = theme.as_deref().map(parse_theme).transpose()?;
    let kind = kind.map(Kind::from);
    let filter = Filter {
        kind,
        theme,
        town: town.clone(),
        author: None,
        include_retracted: hidden.include_retracted,
        all_versions: hidden.all_versions,
    };
    let remote = Remote::find(home);
    let records: Vec<Value> = if let Some(remote) = remote
        .as_ref()
        .filter(|_| hidden.include_retracted || hidden.all_versions)
    {
        // The search index holds current records only: read the export, which takes the same
        // switches, and filter it here.
        let mut lines = Vec::new();
        let mut query = vec![("format", "jsonl")];
        if hidden.include_retracted {
            query.push(("include_retracted", "true"));
        }
        if hidden.all_versions {
            query.push(("all_versions", "true"));
        }
        remote.download("/api/v1/export", &query, &mut lines)?;
        let mut records = Vec::new();
        for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let full: Value = serde_json::from_slice(line)?;
            let keep = filter.kind.is_none_or(|k| full["kind"] == k.slug())
                && filter.theme.is_none_or(|t| {
                    full["themes"]
                        .as_array()
                        .is_some_and(|a| a.contains(&Value::from(t.slug())))
                })
                && filter.town.as_deref().is_none_or(|t| {
                    cailloux_protocol::vocab::fold(t)
                        == cailloux_protocol::vocab::fold(full["town"].as_str().unwrap_or(""))
                });
            if keep {
                let summary: serde_json::Map<String, Value> = [
                    "id",
                    "kind",
                    "title",
                    "town",
                    "author",
                    "themes",
                    "created_at",
                ]
                .iter()
                .map(|k| ((*k).to_owned(), full[*k].clone()))
                .collect();
                records.push(Value::Object(summary));
            }
        }
        records.reverse();
        records
    } else if let Some(remote) = remote {
        let mut query = Vec::new();
        if let Some(k) = kind {
            query.push(("kind", k.slug().to_owned()));
        }
        if let Some(t) = theme {
            query.push(("theme", t.slug().to_owned()));
        }
        if let Some(t) = &town {
            query.push(("town", t.clone()));
        }
        query.push(("limit", MAX_LIMIT.to_string()));
        let mut records = Vec::new();
        loop {
            let params: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let answer = remote.get("/api/v1/records", &params)?;
            if answer.status != 200 {
                return Err(Refused(error_text(&answer.body)).into());
            }
            for mut r in answer.body["records"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                if let Some(m) = r.as_object_mut() {
                    m.remove("score");
                    m.remove("snippet");
                }
                records.push(r);
            }
            match answer.body["next_cursor"].as_str() {
                Some(cursor) => {
                    query.retain(|(k, _)| *k != "cursor");
                    query.push(("cursor", cursor.to_owned()));
                }
                None => break,
            }
        }
        records
    } else {
        match home.open_existing_store()? {
            Some(store) => store
                .list(&filter)
                .map(|r| r.map(|r| Value::Object(summary_json(&r))))
                .collect::<Result<_, _>>()?,
            None => Vec::new(),
        }
    };
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &records)?;
        writeln!(out)?;
        return Ok(());
    }
    for r in &records {
        let text = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
        let (id, created) = (text("id"), text("created_at"));
        writeln!(
            out,
            "{}  {:<10}  {}  {:<20}  {}",
            id.get(..12).unwrap_or(&id),
            text("kind"),
            created.get(..10).unwrap_or(&created),
            text("town"),
            text("title")
        )?;
    }
    if records.is_empty() {
        eprintln!("no records match");
    }
    Ok(())
}

/// The search index of a home with no running node, brought in step with the store first.
pub(crate) fn local_search(home: &Home) -> anyhow::Result<Option<(Store, SearchIndex)>> {
    let Some(store) = home.open_existing_store()? else {
        return Ok(None);
    };
    let (index, _) = SearchIndex::open(&home.search_path())?;
    if index.len() != store.len() as u64 {
        let bar = progress_bar(Some(store.len() as u64), "indexing");
        index.catch_up(&store, &mut |n| bar.set_position(n))?;
        bar.finish_and_clear();
    }
    Ok(Some((store, index)))
}

/// `search`: the arguments read as the API reads its parameters (one set of checks and
/// messages), then the search.
pub(crate) fn search(home: &Home, args: SearchArgs) -> anyhow::Result<()> {
    let SearchArgs {
        words,
        filter: FilterArgs { kind, theme, town },
        since,
        until,
        outcome,
        limit,
        json,
    } = args;
    let mut params: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    params.insert("q".into(), words.join(" "));
    params.insert("limit".into(), limit.to_string());
    let optional = [
        ("kind", kind.map(|k| Kind::from(k).slug().to_owned())),
        ("theme", theme),
        ("town", town),
        ("since", since.map(|y| y.to_string())),
        ("until", until.map(|y| y.to_string())),
        ("outcome", outcome),
    ];
    for (k, v) in optional {
        if let Some(v) = v {
            params.insert(k.into(), v);
        }
    }
    let query = SearchQuery::from_params(&params).map_err(|e| Refused(e.to_string()))?;
    run_search(home, &query, json)
}

fn run_search(home: &Home, query: &SearchQuery, json: bool) -> anyhow::Result<()> {
    let page = if let Some(remote) = Remote::find(home) {
        let params = query.to_params();
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let answer = remote.get("/api/v1/records", &params)?;
        if answer.status != 200 {
            return Err(Refused(error_text(&answer.body)).into());
        }
        answer.body
    } else {
        match local_search(home)? {
            Some((store, index)) => {
                let results = index
                    .search(query, &store)
                    .map_err(|e| Refused(e.to_string()))?;
                results_json(&results)
            }
            None => {
                serde_json::json!({ "total": 0, "records": [], "next_cursor": null, "facets": {} })
            }
        }
    };
    let records = page["records"].as_array().cloned().unwrap_or_default();
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &records)?;
        writeln!(out)?;
        return Ok(());
    }
    let bold = std::io::stdout().is_terminal();
    for r in &records {
        let text = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
        let id = text("id");
        writeln!(
            out,
            "{}  {:<10}  {:<20}  {}",
            id.get(..12).unwrap_or(&id),
            text("kind"),
            text("town"),
            text("title")
        )?;
        let snippet = plain_snippet(&text("snippet"), bold);
        if !snippet.is_empty() {
            writeln!(out, "              {snippet}")?;
        }
    }
    let more = if page["next_cursor"].is_string() {
        " (more with a higher --limit)"
    } else {
        ""
    };
    eprintln!("{} result(s){more}", records.len());
    Ok(())
}

/// A snippet's HTML as terminal text: marks in bold on a terminal, «like this» otherwise.
pub(crate) fn plain_snippet(html: &str, bold: bool) -> String {
    let (open, close) = if bold {
        ("\x1b[1m", "\x1b[0m")
    } else {
        ("«", "»")
    };
    html.replace("<mark>", open)
        .replace("</mark>", close)
        .replace('\n', " ")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

pub(crate) fn stats(home: &Home, json: bool) -> anyhow::Result<()> {
    let body = if let Some(remote) = Remote::find(home) {
        remote.get("/api/v1/stats", &[])?.body
    } else {
        match local_search(home)? {
            Some((_, index)) => {
                let (total, facets) = index.stats(&SearchQuery::default())?;
                serde_json::json!({ "total": total, "facets": facets })
            }
            None => serde_json::json!({ "total": 0, "facets": {} }),
        }
    };
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &body)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(out, "{} record(s)", body["total"])?;
    for facet in ["kind", "theme", "town", "year", "outcome"] {
        let Some(counts) = body["facets"][facet].as_object() else {
            continue;
        };
        if counts.is_empty() {
            continue;
        }
        writeln!(out, "\n{facet}")?;
        for (value, n) in counts {
            let label = match facet {
                "kind" => Kind::from_slug(value).map(|k| format!(" ({})", k.label_fr())),
                "theme" => Theme::from_slug(value).map(|t| format!(" ({})", t.label_fr())),
                _ => None,
            };
            writeln!(
                out,
                "  {:>6}  {value}{}",
                n.as_u64().unwrap_or(0),
                label.unwrap_or_default()
            )?;
        }
    }
    Ok(())
}

pub(crate) fn reindex(home: &Home) -> anyhow::Result<()> {
    if Remote::find(home).is_some() {
        anyhow::bail!(
            "a node is running for {}: it keeps the index current, and rebuilds a damaged one when it starts; stop it to rebuild by hand",
            home.root().display()
        );
    }
    let store = home.open_store()?;
    let bar = progress_bar(Some(store.len() as u64), "indexing");
    let index = SearchIndex::rebuild(&home.search_path(), &store, &mut |n| bar.set_position(n))?;
    bar.finish_and_clear();
    eprintln!(
        "indexed {} record(s) in {}",
        index.len(),
        home.search_path().display()
    );
    Ok(())
}

pub(crate) fn find(store: Option<&Store>, id: &str) -> anyhow::Result<Record> {
    let prefix = IdPrefix::parse(id).map_err(Refused)?;
    let store = store.ok_or_else(|| {
        Refused(format!(
            "no record in this store has an id starting with {prefix} (the store is empty)"
        ))
    })?;
    let id = store.resolve(&prefix).map_err(|e| match e {
        ResolveError::Store(e) => anyhow::Error::from(e),
        e => Refused(e.to_string()).into(),
    })?;
    store
        .get(&id)?
        .ok_or_else(|| Refused(format!("record {id} vanished")).into())
}

pub(crate) fn show(
    home: &Home,
    id: &str,
    json: bool,
    history: bool,
    fetch: bool,
) -> anyhow::Result<()> {
    let remote = Remote::find(home);
    if fetch && remote.is_none() {
        return Err(Refused(
            "--fetch: files come from the peers through the running node; start it \
             (`cailloux node`) and run this again"
                .into(),
        )
        .into());
    }
    let mut failed = Vec::new();
    let record: Value = if let Some(remote) = remote {
        let prefix = IdPrefix::parse(id).map_err(Refused)?;
        let mut record = remote_record(&remote, &prefix)?;
        if fetch {
            failed = fetch_files(&remote, &record);
            record = remote_record(&remote, &prefix)?;
        }
        record
    } else {
        let store = home.open_existing_store()?;
        let record = find(store.as_ref(), id)?;
        let mut page = full_json(&record);
        if page.contains_key("attachments") {
            let blobs = home.open_blobs(home.load_config()?.blob_cache_mb)?;
            cailloux_node::api::mark_held(&mut page, &blobs);
        }
        if let Some(store) = &store {
            page.insert(
                "provenance".into(),
                cailloux_node::api::provenance(store, &record),
            );
            if record.publication().is_some() {
                page.insert(
                    "versions".into(),
                    cailloux_node::api::versions(store, &record.id())?,
                );
            }
        }
        Value::Object(page)
    };
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &record)?;
        writeln!(out)?;
        return Ok(());
    }
    print_record(&mut out, &record)?;
    if history {
        writeln!(out, "\nversions, oldest first:")?;
        for v in record["versions"]["history"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let mark = if v["retracted"].is_object() {
                "retracted"
            } else if v["current"] == true {
                "current"
            } else {
                "superseded"
            };
            let created = v["created_at"].as_str().unwrap_or_default();
            writeln!(
                out,
                "  {}  {}  {:<10}  {}",
                v["id"].as_str().unwrap_or_default(),
                created.get(..10).unwrap_or(created),
                mark,
                v["title"].as_str().unwrap_or_default()
            )?;
        }
    }
    if !failed.is_empty() {
        return Err(Refused(format!(
            "{} file(s) could not be fetched: {}",
            failed.len(),
            failed.join("; ")
        ))
        .into());
    }
    Ok(())
}

fn remote_record(remote: &Remote, prefix: &IdPrefix) -> anyhow::Result<Value> {
    let answer = remote.get(&format!("/api/v1/records/{prefix}"), &[])?;
    match answer.status {
        200 => Ok(answer.body),
        400 | 404 | 409 => Err(Refused(error_text(&answer.body)).into()),
        _ => Err(anyhow::anyhow!(
            "the node failed: {}",
            error_text(&answer.body)
        )),
    }
}

/// Asks the node for each of the record's files it does not hold: it fetches them from its
/// peers, verified as they come, and keeps them in its cache. What failed, one line per file.
fn fetch_files(remote: &Remote, record: &Value) -> Vec<String> {
    let mut failed = Vec::new();
    for file in record["attachments"].as_array().into_iter().flatten() {
        if file["held"] == true {
            continue;
        }
        let (name, hash) = (
            file["name"].as_str().unwrap_or_default(),
            file["hash"].as_str().unwrap_or_default(),
        );
        let size = human_size(file["size"].as_u64().unwrap_or_default());
        eprint!("fetching {name} ({size})… ");
        match remote.download(
            &format!("/api/v1/attachments/{hash}"),
            &[],
            &mut std::io::sink(),
        ) {
            Ok(_) => eprintln!("done"),
            Err(e) => {
                eprintln!("failed");
                failed.push(format!("{name}: {e:#}"));
            }
        }
    }
    failed
}

/// The readable form of `show`, from the record's JSON (the same whether it came from the store
/// or from the running node).
pub(crate) fn print_record(out: &mut dyn Write, r: &Value) -> std::io::Result<()> {
    let text = |k: &str| match &r[k] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(items) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| i.to_string())
            })
            .collect::<Vec<_>>()
            .join(", "),
        v => v.to_string(),
    };
    let mut field = |name: &str, value: String| -> std::io::Result<()> {
        if value.is_empty() {
            Ok(())
        } else {
            writeln!(out, "{name:<14}{value}")
        }
    };
    field("title", text("title"))?;
    field("id", text("id"))?;
    let kind = text("kind");
    let label = Kind::from_slug(&kind)
        .map(|k| format!("{kind} ({})", k.label_fr()))
        .unwrap_or(kind);
    field("kind", label)?;
    field("town", text("town"))?;
    field(
        "author",
        format!("{} (signature verified when stored)", text("author")),
    )?;
    field("created", text("created_at"))?;
    let p = &r["provenance"];
    match p["chain"].as_str() {
        Some("delegate") => field(
            "signed by",
            format!(
                "{}{}, for {} (delegated by town key {})",
                p["delegate"]["name"].as_str().unwrap_or_default(),
                p["delegate"]["role"]
                    .as_str()
                    .map(|r| format!(", {r}"))
                    .unwrap_or_default(),
                p["town"].as_str().unwrap_or("its town"),
                p["town_key"].as_str().unwrap_or_default(),
            ),
        )?,
        Some("town") if p["town"].is_string() => field(
            "signed by",
            format!(
                "the town key of {}, admitted by the federation {}",
                p["town"].as_str().unwrap_or_default(),
                p["federation"].as_str().unwrap_or_default()
            ),
        )?,
        _ => {}
    }
    let v = &r["versions"];
    if let Some(retracted) = v["retracted"].as_object() {
        field(
            "RETRACTED",
            format!(
                "{} by {}: {}",
                retracted["at"].as_str().unwrap_or_default(),
                retracted["by"].as_str().unwrap_or_default(),
                retracted["reason"].as_str().unwrap_or_default()
            ),
        )?;
    }
    if v["voided"] == true {
        field(
            "VOIDED",
            "created after a revocation of its author's key that reached this node later".into(),
        )?;
    }
    for newer in v["superseded_by"].as_array().into_iter().flatten() {
        field(
            "superseded by",
            newer.as_str().unwrap_or_default().to_owned(),
        )?;
    }
    if let Some(older) = v["supersedes"].as_str() {
        field("supersedes", older.to_owned())?;
    }
    let themes: Vec<String> = r["themes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|t| {
            Theme::from_slug(t)
                .map(|th| format!("{t} ({})", th.label_fr()))
                .unwrap_or_else(|| t.to_owned())
        })
        .collect();
    field("themes", themes.join(", "))?;
    for key in [
        "language",
        "tags",
        "sdgs",
        "participation",
        "outcome",
        "need",
        "method",
        "licence",
    ] {
        field(key, text(key))?;
    }
    if let Some(start) = r["period"]["start"].as_str() {
        field(
            "period",
            match r["period"]["end"].as_str() {
                Some(end) => format!("{start} – {end}"),
                None => format!("since {start}"),
            },
        )?;
    }
    for file in r["attachments"].as_array().into_iter().flatten() {
        let media = file["media_type"].as_str().unwrap_or_default();
        let label = cailloux_protocol::MediaType::parse(media)
            .map(|m| m.label())
            .unwrap_or(media);
        field(
            "attachment",
            format!(
                "{} \"{}\" ({label}, {}, {}) {}",
                file["name"].as_str().unwrap_or_default(),
                file["title"].as_str().unwrap_or_default(),
                human_size(file["size"].as_u64().unwrap_or(0)),
                if file["held"] == true {
                    "held here"
                } else {
                    "not held here"
                },
                file["hash"].as_str().unwrap_or_default(),
            ),
        )?;
    }
    for ind in r["indicators"].as_array().into_iter().flatten() {
        let mut line = format!(
            "{}: {} {}",
            ind["name"].as_str().unwrap_or(""),
            ind["value"],
            ind["unit"].as_str().unwrap_or("")
        );
        for (key, label) in [("baseline", "baseline"), ("target", "target")] {
            if !ind[key].is_null() {
                line.push_str(&format!(" ({label} {})", ind[key]));
            }
        }
        if let Some(d) = ind["date"].as_str() {
            line.push_str(&format!(" [{d}]"));
        }
        if let Some(s) = ind["source"].as_str() {
            line.push_str(&format!(" — {s}"));
        }
        field("indicator", line)?;
    }
    for link in r["links"].as_array().into_iter().flatten() {
        field(
            "link",
            format!(
                "{} {}",
                link["rel"].as_str().unwrap_or(""),
                link["id"].as_str().unwrap_or("")
            ),
        )?;
    }
    writeln!(out, "\n{}\n\n{}", text("summary"), text("body").trim_end())
}
