//! CEL for admission (Go's `k8s.io/apiserver/pkg/admission/plugin/cel` + `pkg/cel/library`), on
//! the `cel` crate: one environment with the standard library, its macros (`has`, `all`,
//! `exists`, `exists_one`, `map`, `filter`), regex `matches`, and cel-go's strings, lists and
//! math extensions that Kubernetes also enables (`lowerAscii`, `split`, `join`, `replace`,
//! `indexOf`, `slice`, `flatten`, `sort`, ...), and Kubernetes' own libraries (`cel_library`:
//! lists `isSorted/sum/min/max/indexOf/lastIndexOf`, regex `find/findAll`, `quantity()`,
//! `url()`, `ip()`, `cidr()`, `format`, `semver()`, and cel-go's `sets`). Objects enter as JSON.
//! Not available (yet): Kubernetes' `jsonpatch`, `authorizer`, cel-go's
//! two-variable comprehensions, and timestamps/durations.
//!
//! Cost: the `cel` crate has no cost tracking, and CEL's only loops are its comprehensions
//! (`all`, `exists`, `map`, ...). Every comprehension's range is therefore routed through a
//! counting function that charges one unit per element it iterates, against Go's per-call
//! limit (1,000,000, `PerCallLimit`) and a budget shared by one policy evaluation (10,000,000,
//! `RuntimeCELCostBudget`), so that nested loops over a large object end with Go's errors
//! instead of occupying the server.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use cel::common::ast::{CallExpr, EntryExpr, Expr, MapExpr, StructExpr};
use cel::common::types::DYN_TYPE;
use cel::common::value::CowVal;
use cel::extractors::Arguments;
use cel::objects::{Key, Map};
use cel::{Context, Env, IdedExpr};

use super::cel_meter::{ARG_METER, CALL_LIMIT_EXCEEDED, COST_ARG_FN, charge};
use serde_json::Value;

/// Go's `PerCallLimit`: the cost one expression may spend (here: comprehension iterations).
pub const PER_CALL_LIMIT: u64 = 1_000_000;
/// Go's `RuntimeCELCostBudget`: the cost all expressions of one evaluation may spend together.
pub const RUNTIME_BUDGET: u64 = 10_000_000;
/// The counting function every comprehension range is wrapped in. `@` cannot start an
/// identifier in CEL source, so no expression can call (or shadow) it.
const COST_FN: &str = "@wardle_cost";
/// The functions that wrap the operands of a call whose work grows with their size: they
/// charge a list's or map's length, or a string's length / 10 (Go's traversal cost factor), and
/// hand the value on untouched. `COST_ARG_SQUARED_FN` charges the square; `COST_IN_FN`, for
/// `in`, lists only (a map lookup is constant).
const COST_ARG_SQUARED_FN: &str = "@wardle_cost_arg2";
const COST_IN_FN: &str = "@wardle_cost_in";
const COST_ARG_FNS: [&str; 3] = [COST_ARG_FN, COST_ARG_SQUARED_FN, COST_IN_FN];
/// The calls whose work is linear in the size of their receiver and arguments (Go charges
/// them by size too): without a charge, a loop calling one on a large list would do
/// quadratic work uncharged. Indexing, `size()` and map lookups stay constant-cost.
const LINEAR_CALLS: &[&str] = &[
    "_==_",
    "_!=_",
    "_+_",
    "@in",
    "indexOf",
    "lastIndexOf",
    "isSorted",
    "sum",
    "min",
    "max",
    "sort",
    "reverse",
    "flatten",
    "join",
    "slice",
    "find",
    "findAll",
    super::cel_library::MATCHES,
    "split",
    "replace",
    "lowerAscii",
    "upperAscii",
    "trim",
    "substring",
    "charAt",
    "contains",
    "startsWith",
    "endsWith",
    "format",
    "@sortByAssociatedKeys",
];
/// The calls whose work is quadratic in the size of their receiver (and `sets.*`, whose work
/// is the product of their arguments' sizes).
const QUADRATIC_CALLS: &[&str] = &["distinct"];
/// Go's message when an evaluation exhausts `RUNTIME_BUDGET`.
pub const OUT_OF_BUDGET: &str =
    "validation failed due to running out of cost budget, no further validation rules will be run";

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
        env.add_extension(super::cel_library::register)
            .expect("Kubernetes' libraries declare no overload twice");
        for (name, op) in [
            (COST_ARG_FN, charge_size as cel::common::functions::Function),
            (COST_ARG_SQUARED_FN, charge_size_squared),
            (COST_IN_FN, charge_list_size),
        ] {
            env.add_overload(name, name, vec![DYN_TYPE], op)
                .expect("the cost functions' names are not standard overloads");
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
    /// The parsed expression, comprehension ranges wrapped in `COST_FN`.
    expr: IdedExpr,
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
        .map_err(|e| format!("compilation error: {e}"))?;
    let mut expr = program.expression().clone();
    meter(&mut expr);
    Ok(Expression {
        source: source.to_string(),
        expr,
    })
}

