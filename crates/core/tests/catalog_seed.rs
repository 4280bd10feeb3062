//! Checks the embedded catalog against the seed document itself, so nobody can edit an
//! event name, category or description in `catalog.json` without this test noticing.
//!
//! The seed is read from `shared/seeds/` beside the repository. The test parses the
//! seed's "Audit log event reference" independently of the catalog module: its category
//! headings (a line repeated twice), its `| Event | Description | … |` table rows, and
//! its account-level and workflow-level sections.

use std::path::Path;

use auditlog_core::catalog::{Catalog, EventEntry, FieldType, Level, Source};

const SEED_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/seeds/000_cac1349873f66122.txt"
);

/// One row of a seed event table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SeedEvent {
    level: Level,
    category: String,
    event: String,
    description: String,
    /// The "Additional Metadata" labels, empty for "—" or a two-column table.
    additional: Vec<String>,
}

/// One category of the seed, with the prose lines between its heading and its tables.
#[derive(Debug)]
struct SeedCategory {
    level: Level,
    name: String,
    notes: Vec<String>,
}

fn read_seed() -> String {
    let path = Path::new(SEED_PATH);
    // Failing, not skipping: a missing seed would otherwise turn this test into a no-op.
    std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "cannot read the seed document at {} ({e}); the repository must be cloned with \
             `shared/` beside it, so that the catalog can be checked against the seed",
            path.display()
        )
    })
}

fn parse_seed(seed: &str) -> (Vec<SeedCategory>, Vec<SeedEvent>) {
    let reference = seed
        .find("Audit log event reference")
        .map(|at| &seed[at..])
        .expect("the seed has an \"Audit log event reference\" section");
    let account_at = reference
        .find("Account-level events")
        .expect("the seed has an \"Account-level events\" heading");
    let workflow_at = reference
        .find("Workflow-level events")
        .expect("the seed has a \"Workflow-level events\" heading");
    assert!(
        account_at < workflow_at,
        "account-level events come first in the seed"
    );

    let mut categories = Vec::new();
    let mut events = Vec::new();
    for (level, section) in [
        (Level::Account, &reference[account_at..workflow_at]),
        (Level::Workflow, &reference[workflow_at..]),
    ] {
        // The first line is the section heading itself.
        let lines: Vec<&str> = section.lines().skip(1).collect();
        let mut i = 0;
        while i < lines.len() {
            let line = lines[i];
            let is_table = line.starts_with('|');
            if !is_table && !line.trim().is_empty() && lines.get(i + 1) == Some(&line) {
                // The seed writes each category heading twice in a row.
                categories.push(SeedCategory {
                    level,
                    name: line.to_owned(),
                    notes: Vec::new(),
                });
                i += 2;
                continue;
            }
            let category = categories
                .last_mut()
                .filter(|c| c.level == level)
                .unwrap_or_else(|| panic!("seed line before any category heading: {line:?}"));
            if is_table {
                let cells: Vec<&str> = line
                    .trim()
                    .trim_matches('|')
                    .split('|')
                    .map(str::trim)
                    .collect();
                let header = cells.first() == Some(&"Event");
                let rule = cells.iter().all(|c| c.chars().all(|ch| ch == '-'));
                if !header && !rule {
                    assert!(
                        cells.len() == 2 || cells.len() == 3,
                        "unexpected seed row {line:?}"
                    );
                    let additional = match cells.get(2) {
                        None | Some(&"—") => Vec::new(),
                        Some(list) => list.split(", ").map(str::to_owned).collect(),
                    };
                    events.push(SeedEvent {
                        level,
                        category: category.name.clone(),
                        event: cells[0].to_owned(),
                        description: cells[1].to_owned(),
                        additional,
                    });
                }
            } else if !line.trim().is_empty() {
                category.notes.push(line.trim().to_owned());
            }
            i += 1;
        }
    }
    (categories, events)
}

