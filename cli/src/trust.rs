//! The trust commands: a federation's coordinator creates it and admits towns, a town delegates
//! to its practitioners and revokes, a practitioner makes a key of their own and publishes,
//! revises and retracts with it. Every act is a signed record, submitted like any other: to the
//! node given by `--node URL`, else to the node running for this home, else into this home's
//! store. The node checks it against its ledger as it would a record from a peer.

use crate::remote::{Remote, error_text};
use crate::{KindArg, Refused};
use base64::Engine;
use cailloux_node::home::parse_key;
use cailloux_node::{Home, now_millis};
use cailloux_protocol::record::AuthorKey;
use cailloux_protocol::time::PartialDate;
use cailloux_protocol::trust::{Act, Admission, Delegation, Founding, Retraction, Revocation};
use cailloux_protocol::{IdPrefix, Kind, Record, RecordId, SigningKey};
use serde_json::{Value, json};

/// Stores signed records through `--node`, the running node or the home's store; all or
/// nothing. Returns the ids.
pub fn submit(home: &Home, node: Option<&str>, records: Vec<Record>) -> anyhow::Result<()> {
    let remote = match node {
        Some(url) => Some(Remote::at(url)?),
        None => Remote::find(home),
    };
    if let Some(remote) = remote {
        let encoded: Vec<String> = records
            .iter()
            .map(|r| base64::engine::general_purpose::STANDARD.encode(r.bytes()))
            .collect();
        let answer = remote.post_json("/api/v1/submit", &json!({ "records": encoded }))?;
        return match answer.status {
            200 => Ok(()),
            400 | 403 | 409 | 422 => Err(Refused(error_text(&answer.body)).into()),
            404 | 405 => Err(Refused(format!(
                "{} takes no submissions here (a public address takes them only in a federation)",
                node.unwrap_or("the node")
            ))
            .into()),
            _ => Err(anyhow::anyhow!(
                "the node failed: {}",
                error_text(&answer.body)
            )),
        };
    }
    let store = home.open_store()?;
    all_accepted(&store, &records)?;
    store.insert_batch(&records, now_millis())?;
    Ok(())
}

/// Refuses a whole batch, naming every refusal, when the store's ledger would refuse any of
/// its records: what is stored offline is all or nothing, like what a node takes.
pub fn all_accepted(store: &cailloux_node::Store, records: &[Record]) -> anyhow::Result<()> {
    let refused: Vec<String> = store
        .check_batch(records, now_millis())?
        .into_iter()
        .filter_map(|o| match o {
            cailloux_node::store::Outcome::Denied(d) => Some(d.to_string()),
            _ => None,
        })
        .collect();
    if refused.is_empty() {
        return Ok(());
    }
    Err(Refused(format!(
        "refused; nothing was stored: {}",
        refused.join("; ")
    ))
    .into())
}

/// Looks a record up by id or prefix: through `--node`, the running node, or the home's store.
/// Returns its JSON (`act_json` for acts, the record page for publications).
pub fn lookup(home: &Home, node: Option<&str>, id: &str) -> anyhow::Result<Option<Value>> {
    let prefix = IdPrefix::parse(id).map_err(Refused)?;
    let remote = match node {
        Some(url) => Some(Remote::at(url)?),
        None => Remote::find(home),
    };
    if let Some(remote) = remote {
        let answer = remote.get(&format!("/api/v1/records/{prefix}"), &[])?;
        return match answer.status {
            200 => Ok(Some(answer.body)),
            404 => Ok(None),
            _ => Err(Refused(error_text(&answer.body)).into()),
        };
    }
    let Some(store) = home.open_existing_store()? else {
        return Ok(None);
    };
    match store.resolve(&prefix) {
        Ok(id) => Ok(store
            .get(&id)?
            .map(|r| Value::Object(cailloux_protocol::view::full_json(&r)))),
        Err(cailloux_node::ResolveError::NotFound(_)) => Ok(None),
        Err(e) => Err(Refused(e.to_string()).into()),
    }
}

