//! Envoy's tag extraction, re-done from its source (`TagProducerImpl::produceTags`,
//! `TagExtractorStdRegexImpl::extractTag`) rather than from `stat_name::extract`, so the
//! stat-name target checks the filter against Envoy and not against itself:
//! - every `stats_tags` regex runs with `std::regex_search` (ECMAScript) on the *whole*
//!   original name, not on what earlier regexes left;
//! - group 1 is the run to remove, group 2 the value; the runs of all matching regexes are
//!   merged and cut out of the name at the end;
//! - ECMAScript `.` matches any character but the line terminators `\n` and `\r`.
//!
//! Checked against Envoy 1.40 by hand: with a cluster named `source_app=.=v;.;app=.=w;.;c1`
//! and the two tags `source_app` and `app`, Envoy reports `{source_app="v",app="v"}`, and a
//! value holding `\n` or `\r` is not extracted at all.

use meshstats_filter::stat_name::tag_regex;
use regex::bytes::{Regex, RegexBuilder};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

fn compile(tag: &str) -> Regex {
    RegexBuilder::new(&tag_regex(tag))
        // Bytes, as std::regex over `char`; `.` stops at `\n` and `\r` as ECMAScript's does.
        .unicode(false)
        .crlf(true)
        // Hundreds of tag names stay compiled; the default 2 MiB DFA cache each would be most
        // of libFuzzer's memory limit.
        .dfa_size_limit(1 << 18)
        .build()
        .unwrap_or_else(|e| panic!("tag_regex({tag:?}) is not a regex: {e}"))
}

pub struct Extractor {
    tags: Vec<(String, Rc<Regex>)>,
}

impl Extractor {
    /// One regex per tag, in the `stats_tags` order the filter renders.
    pub fn new(tags: &[String]) -> Extractor {
        thread_local! {
            // Compiling a regex, and its lazy DFA, cost more than a fuzz case; tags repeat.
            // Shared, not cloned: a cloned `Regex` starts with an empty DFA cache.
            static COMPILED: RefCell<HashMap<String, Rc<Regex>>> = RefCell::default();
        }
        let tags = tags
            .iter()
            .map(|t| {
                let re = COMPILED.with_borrow_mut(|c| {
                    Rc::clone(c.entry(t.clone()).or_insert_with(|| Rc::new(compile(t))))
                });
                (t.clone(), re)
            })
            .collect();
        Extractor { tags }
    }

    /// The tag-extracted name and the tags, in extractor order.
    pub fn extract(&self, name: &str) -> (String, Vec<(String, String)>) {
        let bytes = name.as_bytes();
        let mut remove = vec![false; bytes.len()];
        let mut tags = Vec::new();
        for (tag, re) in &self.tags {
            let Some(c) = re.captures(bytes) else {
                continue;
            };
            let (Some(run), Some(value)) = (c.get(1), c.get(2)) else {
                continue;
            };
            remove[run.range()].iter_mut().for_each(|r| *r = true);
            tags.push((
                tag.clone(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            ));
        }
        let rest: Vec<u8> = bytes
            .iter()
            .zip(&remove)
            .filter(|(_, r)| !**r)
            .map(|(b, _)| *b)
            .collect();
        (String::from_utf8_lossy(&rest).into_owned(), tags)
    }
}