/// The catalog's label rule (see the `catalog` module docs), restated here so the test
/// checks the data rather than trusting it: returns the expected (key, label, required,
/// boolean) of a seed label.
fn expected_field(seed_label: &str) -> (String, String, bool, bool) {
    let (base, qualifier) = match seed_label
        .strip_suffix(')')
        .and_then(|s| s.rsplit_once(" ("))
    {
        Some((base, qualifier)) => (base, Some(qualifier)),
        None => (seed_label, None),
    };
    let condition = qualifier.is_some_and(|q| q.starts_with("if ") || q.ends_with(" models"));
    let yes_no = qualifier == Some("yes/no");
    let label = if condition || yes_no {
        base
    } else {
        seed_label
    };
    (snake_key(base), label.to_owned(), !condition, yes_no)
}

fn snake_key(label: &str) -> String {
    let mut key = String::new();
    for c in label.to_lowercase().chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            key.push(c);
        } else if !key.is_empty() && !key.ends_with('_') {
            key.push('_');
        }
    }
    key.trim_end_matches('_').to_owned()
}

/// Labels the seed lists that the record carries itself instead of `metadata`.
fn is_record_field(label: &str) -> bool {
    let base = label.split(" (").next().unwrap_or(label);
    matches!(
        base,
        "User ID" | "User Name" | "Email ID" | "IP Address" | "Workflow ID"
    )
}

/// Splits "A, B, and C" or "A and B" into its items.
fn split_list(list: &str) -> Vec<String> {
    list.trim_end_matches('.')
        .replace(", and ", ", ")
        .replace(" and ", ", ")
        .split(", ")
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

fn seed_entries(catalog: &Catalog) -> Vec<EventEntry<'_>> {
    catalog
        .entries()
        .filter(|e| e.event.source == Source::Seed)
        .collect()
}

#[test]
fn catalog_has_exactly_the_seed_events_in_order() {
    let seed = read_seed();
    let (categories, events) = parse_seed(&seed);
    let count = |level| events.iter().filter(|e| e.level == level).count();
    let categories_of = |level| categories.iter().filter(|c| c.level == level).count();
    assert_eq!(
        (count(Level::Account), categories_of(Level::Account)),
        (57, 15)
    );
    assert_eq!(
        (count(Level::Workflow), categories_of(Level::Workflow)),
        (34, 4)
    );

    let want: Vec<(Level, &str, &str, &str)> = events
        .iter()
        .map(|e| {
            (
                e.level,
                e.category.as_str(),
                e.event.as_str(),
                e.description.as_str(),
            )
        })
        .collect();
    let catalog = Catalog::get();
    let have: Vec<(Level, &str, &str, &str)> = seed_entries(catalog)
        .iter()
        .map(|e| {
            (
                e.level,
                e.category,
                e.event.name.as_str(),
                e.event.description.as_str(),
            )
        })
        .collect();
    for (i, (w, h)) in want.iter().zip(&have).enumerate() {
        assert_eq!(
            h, w,
            "seed event #{i} differs between catalog.json and the seed"
        );
    }
    assert_eq!(
        have.len(),
        want.len(),
        "catalog.json and the seed list different numbers of events"
    );

    // Extension entries only add categories of their own; they never slip into a
    // seed category, where they would pass as seed events.
    for entry in catalog
        .entries()
        .filter(|e| e.event.source == Source::Extension)
    {
        assert!(
            !categories
                .iter()
                .any(|c| c.level == entry.level && c.name == entry.category),
            "extension event {:?} sits in seed category {:?}",
            entry.event.name,
            entry.category
        );
    }
}