/// Wrap the range of every comprehension in `e` in a call of `COST_FN`, which charges its
/// size each time the loop starts (so an inner loop is charged on every outer iteration), and
/// the operands of `in`, `LINEAR_CALLS` and `QUADRATIC_CALLS` in one of `COST_ARG_FNS`.
fn meter(e: &mut IdedExpr) {
    // An explicit stack: the parser bounds nesting, but this walk need not rely on it.
    let mut todo = vec![e];
    while let Some(e) = todo.pop() {
        match &mut e.expr {
            Expr::Call(c) => {
                // `matches` runs on the Kubernetes library's regex cache (the `cel` crate's
                // compiles the pattern on every call, uncharged).
                if c.func_name == "matches" {
                    c.func_name = super::cel_library::MATCHES.into();
                }
                // `sets.contains(a, b)` and friends compare every pair: quadratic.
                let sets = c
                    .target
                    .as_deref()
                    .is_some_and(|t| matches!(&t.expr, Expr::Ident(name) if name == "sets"));
                let charge = if sets || QUADRATIC_CALLS.contains(&c.func_name.as_str()) {
                    Some(COST_ARG_SQUARED_FN)
                } else if c.func_name == "@in" {
                    Some(COST_IN_FN)
                } else if LINEAR_CALLS.contains(&c.func_name.as_str()) {
                    Some(COST_ARG_FN)
                } else {
                    None
                };
                if let Some(charge) = charge {
                    let operands = c.target.as_deref_mut().into_iter().chain(c.args.iter_mut());
                    for operand in operands.filter(|o| chargeable(o)) {
                        wrap(operand, charge);
                    }
                }
                for operand in c.target.as_deref_mut().into_iter().chain(c.args.iter_mut()) {
                    todo.push(unwrapped(operand));
                }
            }
            Expr::Comprehension(c) => {
                let range = std::mem::take(&mut c.iter_range);
                c.iter_range = IdedExpr {
                    id: range.id,
                    expr: Expr::Call(CallExpr {
                        func_name: COST_FN.into(),
                        target: None,
                        args: vec![range],
                    }),
                };
                let c = &mut **c;
                if let Expr::Call(wrapper) = &mut c.iter_range.expr {
                    todo.extend(wrapper.args.iter_mut());
                }
                todo.extend([
                    &mut c.accu_init,
                    &mut c.loop_cond,
                    &mut c.loop_step,
                    &mut c.result,
                ]);
            }
            Expr::List(l) => todo.extend(l.elements.iter_mut()),
            Expr::Map(MapExpr { entries }) | Expr::Struct(StructExpr { entries, .. }) => {
                for entry in entries {
                    match &mut entry.expr {
                        EntryExpr::MapEntry(me) => todo.extend([&mut me.key, &mut me.value]),
                        EntryExpr::StructField(f) => todo.push(&mut f.value),
                    }
                }
            }
            Expr::Select(sel) => todo.push(&mut sel.operand),
            _ => {}
        }
    }
}

