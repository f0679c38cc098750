//! CEL for admission (Go's `k8s.io/apiserver/pkg/admission/plugin/cel` + `pkg/cel/library`), on
//! the `cel` crate: one environment with the standard library, its macros (`has`, `all`,
//! `exists`, `exists_one`, `map`, `filter`), regex `matches`, and cel-go's strings, lists and
//! math extensions that Kubernetes also enables (`lowerAscii`, `split`, `join`, `replace`,
//! `indexOf`, `slice`, `flatten`, `sort`, ...). Objects enter as JSON.
//! Not available (yet): Kubernetes' `quantity()`, `url()`, `isSorted/sum/min/max` on lists,
//! `authorizer`, and timestamps/durations.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use cel::objects::{Key, Map};
use cel::{Context, Env, Program};
use serde_json::Value;

fn env() -> Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Env::stdlib();
        for ext in [
            cel::extensions::strings,
            cel::extensions::lists,
            cel::extensions::math,
        ] {
            env.add_extension(ext)
                .expect("cel-go's extensions declare no overload twice");
        }
        // cel-go keeps the last of repeated map keys; policies written for Go rely on it.
        env.set_error_on_duplicate_map_keys(false);
        Arc::new(env)
    })
    .clone()
}

/// A compiled expression and its source (for messages).
pub struct Expression {
    pub source: String,
    program: Program,
}

impl std::fmt::Debug for Expression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Expression")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// Compile `source`; the error is the parser's message, as a configuration error.
pub fn compile(source: &str) -> Result<Expression, String> {
    let program = env()
        .compile(source)
        .map_err(|e| format!("compilation failed: {e}"))?;
    Ok(Expression {
        source: source.to_string(),
        program,
    })
}

/// A compiled expression, or why it does not compile; shared.
pub type Compiled = Arc<Result<Expression, String>>;

/// Compiled expressions by source, shared by all requests: configurations change rarely and
/// are compiled once. Reset when it grows past a bound, so changing configurations cannot grow
/// it forever.
pub fn compile_cached(source: &str) -> Compiled {
    const MAX: usize = 4096;
    static CACHE: OnceLock<Mutex<HashMap<String, Compiled>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(e) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(source) {
        return e.clone();
    }
    let compiled = Arc::new(compile(source));
    let mut c = cache.lock().unwrap_or_else(|p| p.into_inner());
    if c.len() >= MAX {
        c.clear();
    }
    c.insert(source.to_string(), compiled.clone());
    compiled
}

/// JSON as a CEL value: integers as `int` (as Kubernetes' structural schemas give them), other
/// numbers as `double`, objects as maps keyed by string.
pub fn from_json(v: &Value) -> cel::Value {
    match v {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => cel::Value::Int(i),
            None => cel::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => cel::Value::String(Arc::new(s.clone())),
        Value::Array(a) => cel::Value::List(Arc::new(a.iter().map(from_json).collect())),
        Value::Object(o) => {
            let map: HashMap<Key, cel::Value> = o
                .iter()
                .map(|(k, v)| (Key::String(Arc::new(k.clone())), from_json(v)))
                .collect();
            cel::Value::Map(Map { map: Arc::new(map) })
        }
    }
}

/// The variables one evaluation sees (`object`, `oldObject`, `request`, `params`, ...).
#[derive(Default, Clone)]
pub struct Activation {
    vars: Vec<(&'static str, cel::Value)>,
}

impl Activation {
    pub fn set(&mut self, name: &'static str, value: cel::Value) {
        self.vars.retain(|(n, _)| *n != name);
        self.vars.push((name, value));
    }

    /// Evaluate `e` with these variables; errors are cel's messages.
    pub fn eval(&self, e: &Expression) -> Result<cel::Value, String> {
        let mut ctx = Context::with_env(env());
        for (name, value) in &self.vars {
            ctx.add_variable_from_value(*name, value.clone());
        }
        e.program.execute(&ctx).map_err(|err| err.to_string())
    }

    /// Evaluate a cached compilation as a condition (a compile error is the error).
    pub fn eval_compiled_bool(&self, c: &Compiled) -> Result<bool, String> {
        c.as_ref()
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|e| self.eval_bool(e))
    }