#[test]
fn every_additional_metadata_label_is_a_field() {
    let seed = read_seed();
    let (_, events) = parse_seed(&seed);
    let catalog = Catalog::get();
    let mut checked = 0;
    for seed_event in &events {
        let id = catalog
            .find(seed_event.level, &seed_event.category, &seed_event.event)
            .unwrap_or_else(|| panic!("{seed_event:?} is missing from the catalog"));
        let event = catalog.entry(id).event;
        for seed_label in &seed_event.additional {
            let (key, label, required, boolean) = expected_field(seed_label);
            let field = event.field(&key).unwrap_or_else(|| {
                panic!(
                    "{}/{}: seed label {seed_label:?} has no field {key:?}",
                    seed_event.category, seed_event.event
                )
            });
            assert_eq!(field.label, label, "{}: label of {key}", seed_event.event);
            assert_eq!(
                field.required, required,
                "{}: required of {key}",
                seed_event.event
            );
            if boolean {
                assert_eq!(
                    field.ty,
                    FieldType::Boolean,
                    "{}: type of {key}",
                    seed_event.event
                );
            }
            checked += 1;
        }
    }
    assert!(
        checked > 50,
        "only {checked} additional metadata labels found in the seed"
    );
}

/// The prose lines "Metadata: A, B are shown for all events (except E)" and "X is (also)
/// shown for: E1, E2" must be reflected in every event they name.
#[test]
fn shown_for_lines_are_fields() {
    let seed = read_seed();
    let (categories, events) = parse_seed(&seed);
    let catalog = Catalog::get();
    // The seed's Prompts note says "Versions Restored"; the only restore event in that
    // table is "Version restored".
    let alias = |name: &str| -> String {
        match name {
            "versions restored" => "version restored".to_owned(),
            other => other.to_owned(),
        }
    };
    let mut checked = 0;
    for category in &categories {
        let category_events: Vec<&SeedEvent> = events
            .iter()
            .filter(|e| e.level == category.level && e.category == category.name)
            .collect();
        for note in &category.notes {
            let note = note
                .trim_start_matches("- ")
                .trim_start_matches("Metadata:")
                .trim();
            let (labels, applies_to): (&str, Vec<&SeedEvent>) =
                if let Some((labels, rest)) = note.split_once(" shown for all") {
                    let excluded: Vec<String> = rest
                        .split_once(" except ")
                        .map(|(_, names)| {
                            split_list(names)
                                .iter()
                                .map(|n| alias(&n.to_lowercase()))
                                .collect()
                        })
                        .unwrap_or_default();
                    let applies = category_events
                        .iter()
                        .copied()
                        .filter(|e| !excluded.contains(&e.event.to_lowercase()))
                        .collect();
                    (labels, applies)
                } else if let Some((labels, names)) = note.split_once(" shown for: ") {
                    let names: Vec<String> = split_list(names)
                        .iter()
                        .map(|n| alias(&n.to_lowercase()))
                        .collect();
                    let applies: Vec<&SeedEvent> = category_events
                        .iter()
                        .copied()
                        .filter(|e| names.contains(&e.event.to_lowercase()))
                        .collect();
                    assert_eq!(
                        applies.len(),
                        names.len(),
                        "{}: every event of {note:?} exists",
                        category.name
                    );
                    (labels, applies)
                } else {
                    // The Workflow Management notes ("Metadata for deployment events: …")
                    // do not follow either pattern; the unit tests pin those fields.
                    continue;
                };
            // "A and B are", "X is also": drop the verb so only the list is left.
            let labels = ["are", "is also", "is"]
                .iter()
                .find_map(|verb| labels.strip_suffix(&format!(" {verb}")))
                .unwrap_or(labels);
            for seed_label in split_list(labels).iter().filter(|l| !is_record_field(l)) {
                let (key, label, _, _) = expected_field(seed_label);
                for seed_event in &applies_to {
                    let id = catalog
                        .find(seed_event.level, &seed_event.category, &seed_event.event)
                        .unwrap_or_else(|| panic!("{seed_event:?} is missing from the catalog"));
                    let field = catalog.entry(id).event.field(&key).unwrap_or_else(|| {
                        panic!(
                            "{}/{}: no field {key:?} for {note:?}",
                            category.name, seed_event.event
                        )
                    });
                    assert_eq!(field.label, label);
                    assert!(
                        field.required,
                        "{}: {key} is shown for all, so required",
                        seed_event.event
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 100, "only {checked} shown-for fields checked");
}