/// Whether an operand may be wrapped in a cost function: not a namespace (`math` in
/// `math.greatest(...)` must stay a name for the call to resolve), nor a comprehension's
/// accumulator (`@result`: the `map`/`filter` expansions append to it in place).
fn chargeable(e: &IdedExpr) -> bool {
    const NAMESPACES: &[&str] = &[
        "math", "strings", "lists", "ip", "optional", "base64", "sets",
    ];
    match &e.expr {
        Expr::Ident(name) => !name.starts_with('@') && !NAMESPACES.contains(&name.as_str()),
        _ => true,
    }
}

/// `e`, or the expression a cost function wraps in it (which the walk must not wrap again).
fn unwrapped(e: &mut IdedExpr) -> &mut IdedExpr {
    let wrapped = matches!(&e.expr, Expr::Call(w)
        if COST_ARG_FNS.contains(&w.func_name.as_str()));
    if !wrapped {
        return e;
    }
    match &mut e.expr {
        Expr::Call(w) => &mut w.args[0],
        _ => unreachable!("checked to be a wrapping call"),
    }
}

/// Replace `e` by `charge(e)`.
fn wrap(e: &mut IdedExpr, charge: &str) {
    let inner = std::mem::take(e);
    *e = IdedExpr {
        id: inner.id,
        expr: Expr::Call(CallExpr {
            func_name: charge.into(),
            target: None,
            args: vec![inner],
        }),
    };
}

/// The size `COST_ARG_FN` charges for `v`: a list's or map's length, a string's bytes / 10,
/// else 0.
fn size_cost(v: &dyn cel::common::value::Val) -> u64 {
    match v.get_type().name() {
        "list" | "map" => v
            .as_sizer()
            .map_or(0, |s| u64::try_from(*s.size().inner()).unwrap_or(0)),
        "string" => v
            .downcast_ref::<cel::common::types::CelString>()
            .map_or(0, |s| s.inner().len() as u64 / 10),
        _ => 0,
    }
}

/// The body of the cost functions: charge `cost(operand)` and hand the operand on.
fn charge_operand<'b, 'v>(
    args: Vec<CowVal<'b, 'v>>,
    cost: impl Fn(&dyn cel::common::value::Val) -> u64,
) -> Result<CowVal<'b, 'v>, cel::ExecutionError> {
    let v = args
        .into_iter()
        .next()
        .ok_or_else(cel::ExecutionError::missing_argument_or_target)?;
    charge(cost(v.as_ref()))?;
    Ok(v)
}

fn charge_size<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, cel::ExecutionError> {
    charge_operand(args, size_cost)
}

fn charge_list_size<'b, 'v>(
    args: Vec<CowVal<'b, 'v>>,
) -> Result<CowVal<'b, 'v>, cel::ExecutionError> {
    charge_operand(args, |v| {
        if v.get_type().name() == "list" {
            size_cost(v)
        } else {
            0
        }
    })
}

