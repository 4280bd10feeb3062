//! Default descriptions: the sentence a person would write for an event
//! ("Jane Doe created the custom role Auditor", spec §2), used when the
//! client sends none.
//!
//! Each catalog event name has a few templates, most specific first; the
//! first one whose placeholders all have a value in the event's metadata
//! wins, and the last one of every list needs no metadata at all. Templates
//! are keyed by the event's name alone: an event name that appears in several
//! categories ("API Key created") gets one alternative per field set, picked
//! by which fields the event carries. An event with no template (an entry
//! added to the catalog later) reads "<Event> by <actor>".
//!
//! Templates name the fields they show, so a field that holds a secret (the
//! workflow's access token, a URL that may carry credentials) is never
//! written into a description: no template names one, and a test holds it.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::record::MetaValue;

/// `(event name, templates)`: `{actor}` is the actor's display name, any
/// other `{key}` the metadata value of that key.
#[rustfmt::skip]
const TEMPLATES: &[(&str, &[&str])] = &[
    // Account level.
    ("Login", &["{actor} signed in with {login_method}", "{actor} signed in"]),
    ("Logout", &["{actor} signed out"]),
    ("Role edited", &["{actor} edited the role {role_id}", "{actor} edited a role"]),
    ("Role created", &["{actor} created the {role_type} role {role_id}", "{actor} created the role {role_id}", "{actor} created a role"]),
    ("Role deleted", &["{actor} deleted the {role_type} role {role_id}", "{actor} deleted the role {role_id}", "{actor} deleted a role"]),
    ("Role changed", &["{actor} changed the role of members"]),
    ("App API Key created", &["{actor} created an App API key"]),
    ("App API key deleted", &["{actor} deleted an App API key"]),
    ("API App created", &["{actor} created the API app {app_id}", "{actor} created an API app"]),
    ("API App deleted", &["{actor} deleted the API app {app_id}", "{actor} deleted an API app"]),
    ("API App updated", &["{actor} updated the API app {app_id}", "{actor} updated an API app"]),
    ("Integration added", &["{actor} added the {integration_type} integration {integration_name}", "{actor} added the integration {integration_name}", "{actor} added an integration"]),
    ("Integration deleted", &["{actor} deleted the {integration_type} integration {integration_name}", "{actor} deleted the integration {integration_name}", "{actor} deleted an integration"]),
    ("Integration disabled", &["{actor} disabled the {integration_type} integration {integration_name}", "{actor} disabled the integration {integration_name}", "{actor} disabled an integration"]),
    ("Integration edited", &["{actor} edited the {integration_type} integration {integration_name}", "{actor} edited the integration {integration_name}", "{actor} edited an integration"]),
    ("Model added", &["{actor} added the {model_type} model {model_name}", "{actor} added the model {model_name}", "{actor} added a model"]),
    ("Model deleted", &["{actor} deleted the {model_type} model {model_name}", "{actor} deleted the model {model_name}", "{actor} deleted a model"]),
    ("API Key created", &[
        "{actor} created an API key for the model {model_name}",
        "{actor} created an API key for the prompt {prompt_name}",
        "{actor} created an API key for version {version_id}",
        "{actor} created an API key",
    ]),
    ("API Key deleted", &[
        "{actor} deleted an API key of the model {model_name}",
        "{actor} deleted an API key of version {version_id}",
        "{actor} deleted an API key",
    ]),
    ("Model fine-tuning", &["{actor} started fine-tuning the model {model_name} on the dataset {training_dataset}", "{actor} started fine-tuning the model {model_name}", "{actor} started fine-tuning a model"]),
    ("Model deployed", &["{actor} deployed the model {model_name} on {hardware_type}", "{actor} deployed the model {model_name}", "{actor} deployed a model"]),
    ("Model undeployed", &["{actor} undeployed the model {model_name} after {hours_of_usage} hours of use", "{actor} undeployed the model {model_name}", "{actor} undeployed a model"]),
    ("Workflow created", &["{actor} created the workflow {workflow_name}", "{actor} created a workflow"]),
    ("Workflow deleted", &["{actor} deleted the workflow {workflow_name}", "{actor} deleted a workflow"]),
    ("Connection added", &["{actor} added a connection to the node {node_name}", "{actor} added a connection"]),
    ("Connection modified", &["{actor} changed the connection of the node {node_name}", "{actor} changed a connection"]),
    ("Action added", &["{actor} added an action to the node {node_name}", "{actor} added an action"]),
    ("Action changed", &["{actor} changed an action of the node {node_name}", "{actor} changed an action"]),
    ("Action edited", &["{actor} edited an action of the node {node_name}", "{actor} edited an action"]),
    ("User invited", &["{actor} invited {added_user_ids} with the role {role_name}", "{actor} invited {added_user_ids}", "{actor} invited users"]),
    ("User deleted", &["{actor} removed {removed_user_ids} from the account", "{actor} removed users from the account"]),
    ("Prompt created", &["{actor} created the prompt {prompt_name}", "{actor} created the prompt {prompt_id}", "{actor} created a prompt"]),
    ("Prompt deleted", &["{actor} deleted the prompt {prompt_id}", "{actor} deleted a prompt"]),
    ("Versions committed", &["{actor} committed version {version_name} of the prompt {prompt_name}", "{actor} committed a version of a prompt"]),
    ("Version restored", &["{actor} restored version {version_name} of the prompt {prompt_name}", "{actor} restored a version of a prompt"]),
    ("Prompt shared", &["{actor} shared the prompt {prompt_name}", "{actor} shared a prompt"]),
    ("Endpoint copied", &["{actor} copied the endpoint of the prompt {prompt_name}", "{actor} copied the endpoint of a prompt"]),
    ("Endpoint consumed", &["{actor} called the endpoint of the prompt {prompt_id}", "{actor} called the endpoint of a prompt"]),
    ("Generated test data", &["{actor} generated test data for the prompt {prompt_id} with {model_name}, using {tokens_consumed} tokens", "{actor} generated test data for the prompt {prompt_id}", "{actor} generated test data"]),
    ("Generated prompt", &["{actor} generated a prompt with {model_name}, using {tokens_consumed} tokens", "{actor} generated a prompt with {model_name}", "{actor} generated a prompt"]),
    ("Dataset uploaded", &["{actor} uploaded a dataset ({file_type} file)", "{actor} uploaded a dataset"]),
    ("Custom script saved as draft", &["{actor} saved the custom script {custom_script_name} as a draft", "{actor} saved a custom script as a draft"]),
    ("Custom script deployed", &["{actor} deployed the custom script {custom_script_name}", "{actor} deployed a custom script"]),
    ("Custom script undeployed", &["{actor} undeployed the custom script {custom_script_name}", "{actor} undeployed a custom script"]),
    ("Custom script re-deployed", &["{actor} redeployed the custom script {custom_script_name}", "{actor} redeployed a custom script"]),
    ("Custom script deleted", &["{actor} deleted the custom script {custom_script_name}", "{actor} deleted a custom script"]),
    ("Custom script exported", &["{actor} exported the custom script {custom_script_name}", "{actor} exported a custom script"]),
    ("Guardrails deployed", &["{actor} deployed the guardrail {guardrail_name} on {hardware_type}", "{actor} deployed the guardrail {guardrail_name}", "{actor} deployed a guardrail"]),
    ("Guardrails undeployed", &["{actor} undeployed the guardrail {guardrail_name}", "{actor} undeployed a guardrail"]),
    ("Write Code", &["{actor} wrote code in the node {node_name}", "{actor} wrote code in a node"]),
    ("Custom Function", &["{actor} added a custom function to the node {node_name}", "{actor} added a custom function"]),
    ("OCR deployed", &["{actor} deployed the OCR connection {connection_name} on {hardware_type}", "{actor} deployed the OCR connection {connection_name}", "{actor} deployed an OCR connection"]),
    ("OCR undeployed", &["{actor} undeployed the OCR connection {connection_name}", "{actor} undeployed an OCR connection"]),
    ("OCR saved as draft", &["{actor} saved the OCR connection {connection_name} as a draft", "{actor} saved an OCR connection as a draft"]),
    ("Azure Doc Intelligence account added", &["{actor} added the Azure Document Intelligence account {connection_name}", "{actor} added an Azure Document Intelligence account"]),
    ("Azure Doc Intelligence account deleted", &["{actor} deleted the Azure Document Intelligence account {connection_name}", "{actor} deleted an Azure Document Intelligence account"]),
    ("Audit logs exported", &["{actor} exported {row_count} audit log entries as {format}", "{actor} exported the audit log"]),
    // Workflow level.
    ("Invited users", &["{actor} invited users to the workflow"]),
    ("Removed users", &["{actor} removed users from the workflow"]),
    ("Workflow deployed", &["{actor} deployed version {workflow_version} of the workflow in {api_mode} mode", "{actor} deployed version {workflow_version} of the workflow", "{actor} deployed the workflow"]),
    ("Workflow undeployed", &["{actor} undeployed version {workflow_version} of the workflow", "{actor} undeployed the workflow"]),
    ("Version created", &["{actor} created the version {version_id}", "{actor} created a version"]),
    ("Version deleted", &["{actor} deleted the version {version_id}", "{actor} deleted a version"]),
    ("Workflow description updated", &["{actor} updated the description of version {version_id}", "{actor} updated the workflow's description"]),
    ("Workflow name updated", &["{actor} renamed the workflow in version {version_id}", "{actor} renamed the workflow"]),
    ("Workflow exported", &["{actor} exported version {version_id} of the workflow", "{actor} exported the workflow"]),
    ("API sync timeout updated", &["{actor} changed the sync API timeout of version {version_id}", "{actor} changed the sync API timeout"]),
    ("API async enabled", &["{actor} enabled the async API for version {version_id}", "{actor} enabled the async API"]),
    ("API async updated", &["{actor} updated the async API settings of version {version_id}", "{actor} updated the async API settings"]),
    ("API async disabled", &["{actor} disabled the async API for version {version_id}", "{actor} disabled the async API"]),
    ("Environment variable added", &["{actor} added an environment variable to version {version_id}", "{actor} added an environment variable"]),
    ("Environment variable deleted", &["{actor} deleted an environment variable from version {version_id}", "{actor} deleted an environment variable"]),
    ("Environment variable edited", &["{actor} edited an environment variable of version {version_id}", "{actor} edited an environment variable"]),
    ("Input scanner added", &["{actor} added an input scanner"]),
    ("Input scanner edited", &["{actor} edited an input scanner"]),
    ("Input scanner removed", &["{actor} removed an input scanner"]),
    ("Output scanner added", &["{actor} added an output scanner"]),
    ("Output scanner edited", &["{actor} edited an output scanner"]),
    ("Output scanner removed", &["{actor} removed an output scanner"]),
    ("Node name edited", &["{actor} renamed the node {node_id} to {node_name}", "{actor} renamed a node"]),
    ("Node deleted", &["{actor} deleted the node {node_name}", "{actor} deleted a node"]),
    ("Description added", &["{actor} added a description to the node {node_name}", "{actor} added a description to a node"]),
    ("Description edited", &["{actor} edited the description of the node {node_name}", "{actor} edited the description of a node"]),
    ("Engine added", &["{actor} added an OCR engine to the node {node_name}", "{actor} added an OCR engine"]),
    ("Engine edited", &["{actor} edited the OCR engine of the node {node_name}", "{actor} edited an OCR engine"]),
    ("Base URL edited", &["{actor} changed the base URL of the node {node_name}", "{actor} changed the base URL of a node"]),
];

