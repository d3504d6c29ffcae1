//! A hostile peer, built from the protocol crate and plain libp2p, announces records and serves
//! garbage for them: a forged signature, a malformed payload, an oversize payload, and gossips a
//! message that is not an announcement at all. Its neighbour rejects each (and counts it by
//! reason), stores nothing, and forwards nothing to a third node; the network keeps working.

mod util;

use cailloux_protocol::wire::{
    Announce, FETCH_PROTOCOL, FetchRequest, FetchResponse, GOSSIP_TOPIC,
};
use cailloux_protocol::{Publication, Record, RecordId, SigningKey, parse_publication};
use futures::StreamExt;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, StreamProtocol, gossipsub, noise, tcp, yamux};
use std::collections::HashMap;
use std::time::Duration;
use util::*;

#[derive(NetworkBehaviour)]
struct Rogue {
    gossipsub: gossipsub::Behaviour,
    fetch: request_response::cbor::Behaviour<FetchRequest, FetchResponse>,
}

fn publication() -> Publication {
    let text = "---\nkind: practice\ntitle: Faux\nsummary: Faux.\ntown: Nulle-Part\nthemes: [water]\n---\nFaux.\n";
    parse_publication(text, None)
        .unwrap_or_else(|v| panic!("{v:?}"))
        .publication
}

/// What the rogue serves for each id it announces.
fn poisoned_records() -> HashMap<RecordId, Vec<u8>> {
    let id_of = |bytes: &[u8]| RecordId(*blake3::hash(bytes).as_bytes());
    let mut served = HashMap::new();
    // A real record whose signature has one bit flipped (its id is the hash of the bad bytes).
    let record = Record::sign(
        &SigningKey::from_bytes(&[66; 32]),
        1_764_000_000_000,
        publication(),
    );
    let mut forged = record.unwrap_or_else(|e| panic!("{e}")).into_bytes();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    served.insert(id_of(&forged), forged);
    let malformed = b"\x82\x43abc\x58\x40not a record".to_vec();
    served.insert(id_of(&malformed), malformed);
    let oversize = vec![0x82; 300 * 1024];
    served.insert(id_of(&oversize), oversize);
    served
}

async fn run_rogue(target: Multiaddr, served: HashMap<RecordId, Vec<u8>>) {
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .with_behaviour(|_| {
            let config = gossipsub::ConfigBuilder::default()
                .validation_mode(gossipsub::ValidationMode::Anonymous)
                .message_id_fn(|m| {
                    gossipsub::MessageId::from(blake3::hash(&m.data).as_bytes().to_vec())
                })
                .build()
                .unwrap_or_else(|e| panic!("{e}"));
            Rogue {
                gossipsub: gossipsub::Behaviour::new(
                    gossipsub::MessageAuthenticity::Anonymous,
                    config,
                )
                .unwrap_or_else(|e| panic!("{e}")),
                fetch: request_response::cbor::Behaviour::new(
                    [(StreamProtocol::new(FETCH_PROTOCOL), ProtocolSupport::Full)],
                    request_response::Config::default(),
                ),
            }
        })
        .unwrap_or_else(|e| panic!("{e}"))
        .build();
    let topic = gossipsub::IdentTopic::new(GOSSIP_TOPIC);
    swarm
        .behaviour_mut()
        .gossipsub
        .subscribe(&topic)
        .unwrap_or_else(|e| panic!("{e}"));
    swarm.dial(target).unwrap_or_else(|e| panic!("{e}"));
    let mut to_send: Vec<Vec<u8>> = served
        .keys()
        .map(|id| Announce { id: *id }.encode().to_vec())
        .collect();
    to_send.push(b"garbage".to_vec());
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                // Publishing fails until the neighbour's subscription is known; keep trying.
                to_send.retain(|data| swarm.behaviour_mut().gossipsub.publish(topic.clone(), data.clone()).is_err());
            }
            event = swarm.select_next_some() => {
                if let SwarmEvent::Behaviour(RogueEvent::Fetch(request_response::Event::Message {
                    message: request_response::Message::Request { request, channel, .. }, ..
                })) = event {
                    let records = request.ids.iter().filter_map(|id| served.get(id)).map(|b| serde_bytes::ByteBuf::from(b.clone())).collect();
                    let _ = swarm.behaviour_mut().fetch.send_response(channel, FetchResponse { records });
                }
            }
        }
    }
}

#[test]
fn a_rogue_peers_garbage_is_rejected_counted_and_never_forwarded() {
    let b = NodeProcess::start("B", &[]);
    let c = NodeProcess::start("C", &[b.addr()]);
    assert!(wait_until(
        Duration::from_secs(10),
        || b.status()["gossip_peers"] == 1
    ));
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("{e}"));
    let target: Multiaddr = b.addr().parse().unwrap_or_else(|e| panic!("{e}"));
    runtime.spawn(run_rogue(target, poisoned_records()));

    let rejected = |reason: &str| {
        b.metric(&format!(
            "cailloux_records_rejected_total{{reason=\"{reason}\"}}"
        ))
    };
    let all_seen = wait_until(Duration::from_secs(15), || {
        rejected("bad_signature") >= 1.0
            && rejected("malformed") >= 2.0
            && rejected("oversize") >= 1.0
    });
    assert!(
        all_seen,
        "rejections: bad_signature {}, malformed {}, oversize {}\n{}",
        rejected("bad_signature"),
        rejected("malformed"),
        rejected("oversize"),
        b.log()
    );
    assert!(b.ids().is_empty(), "nothing stored on the neighbour");
    assert!(c.ids().is_empty(), "nothing stored on the third node");
    assert_eq!(
        c.metric("cailloux_records_received_total{via=\"gossip\"}"),
        0.0,
        "nothing forwarded to the third node"
    );

    // The network still carries valid records from B to C.
    let files = publication_files(1, "après");
    let out = b.home.ok(&[
        "publish",
        "--json",
        files.path().to_str().unwrap_or_default(),
    ]);
    let id = published(&out)[0].1.clone();
    assert!(wait_until(Duration::from_secs(5), || c.ids().contains(&id)));
    runtime.shutdown_background();
}