    /// Evaluate a condition: it must give a bool (Go checks the type at compile time).
    pub fn eval_bool(&self, e: &Expression) -> Result<bool, String> {
        match self.eval(e)? {
            cel::Value::Bool(b) => Ok(b),
            other => Err(format!(
                "expression '{}' resulted in error: no such overload: expected bool, got {}",
                e.source,
                other.type_of()
            )),
        }
    }
}

/// `spec.variables`, evaluated in order into the `variables` map, each seeing the ones before.
/// A variable whose evaluation fails is left out: an expression that uses it fails with "no such
/// key", one that does not is unaffected (Go evaluates variables lazily, to the same effect).
pub fn bind_variables(act: &mut Activation, variables: &[(String, Compiled)]) {
    let mut map: HashMap<Key, cel::Value> = HashMap::new();
    for (name, e) in variables {
        act.set(
            "variables",
            cel::Value::Map(Map {
                map: Arc::new(map.clone()),
            }),
        );
        if let Ok(v) = e
            .as_ref()
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|e| act.eval(e))
        {
            map.insert(Key::String(Arc::new(name.clone())), v);
        }
    }
    act.set("variables", cel::Value::Map(Map { map: Arc::new(map) }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(expr: &str, object: Value) -> Result<cel::Value, String> {
        let mut a = Activation::default();
        a.set("object", from_json(&object));
        a.eval(&compile(expr)?)
    }

    fn truth(expr: &str, object: Value) -> bool {
        match eval(expr, object) {
            Ok(cel::Value::Bool(b)) => b,
            other => panic!("{expr}: {other:?}"),
        }
    }

    #[test]
    fn the_fischer_reference_rule_of_the_issue() {
        let rule = "object.spec.referenceType != 'Fischer' || has(object.spec.fischerReference)";
        assert!(truth(
            rule,
            json!({"spec": {"referenceType": "Flunder", "flunderReference": "x"}})
        ));
        assert!(truth(
            rule,
            json!({"spec": {"referenceType": "Fischer", "fischerReference": "x"}})
        ));
        assert!(!truth(rule, json!({"spec": {"referenceType": "Fischer"}})));
    }

    #[test]
    fn kubernetes_string_list_and_regex_functions() {
        let o = json!({"metadata": {"name": "My-Flunder", "labels": {"a": "1", "b": "2"}},
                       "spec": {"n": 3, "items": [3, 1, 2]}});
        for e in [
            "object.metadata.name.lowerAscii() == 'my-flunder'",
            "object.metadata.name.upperAscii() == 'MY-FLUNDER'",
            "object.metadata.name.split('-') == ['My', 'Flunder']",
            "['a', 'b'].join('/') == 'a/b'",
            "object.metadata.name.replace('-', '_') == 'My_Flunder'",
            "'  x '.trim() == 'x'",
            "object.metadata.name.indexOf('F') == 3",
            "object.metadata.name.matches('^[A-Za-z-]+$')",
            "object.spec.n > 2 && object.spec.n * 2 == 6",
            "object.spec.items.all(i, i < 4) && object.spec.items.exists(i, i == 2)",
            "object.spec.items.sort() == [1, 2, 3]",
            "object.metadata.labels.all(k, object.metadata.labels[k].size() == 1)",
            "size(object.spec.items.filter(i, i > 1)) == 2",
            "!has(object.spec.missing)",
            "math.greatest(1, 5) == 5",
        ] {
            assert!(truth(e, o.clone()), "{e}");
        }
        assert!(eval("object.spec.missing == 1", o.clone()).is_err());
        assert!(compile("object.spec.(").is_err());
    }

    #[test]
    fn variables_see_earlier_variables_and_failures_stay_local() {
        let mut a = Activation::default();
        a.set("object", from_json(&json!({"spec": {"n": 2}})));
        let vars = vec![
            ("double".to_string(), compile_cached("object.spec.n * 2")),
            ("broken".to_string(), compile_cached("object.spec.nope + 1")),
            ("syntax".to_string(), compile_cached("object.(")),
            ("quad".to_string(), compile_cached("variables.double * 2")),
        ];
        bind_variables(&mut a, &vars);
        assert!(
            a.eval_bool(&compile("variables.quad == 8").unwrap())
                .unwrap()
        );
        assert!(a.eval(&compile("variables.broken").unwrap()).is_err());
        assert!(a.eval_bool(&compile("object.spec.n").unwrap()).is_err());
    }
}
