//! Fischer (cluster-scoped, v1alpha1 only): a list of Flunder names that may not be created.

use super::{Column, KindDecl, Resource, VersionDecl};
use crate::apimachinery::status::FieldError;
use serde_json::{Value, json};

pub struct Fischer;

static DECL: KindDecl = KindDecl {
    kind: "Fischer",
    plural: "fischers",
    singular: "fischer",
    namespaced: false,
    versions: &[VersionDecl {
        name: "v1alpha1",
        deprecation_warning: Some(
            "wardle.example.com/v1alpha1 Fischer is deprecated in v1.3+, unavailable in v1.10+",
        ),
    }],
    storage_version: "v1alpha1",
    description: "Fischer is an example cluster-scoped resource listing Flunder names that may not be created.",
};

/// The names a Fischer bans (BanFlunder admission and the table use it).
pub fn disallowed(obj: &Value) -> Vec<&str> {
    obj.get("disallowedFlunders")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

impl Resource for Fischer {
    fn decl(&self) -> &'static KindDecl {
        &DECL
    }

    fn properties(&self, _version: &str) -> Value {
        json!({
            "disallowedFlunders": {
                "type": "array",
                "description": "disallowedFlunders holds a list of Flunder names that are not allowed to be created.",
                "items": {"type": "string", "default": ""},
                "x-kubernetes-list-type": "atomic",
            },
        })
    }

    fn validate(&self, hub: &Value) -> Vec<FieldError> {
        // Go validates nothing on Fischers; we reject empty names, which could never match a Flunder.
        disallowed(hub)
            .iter()
            .enumerate()
            .filter(|(_, n)| n.is_empty())
            .map(|(i, n)| {
                FieldError::invalid(&format!("disallowedFlunders[{i}]"), *n, "must not be empty")
            })
            .collect()
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column {
                name: "Disallowed",
                type_: "string",
                format: "",
                description: "The Flunder names this Fischer bans.",
                priority: 0,
            },
            Column {
                name: "Count",
                type_: "integer",
                format: "",
                description: "How many Flunder names this Fischer bans.",
                priority: 1,
            },
            super::managers_column(),
        ]
    }

    fn cells(&self, hub: &Value) -> Vec<Value> {
        let names = disallowed(hub);
        let wide = [json!(names.len()), super::managers_cell(hub)];
        if names.is_empty() {
            let mut out = vec![json!("<none>")];
            out.extend(wide);
            return out;
        }
        // Like kubectl's own list columns: the first few names, then a count of the rest.
        let shown: Vec<&str> = names.iter().take(3).copied().collect();
        let mut cell = shown.join(",");
        if names.len() > 3 {
            cell.push_str(&format!(" + {} more...", names.len() - 3));
        }
        let mut out = vec![json!(cell)];
        out.extend(wide);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_summarise_long_lists() {
        let o = json!({"disallowedFlunders": ["a", "b", "c", "d", "e"]});
        assert_eq!(
            Fischer.cells(&o),
            vec![json!("a,b,c + 2 more..."), json!(5), json!("<none>")]
        );
        assert_eq!(
            Fischer.cells(&json!({})),
            vec![json!("<none>"), json!(0), json!("<none>")]
        );
    }

    #[test]
    fn roundtrip_sets_type_meta() {
        let hub = Fischer.to_hub("v1alpha1", json!({"kind": "Fischer", "apiVersion": "x", "metadata": {}, "disallowedFlunders": ["a"]}));
        assert!(hub.get("kind").is_none());
        let v = Fischer.hub_to_version("v1alpha1", hub);
        assert_eq!(v["apiVersion"], "wardle.example.com/v1alpha1");
        assert_eq!(v["disallowedFlunders"], json!(["a"]));
    }
}