/// The templates of an event name, most specific first, if it has any.
pub fn templates(event: &str) -> Option<&'static [&'static str]> {
    TEMPLATES
        .iter()
        .find(|(name, _)| *name == event)
        .map(|(_, t)| *t)
}

/// The default description of an event: its first template whose
/// placeholders all have a value, else "<Event> by <actor>". Not truncated:
/// the caller holds it to the description limit.
pub fn sentence(event: &str, actor: &str, metadata: &BTreeMap<String, MetaValue>) -> String {
    templates(event)
        .into_iter()
        .flatten()
        .find_map(|t| fill(t, actor, metadata))
        .unwrap_or_else(|| format!("{event} by {actor}"))
}

/// `template` with its placeholders replaced, or None when one has no value
/// (absent, null or a boolean, which reads badly in a sentence).
fn fill(template: &str, actor: &str, metadata: &BTreeMap<String, MetaValue>) -> Option<String> {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = open + rest[open..].find('}')?;
        let key = &rest[open + 1..close];
        if key == "actor" {
            out.push_str(actor);
        } else {
            match metadata.get(key)? {
                Value::String(s) if !s.trim().is_empty() => out.push_str(s.trim()),
                Value::Number(n) => out.push_str(&n.to_string()),
                _ => return None,
            }
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// The metadata keys a template shows.
pub fn placeholders(template: &str) -> impl Iterator<Item = &str> {
    template
        .split('{')
        .skip(1)
        .filter_map(|s| s.split_once('}').map(|(k, _)| k))
        .filter(|k| *k != "actor")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ingest::catalog::{Catalog, Source};

    fn meta(v: Value) -> BTreeMap<String, MetaValue> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_spec_example_reads_as_a_sentence() {
        let m = meta(json!({"role_id": "Auditor", "role_type": "custom"}));
        assert_eq!(
            sentence("Role created", "Jane Doe", &m),
            "Jane Doe created the custom role Auditor"
        );
    }

    #[test]
    fn a_missing_value_falls_back_to_a_shorter_template() {
        let m = meta(json!({"role_id": "r_9", "role_type": null}));
        assert_eq!(
            sentence("Role created", "Jane Doe", &m),
            "Jane Doe created the role r_9"
        );
        assert_eq!(
            sentence("Role created", "Jane Doe", &meta(json!({}))),
            "Jane Doe created a role"
        );
        // A name shared by categories picks the alternative its fields fit.
        assert_eq!(
            sentence(
                "API Key created",
                "Ana",
                &meta(json!({"prompt_id": "p_1", "prompt_name": "Triage"}))
            ),
            "Ana created an API key for the prompt Triage"
        );
        // An event without templates.
        assert_eq!(
            sentence("Token created", "Ana", &meta(json!({}))),
            "Token created by Ana"
        );
    }

    /// Every seed event has templates; each names only fields of an event
    /// of that name, never a field that may hold a secret; and the last one
    /// needs no metadata, so a sentence is always found.
    #[test]
    fn every_catalog_event_has_templates_that_never_show_a_secret() {
        const SECRET_FIELDS: &[&str] = &["access_token", "url"];
        let catalog = Catalog::get();
        let mut keys_of: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for e in catalog.entries() {
            keys_of
                .entry(e.event.name.as_str())
                .or_default()
                .extend(e.event.fields.iter().map(|f| f.key.as_str()));
        }
        for e in catalog.entries() {
            let name = e.event.name.as_str();
            // Every seed event has its sentences; an extension event (the
            // product's own, added later) may read "<Event> by <actor>".
            let Some(list) = templates(name) else {
                assert!(e.event.source != Source::Seed, "no template for {name}");
                continue;
            };
            assert!(
                placeholders(list.last().unwrap()).next().is_none(),
                "{name}: the last template must need no metadata"
            );
            for t in list {
                assert!(t.starts_with("{actor} "), "{name}: {t}");
                for key in placeholders(t) {
                    assert!(keys_of[name].contains(&key), "{name}: {key} is not a field");
                    assert!(
                        !SECRET_FIELDS.contains(&key),
                        "{name}: {key} may hold a secret"
                    );
                }
            }
            // With every field filled, the sentence shows no secret either.
            let m: BTreeMap<String, MetaValue> = e
                .event
                .fields
                .iter()
                .map(|f| (f.key.clone(), json!(format!("<{}>", f.key))))
                .collect();
            let s = sentence(name, "Jane Doe", &m);
            assert!(!s.contains("<access_token>") && !s.contains("<url>"), "{s}");
            assert!(s.starts_with("Jane Doe "), "{s}");
        }
        for (name, _) in TEMPLATES {
            assert!(
                keys_of.contains_key(name),
                "template for {name}, which the catalog lacks"
            );
        }
    }
}
