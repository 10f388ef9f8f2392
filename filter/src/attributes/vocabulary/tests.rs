use super::*;

fn resolve(v: &mut Vocabulary, chain: &[Seg<'_>]) -> Result<(usize, Type), String> {
    v.resolve(chain)
}

use Seg::{Field as F, Key as K};

#[test]
fn istio_and_mixer_spellings_resolve_to_shared_slots() {
    let mut v = Vocabulary::default();
    assert_eq!(
        resolve(&mut v, &[F("request"), F("host")]),
        Ok((0, Type::String))
    );
    assert_eq!(
        resolve(&mut v, &[F("response"), F("duration")]),
        Ok((1, Type::Duration))
    );
    // Same attribute, other spelling: same slot.
    assert_eq!(
        resolve(&mut v, &[F("request"), F("duration")]),
        Ok((1, Type::Duration))
    );
    assert_eq!(
        resolve(&mut v, &[F("request"), F("headers"), K("X-User")]),
        Ok((2, Type::String))
    );
    assert_eq!(
        resolve(&mut v, &[F("request"), F("headers"), F("x-user")]),
        Ok((2, Type::String)),
        "m.k is m['k']"
    );
    assert_eq!(
        resolve(&mut v, &[F("request"), F("headers")]),
        Ok((3, Type::Map))
    );
    assert_eq!(v.slots()[2].source, Source::RequestHeader("x-user".into()));
    assert_eq!(
        v.slots()[0].source,
        Source::Property(vec!["request".into(), "host".into()])
    );
}

#[test]
fn node_attributes_of_every_era() {
    let mut v = Vocabulary::default();
    let cases: Vec<(Vec<Seg<'_>>, Source, Type)> = vec![
        (
            vec![F("source"), F("workload"), F("name")],
            Source::Node(Side::Source, NodeField::WorkloadName),
            Type::String,
        ),
        (
            vec![F("destination"), F("workload"), F("namespace")],
            Source::Node(Side::Destination, NodeField::Namespace),
            Type::String,
        ),
        (
            vec![F("source"), F("labels"), K("app")],
            Source::NodeLabel(Side::Source, "app".into()),
            Type::String,
        ),
        (
            vec![F("source"), F("labels")],
            Source::NodeLabels(Side::Source),
            Type::Map,
        ),
        (
            vec![F("source"), F("principal")],
            Source::Node(Side::Source, NodeField::Principal),
            Type::String,
        ),
        (
            vec![F("source"), F("user")],
            Source::Node(Side::Source, NodeField::Principal),
            Type::String,
        ),
        (
            vec![F("destination"), F("service"), F("host")],
            Source::DestinationServiceHost,
            Type::String,
        ),
        (
            vec![F("upstream_peer"), F("labels"), K("app"), F("value")],
            Source::NodeLabel(Side::UpstreamPeer, "app".into()),
            Type::String,
        ),
        (
            vec![F("upstream_peer"), F("workload_name")],
            Source::Node(Side::UpstreamPeer, NodeField::WorkloadName),
            Type::String,
        ),
        (
            vec![F("filter_state"), F("upstream_peer"), F("service")],
            Source::Node(Side::UpstreamPeer, NodeField::CanonicalService),
            Type::String,
        ),
        (
            vec![
                F("filter_state"),
                F("downstream_peer"),
                F("labels"),
                K("role"),
            ],
            Source::NodeLabel(Side::DownstreamPeer, "role".into()),
            Type::String,
        ),
        (
            vec![F("context"), F("reporter"), F("kind")],
            Source::Direction,
            Type::String,
        ),
        (
            vec![F("xds"), F("node"), F("metadata"), K("LABELS"), F("app")],
            Source::Property(
                ["xds", "node", "metadata", "LABELS", "app"]
                    .map(String::from)
                    .to_vec(),
            ),
            Type::String,
        ),
        (
            vec![F("node"), F("metadata"), K("LABELS")],
            Source::Property(
                ["xds", "node", "metadata", "LABELS"]
                    .map(String::from)
                    .to_vec(),
            ),
            Type::Map,
        ),
        (
            vec![F("filter_state"), K("wasm.istio_responseClass")],
            Source::Property(vec!["wasm.istio_responseClass".into()]),
            Type::String,
        ),
        (
            vec![
                F("xds"),
                F("cluster_metadata"),
                F("filter_metadata"),
                F("istio"),
                F("services"),
                K("0"),
                F("name"),
            ],
            Source::Property(
                [
                    "xds",
                    "cluster_metadata",
                    "filter_metadata",
                    "istio",
                    "services",
                    "0",
                    "name",
                ]
                .map(String::from)
                .to_vec(),
            ),
            Type::String,
        ),
    ];
    for (chain, source, ty) in cases {
        let (slot, got) = resolve(&mut v, &chain).unwrap_or_else(|e| panic!("{chain:?}: {e}"));
        assert_eq!((&v.slots()[slot].source, got), (&source, ty), "{chain:?}");
    }
}

#[test]
fn unknown_names_get_a_suggestion() {
    let mut v = Vocabulary::default();
    assert_eq!(
        resolve(&mut v, &[F("request"), F("hots")]),
        Err("unknown attribute `request.hots`; did you mean `request.host`?".into())
    );
    assert_eq!(
        resolve(&mut v, &[F("source"), F("workload"), F("nmae")]),
        Err(
            "unknown attribute `source.workload.nmae`; did you mean `source.workload.name`?".into()
        )
    );
    assert_eq!(
        resolve(&mut v, &[F("cannot_evaluate")]),
        Err("unknown attribute `cannot_evaluate`".into())
    );
    assert_eq!(
        resolve(&mut v, &[F("request"), F("headers"), K("a"), K("b")]),
        Err("unknown attribute `request.headers.a.b`; did you mean `request.headers`?".into())
    );
    assert!(v.slots().is_empty(), "failed resolutions allocate no slot");
}