/// A record's full id from an id or a prefix, which must name a record that is there.
pub fn resolve_id(home: &Home, node: Option<&str>, id: &str) -> anyhow::Result<RecordId> {
    let page = lookup(home, node, id)?.ok_or_else(|| {
        Refused(format!(
            "no record has an id starting with {id} {}",
            node.map_or("here".into(), |n| format!("on {n}"))
        ))
    })?;
    page["id"]
        .as_str()
        .and_then(RecordId::from_hex)
        .ok_or_else(|| anyhow::anyhow!("the node answered without an id"))
}

/// A record's full id from an id or a prefix, resolved in a store already open (opening it a
/// second time would find it locked by this very process).
pub fn resolve_in(store: &cailloux_node::Store, id: &str) -> anyhow::Result<RecordId> {
    let prefix = IdPrefix::parse(id).map_err(Refused)?;
    match store.resolve(&prefix) {
        Ok(id) => Ok(id),
        Err(cailloux_node::ResolveError::NotFound(_)) => {
            Err(Refused(format!("no record has an id starting with {id} here")).into())
        }
        Err(cailloux_node::ResolveError::Store(e)) => Err(e.into()),
        Err(e) => Err(Refused(e.to_string()).into()),
    }
}

fn until_millis(until: Option<&str>) -> anyhow::Result<Option<u64>> {
    until
        .map(|u| {
            let date =
                PartialDate::parse(u.trim()).map_err(|e| Refused(format!("--until: {e}")))?;
            // A date before 1970 has no time in milliseconds since then.
            date.end_millis()
                .map_err(|e| Refused(format!("--until: {e}")).into())
        })
        .transpose()
}

fn key_arg(text: &str) -> anyhow::Result<AuthorKey> {
    parse_key(text).filter(AuthorKey::is_valid).ok_or_else(|| {
        Refused(format!(
            "`{text}` is not a public key: it should be the 64 hexadecimal characters that \
             `cailloux key new`, `init`, `status` or `federation create` printed"
        ))
        .into()
    })
}

fn sign(key: &SigningKey, act: Act) -> anyhow::Result<Record> {
    Record::sign_act(key, now_millis(), act).map_err(|e| Refused(e.to_string()).into())
}

fn print_act(record: &Record, json: bool, text: &str) {
    if json {
        println!(
            "{}",
            Value::Object(cailloux_protocol::view::act_json(record))
        );
    } else {
        println!("{}", record.id());
        eprintln!("{text}");
    }
}