fn charge_size_squared<'b, 'v>(
    args: Vec<CowVal<'b, 'v>>,
) -> Result<CowVal<'b, 'v>, cel::ExecutionError> {
    charge_operand(args, |v| size_cost(v).saturating_pow(2))
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

/// The variables one evaluation sees (`object`, `oldObject`, `request`, `params`, ...), and
/// the cost budget left to the expressions evaluated with them.
pub struct Activation {
    vars: Vec<(&'static str, cel::Value)>,
    per_call_limit: u64,
    budget: u64,
}

impl Default for Activation {
    fn default() -> Self {
        Activation {
            vars: Vec::new(),
            per_call_limit: PER_CALL_LIMIT,
            budget: RUNTIME_BUDGET,
        }
    }
}

impl Activation {
    pub fn set(&mut self, name: &'static str, value: cel::Value) {
        self.vars.retain(|(n, _)| *n != name);
        self.vars.push((name, value));
    }

    /// Evaluate `e` with these variables; errors are cel's messages, or Go's when the
    /// expression exceeds `PER_CALL_LIMIT` or the evaluation's budget runs out (then every
    /// later evaluation with this activation fails too).
    pub fn eval(&mut self, e: &Expression) -> Result<cel::Value, String> {
        if self.budget == 0 {
            return Err(OUT_OF_BUDGET.into());
        }
        let limit = self.per_call_limit.min(self.budget);
        let spent = Arc::new(AtomicU64::new(0));
        let mut ctx = Context::with_env(env());
        for (name, value) in &self.vars {
            ctx.add_variable_from_value(*name, value.clone());
        }
        let meter = spent.clone();
        ctx.add_function(COST_FN, move |Arguments(args): Arguments| {
            let range = args.first().cloned().unwrap_or(cel::Value::Null);
            let size = match &range {
                cel::Value::List(l) => l.len(),
                cel::Value::Map(m) => m.map.len(),
                _ => 0,
            } as u64;
            // Charged before the loop runs: an over-limit range is never iterated.
            if meter.fetch_add(size + 1, Ordering::Relaxed) + size + 1 > limit {
                return Err(cel::ExecutionError::function_error(
                    COST_FN,
                    CALL_LIMIT_EXCEEDED,
                ));
            }
            Ok(range)
        })
        .expect("the cost function's name is not a standard overload");
        ARG_METER.set(Some((spent.clone(), limit)));
        let result = cel::Value::resolve(&e.expr, &ctx);
        ARG_METER.set(None);
        let spent = spent.load(Ordering::Relaxed);
        if spent > limit {
            if limit < self.per_call_limit {
                self.budget = 0;
                return Err(OUT_OF_BUDGET.into());
            }
            return Err(format!(
                "expression '{}' resulted in error: {CALL_LIMIT_EXCEEDED}",
                e.source
            ));
        }
        self.budget -= spent;
        result.map_err(|err| {
            format!(
                "expression '{}' resulted in error: {}",
                e.source,
                go_message(&err)
            )
        })
    }

    /// Go's match-condition matcher (`matchconditions.Matcher.Match`): false as soon as one
    /// condition is false (whatever the others do); else the failures, joined as Go's
    /// `NewAggregate` joins them; else true.
    pub fn match_conditions<'c>(
        &mut self,
        expressions: impl IntoIterator<Item = &'c str>,
    ) -> Result<bool, String> {
        let mut errors = Vec::new();
        for source in expressions {
            match self.eval_compiled_bool(&compile_cached(source)) {
                Ok(true) => {}
                Ok(false) => return Ok(false),
                Err(e) => errors.push(e),
            }
        }
        match errors.len() {
            0 => Ok(true),
            1 => Err(errors.remove(0)),
            _ => Err(format!("[{}]", errors.join(", "))),
        }
    }

    /// Evaluate a cached compilation as a condition (a compile error is the error).
    pub fn eval_compiled_bool(&mut self, c: &Compiled) -> Result<bool, String> {
        c.as_ref()
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|e| self.eval_bool(e))
    }

    /// Evaluate a condition: it must give a bool (Go checks the type at compile time).
    pub fn eval_bool(&mut self, e: &Expression) -> Result<bool, String> {
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

/// The text cel-go gives for the runtime errors both implementations have (a library
/// function's own message, `division by zero`, `no such key: x`, ...); the `cel` crate's text
/// for the others.
fn go_message(err: &cel::ExecutionError) -> String {
    use cel::ExecutionError as E;
    match err {
        E::FunctionError { message, .. } => message.clone(),
        E::DivisionByZero(_) => "division by zero".into(),
        E::RemainderByZero(_) => "modulus by zero".into(),
        E::Overflow(..) => "integer overflow".into(),
        E::NoSuchKey(key) => format!("no such key: {key}"),
        E::IndexOutOfBounds(cel::Value::Int(i)) => format!("index out of bounds: {i}"),
        other => other.to_string(),
    }
}

/// Run `f`, CEL evaluation that may spend up to the runtime budget (seconds of CPU), without
/// holding up the other requests of this runtime worker: on the multi-threaded runtime the
/// worker's other tasks move to another thread meanwhile (`block_in_place`).
pub fn evaluate_blocking<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
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

    #[test]
    fn loops_are_charged_against_a_per_call_limit_and_a_shared_budget() {
        // Go's limits scaled down 100 times, so the test runs quickly.
        let mut a = Activation {
            per_call_limit: PER_CALL_LIMIT / 100,
            budget: RUNTIME_BUDGET / 100,
            ..Default::default()
        };
        let items: Vec<u32> = (0..200).collect();
        a.set("object", from_json(&json!({"spec": {"items": items}})));
        // 200 + 200 * 200 iterations: over the per-call limit, stopped, not run.
        let nested =
            compile("object.spec.items.all(x, object.spec.items.all(y, x >= 0 && y >= 0))")
                .unwrap();
        let e = a.eval(&nested).unwrap_err();
        assert!(e.ends_with(CALL_LIMIT_EXCEEDED), "{e}");
        // Within the limit, loops (map's fast path included) evaluate as before.
        let ok = compile("object.spec.items.map(x, x * 2).filter(x, x > 390).size() == 4").unwrap();
        assert!(a.eval_bool(&ok).unwrap());
        // The budget is shared: 45 outer x 201 inner ~ 9,100 per call, so the 11th call finds
        // it exhausted, and from then on every expression fails with Go's message.
        let heavy = compile(
            "object.spec.items.filter(x, x < 45).all(x, object.spec.items.exists(y, y == 199))",
        )
        .unwrap();
        let outcomes: Vec<_> = (0..12).map(|_| a.eval(&heavy)).collect();
        assert!(outcomes[0].is_ok(), "{:?}", outcomes[0]);
        assert_eq!(outcomes[11].clone().unwrap_err(), OUT_OF_BUDGET);
        assert_eq!(a.eval(&ok).unwrap_err(), OUT_OF_BUDGET);
    }

    #[test]
    fn functions_linear_in_their_operands_are_charged_by_size() {
        // Go's limits scaled down 100 times (10,000 per call), as above.
        let limited = || Activation {
            per_call_limit: PER_CALL_LIMIT / 100,
            budget: RUNTIME_BUDGET / 100,
            ..Default::default()
        };
        let items: Vec<u32> = (0..200).collect();
        let m: serde_json::Map<String, Value> =
            (0..200).map(|i| (i.to_string(), json!(i))).collect();
        let object = json!({"spec": {"items": items, "s": "x".repeat(50_000), "m": m}});
        let run = |source: &str| {
            let mut a = limited();
            a.set("object", from_json(&object));
            a.eval(&compile(source).unwrap())
        };
        // 200 iterations, each scanning the 200 items: 40,000 > 10,000, stopped.
        for quadratic in [
            "object.spec.items.all(x, object.spec.items.indexOf(x) >= 0)",
            "object.spec.items.all(x, x in object.spec.items)",
            "object.spec.items.all(x, object.spec.items == object.spec.items)",
            "object.spec.items.all(x, object.spec.m != {})",
            "object.spec.items.all(x, object.spec.items.sum() > 0)",
            "[object.spec.items].all(l, object.spec.items.all(y, l.indexOf(y) >= 0))",
            // 200² for one distinct(), charged before it runs.
            "object.spec.items.distinct().size() == 200",
            "sets.intersects(object.spec.items, object.spec.items)",
            // Every pattern new, so every call compiles one: 10,000 each.
            "object.spec.items.all(x, !'a'.matches('^cost-test-' + string(x) + '$'))",
            // 50,000 bytes / 10 per call, 200 calls.
            "object.spec.items.all(x, object.spec.s.contains('y') == false)",
        ] {
            let e = run(quadratic).unwrap_err();
            assert!(e.ends_with(CALL_LIMIT_EXCEEDED), "{quadratic}: {e}");
        }
        // Indexing, size() and small operands stay cheap; one pass over the list is fine;
        // namespaced functions and custom types pass through the charge untouched.
        for cheap in [
            "object.spec.items.all(x, object.spec.items[x] == x && size(object.spec.items) == 200)",
            "object.spec.items.all(x, x in [x, 1, 2])",
            // A map lookup is constant, however large the map.
            "object.spec.items.all(x, string(x) in object.spec.m)",
            "object.spec.items.indexOf(199) == 199 && object.spec.items.sum() == 19900",
            "object.spec.s.contains('y') == false && math.greatest(1, 5) == 5",
            "quantity('1') == quantity('1000m') && quantity('1').add(1) != quantity('1')",
        ] {
            assert_eq!(run(cheap), Ok(cel::Value::Bool(true)), "{cheap}");
        }
    }

    #[test]
    fn arithmetic_and_string_faults_are_errors_not_panics() {
        for e in [
            "1 / 0 == 1",
            "1 % 0 == 1",
            "9223372036854775807 + 1 > 0",
            "-9223372036854775808 - 1 < 0",
            "9223372036854775807 * 2 > 0",
            "-9223372036854775808 / -1 < 0",
            "int(1e300) > 0",
            "'abc'.substring(5) == ''",
            "'abc'.charAt(10) == ''",
            "[1][5] == 1",
            "'x'.matches('(') ",
            "object.spec.n.size() == 1",
        ] {
            let r = compile(e).and_then(|c| {
                let mut a = Activation::default();
                a.set("object", from_json(&json!({"spec": {"n": 1}})));
                a.eval_bool(&c)
            });
            assert!(r.is_err(), "{e}: {r:?}");
        }
        // Rust's regex is linear: a pattern that backtracks exponentially elsewhere is quick.
        assert!(!truth(
            "object.s.matches('^(a+)+$')",
            json!({"s": format!("{}b", "a".repeat(5000))})
        ));
    }

    #[test]
    fn runtime_errors_read_as_cel_go_writes_them() {
        // Go: the text after "resulted in error: " for each (cel-go v0.26, Kubernetes 1.35).
        for (source, go) in [
            ("1 / 0 == 1", "division by zero"),
            ("1 % 0 == 1", "modulus by zero"),
            ("9223372036854775807 + 1 > 0", "integer overflow"),
            ("[1][5] == 1", "index out of bounds: 5"),
            ("{'a': 1}['b'] == 1", "no such key: b"),
            ("[].min() == 1", "min called on empty list"),
            (
                "quantity('1m').asInteger() == 1",
                "cannot convert value to integer",
            ),
        ] {
            let err = eval(source, json!({})).unwrap_err();
            assert_eq!(
                err,
                format!("expression '{source}' resulted in error: {go}")
            );
        }
    }

    #[test]
    fn match_conditions_false_wins_over_failures_which_are_joined() {
        let mut a = Activation::default();
        a.set("object", from_json(&json!({"spec": {"n": 1}})));
        assert_eq!(a.match_conditions(["object.spec.n == 1", "true"]), Ok(true));
        assert_eq!(a.match_conditions(["object.nope == 1", "false"]), Ok(false));
        let one = a.match_conditions(["object.nope == 1"]).unwrap_err();
        assert!(
            one.starts_with("expression 'object.nope == 1' resulted in error: "),
            "{one}"
        );
        let two = a
            .match_conditions(["object.nope == 1", "object.("])
            .unwrap_err();
        assert!(
            two.starts_with("[expression 'object.nope == 1'")
                && two.contains(", compilation error: "),
            "{two}"
        );
    }
}