pub fn federation_create(
    home: &Home,
    name: &str,
    node: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let key = home.create_federation_key()?;
    let public = AuthorKey(key.verifying_key().to_bytes());
    let record = sign(
        &key,
        Act::Found(Founding {
            name: name.trim().to_owned(),
        }),
    )?;
    // The founding act names the federation; a node accepts it once it has joined.
    if node.is_some() || Remote::find(home).is_some() {
        if let Err(e) = submit(home, node, vec![record]) {
            eprintln!("note: the founding act was not stored yet ({e:#})");
        }
    } else {
        submit(home, None, vec![record])?;
    }
    if json {
        println!("{}", json!({ "federation": public.to_hex() }));
    } else {
        println!("{public}");
        eprintln!(
            "created the federation {} in {} (keep federation.key secret, offline if you can, and \
             backed up). Each town joins with `cailloux join {public}`; admit its key with \
             `cailloux federation admit <town key> --town <name>`.",
            name.trim(),
            home.federation_key_path().display()
        );
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub fn federation_admit(
    home: &Home,
    key: &str,
    town: &str,
    country: &str,
    code: Option<String>,
    until: Option<&str>,
    node: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let federation = home.load_federation_key()?;
    let record = sign(
        &federation,
        Act::Admit(Admission {
            key: key_arg(key)?,
            town: town.trim().to_owned(),
            country: country.trim().to_owned(),
            code,
            until: until_millis(until)?,
        }),
    )?;
    // The founding act travels with the admissions, so that members learn the federation's
    // name (a duplicate where it is already known).
    let mut batch: Vec<Record> = founding_act(home, &federation).into_iter().collect();
    batch.push(record.clone());
    submit(home, node, batch)?;
    print_act(
        &record,
        json,
        &format!("admitted {} as {}", &key[..12.min(key.len())], town.trim()),
    );
    Ok(())
}

/// The federation's founding act, from this home's store (where `federation create` put it),
/// when the store can be opened (no node holds it).
fn founding_act(home: &Home, federation: &SigningKey) -> Option<Record> {
    let store = home.open_existing_store().ok()??;
    let id = {
        let ledger = store.ledger();
        let f = ledger.founding()?;
        (f.issuer.0 == federation.verifying_key().to_bytes()).then_some(f.id)?
    };
    store.get(&id).ok()?
}

pub fn join(home: &Home, key: &str, bootstrap: &[String]) -> anyhow::Result<()> {
    let key = key_arg(key)?;
    home.set_config("federation", &format!("\"{key}\""))?;
    if !bootstrap.is_empty() {
        let list: Vec<String> = bootstrap.iter().map(|b| format!("\"{b}\"")).collect();
        home.set_config("bootstrap", &format!("[{}]", list.join(", ")))?;
    }
    println!("{key}");
    eprintln!(
        "this node now belongs to the federation {key} ({}): it accepts only records whose \
         author chains to it. Restart the node if it is running.",
        home.config_path().display()
    );
    Ok(())
}

pub fn key_new(home: &Home, json: bool) -> anyhow::Result<()> {
    let identity = home.create_identity(None)?;
    let key = identity.public_key();
    if json {
        println!("{}", json!({ "public_key": key.to_hex() }));
    } else {
        println!("{key}");
        eprintln!(
            "created your personal key in {} (keep it secret). Ask your town to run `cailloux \
             delegate {key} --name \"<your name>\"`, then publish with `cailloux publish FILE \
             --node <your town's node>`.",
            home.identity_path().display()
        );
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub fn delegate(
    home: &Home,
    key: &str,
    name: &str,
    role: Option<String>,
    kinds: &[KindArg],
    until: Option<&str>,
    node: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let identity = home.load_identity()?;
    let kinds: Vec<Kind> = kinds.iter().map(|k| Kind::from(*k)).collect();
    let record = sign(
        identity.signing_key(),
        Act::Delegate(Delegation {
            key: key_arg(key)?,
            name: name.trim().to_owned(),
            role,
            kinds,
            until: until_millis(until)?,
        }),
    )?;
    submit(home, node, vec![record.clone()])?;
    print_act(&record, json, &format!("delegated to {}", name.trim()));
    Ok(())
}

/// Revokes a key (or the key an admission or a delegation names). A town's certificate is
/// revoked with the federation key (this home must hold it); anything else with this home's
/// identity (a town revoking its delegate).
pub fn revoke(
    home: &Home,
    target: &str,
    reason: &str,
    node: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let record = if target.trim().len() >= 8 {
        lookup(home, node, target.trim()).unwrap_or(None)
    } else {
        None
    };
    let (key, town) = match record.as_ref().and_then(|r| r["act"].as_str()) {
        Some("admit") => (key_arg(record_key(record.as_ref()))?, true),
        Some("delegate") => (key_arg(record_key(record.as_ref()))?, false),
        Some(other) => {
            return Err(Refused(format!(
                "record {target} is a `{other}` act; revoke names a key, or an admission or a \
                 delegation"
            ))
            .into());
        }
        None if record.is_some() => {
            return Err(Refused(format!(
                "record {target} is a publication; to withdraw it use `cailloux retract`"
            ))
            .into());
        }
        None => {
            let key = key_arg(target)?;
            (key, is_town(home, node, &key)?)
        }
    };
    let signer = if town {
        home.load_federation_key()?
    } else {
        home.load_identity()?.signing_key().clone()
    };
    let record = sign(
        &signer,
        Act::Revoke(Revocation {
            key,
            reason: reason.trim().to_owned(),
        }),
    )?;
    submit(home, node, vec![record.clone()])?;
    print_act(&record, json, &format!("revoked {key}"));
    Ok(())
}

fn record_key(record: Option<&Value>) -> &str {
    record.and_then(|r| r["key"].as_str()).unwrap_or_default()
}

/// Whether `key` is a town's key in the roster.
fn is_town(home: &Home, node: Option<&str>, key: &AuthorKey) -> anyhow::Result<bool> {
    let roster = members_json(home, node)?;
    Ok(roster["towns"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|t| t["key"].as_str() == Some(&key.to_hex())))
}

pub fn retract(
    home: &Home,
    id: &str,
    reason: &str,
    node: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let target = resolve_id(home, node, id)?;
    let identity = home.load_identity()?;
    let record = sign(
        identity.signing_key(),
        Act::Retract(Retraction {
            id: target,
            reason: reason.trim().to_owned(),
        }),
    )?;
    submit(home, node, vec![record.clone()])?;
    print_act(&record, json, &format!("retracted {target}"));
    Ok(())
}

fn members_json(home: &Home, node: Option<&str>) -> anyhow::Result<Value> {
    let remote = match node {
        Some(url) => Some(Remote::at(url)?),
        None => Remote::find(home),
    };
    if let Some(remote) = remote {
        let answer = remote.get("/api/v1/members", &[])?;
        if answer.status != 200 {
            return Err(anyhow::anyhow!(
                "the node failed: {}",
                error_text(&answer.body)
            ));
        }
        return Ok(answer.body);
    }
    let store = home.open_store()?;
    Ok(cailloux_node::api::members_json(&store, now_millis()))
}

pub fn members(home: &Home, node: Option<&str>, json: bool) -> anyhow::Result<()> {
    let roster = members_json(home, node)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&roster)?);
        return Ok(());
    }
    let text = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_owned();
    match roster["federation"].as_str() {
        Some(key) => println!(
            "federation {}  {key}",
            roster["name"].as_str().unwrap_or("(name not received yet)")
        ),
        None => println!("open mode: this node belongs to no federation"),
    }
    let state = |v: &Value| match &v["revoked"] {
        Value::Object(r) => format!(
            "revoked {} ({})",
            r["at"].as_str().unwrap_or_default().get(..10).unwrap_or(""),
            r["reason"].as_str().unwrap_or_default()
        ),
        _ if v["valid"] == true => "valid".into(),
        _ => "not valid now".into(),
    };
    for t in roster["towns"].as_array().into_iter().flatten() {
        let code = t["code"]
            .as_str()
            .map(|c| format!(", {c}"))
            .unwrap_or_default();
        println!(
            "  {} ({}{code})  {}  {}",
            text(t, "town"),
            text(t, "country"),
            text(t, "key"),
            state(t)
        );
        for d in t["delegates"].as_array().into_iter().flatten() {
            let role = d["role"]
                .as_str()
                .map(|r| format!(", {r}"))
                .unwrap_or_default();
            println!(
                "    {}{role}  {}  {}",
                text(d, "name"),
                text(d, "key"),
                state(d)
            );
        }
    }
    Ok(())
}

/// The town that delegated `key`, from the roster of the node at `url`: a valid delegation's
/// town first, else any (so that the node, not the CLI, says why the key may not publish).
pub fn town_of(home: &Home, url: &str, key: &AuthorKey) -> anyhow::Result<Option<String>> {
    let roster = members_json(home, Some(url))?;
    let towns = roster["towns"].as_array().cloned().unwrap_or_default();
    let delegated = |valid_only: bool| {
        towns
            .iter()
            .find(|t| {
                t["delegates"].as_array().into_iter().flatten().any(|d| {
                    d["key"].as_str() == Some(&key.to_hex()) && (!valid_only || d["valid"] == true)
                })
            })
            .and_then(|t| t["town"].as_str().map(str::to_owned))
    };
    Ok(delegated(true).or_else(|| delegated(false)))
}
