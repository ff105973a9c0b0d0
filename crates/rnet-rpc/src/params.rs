//! Method parameters: positional arrays and named objects, normalised to positions.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::RpcError;

/// The parameters of one call, as handed to a method handler.
///
/// Requests may pass parameters positionally (`"params": [1, "x"]`) or by name
/// (`"params": {"height": 1}`); named parameters are turned into positions with the method's
/// declared parameter names exactly as Bitcoin Core's `transformNamedArguments` does (holes
/// between given names become `null`, trailing ones are dropped, an `"args"` array supplies
/// leading positional values). Handlers then read them by index or by name:
///
/// * [`Params::required`] — absent: Core's `RPC_MISC_ERROR` (-1) carrying the method's help
///   text (what Core answers for too few arguments); wrong JSON type: `RPC_TYPE_ERROR` (-3).
/// * [`Params::optional`] — absent or `null`: `None`; wrong type: -3.
#[derive(Debug, Clone)]
pub struct Params {
    method: Arc<str>,
    names: Arc<[String]>,
    help: Arc<str>,
    values: Vec<Value>,
    wallet: Option<String>,
    user: Option<String>,
}

/// Something that names one parameter: its position (`usize`) or its declared name (`&str`).
pub trait ParamKey {
    /// The position this key refers to, given the method's declared names.
    fn position(&self, names: &[String]) -> Option<usize>;
    /// A short description for error messages.
    fn describe(&self, names: &[String]) -> String;
}

impl ParamKey for usize {
    fn position(&self, _names: &[String]) -> Option<usize> {
        Some(*self)
    }

    fn describe(&self, names: &[String]) -> String {
        match names.get(*self) {
            Some(name) => format!("{name} (position {})", self + 1),
            None => format!("position {}", self + 1),
        }
    }
}

impl ParamKey for &str {
    fn position(&self, names: &[String]) -> Option<usize> {
        names.iter().position(|n| n == self)
    }

    fn describe(&self, names: &[String]) -> String {
        match self.position(names) {
            Some(i) => format!("{self} (position {})", i + 1),
            None => (*self).to_owned(),
        }
    }
}

/// The JSON type name Core uses in its type errors.
pub(crate) fn json_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

impl Params {
    /// Parameters for a direct call (tests, in-process use): `values` positional, no wallet.
    pub fn new(method: &str, names: &[&str], values: Vec<Value>) -> Self {
        Self {
            method: Arc::from(method),
            names: names.iter().map(|s| (*s).to_owned()).collect(),
            help: Arc::from(""),
            values,
            wallet: None,
            user: None,
        }
    }

    pub(crate) fn from_parts(
        method: Arc<str>,
        names: Arc<[String]>,
        help: Arc<str>,
        values: Vec<Value>,
        wallet: Option<String>,
        user: Option<String>,
    ) -> Self {
        Self { method, names, help, values, wallet, user }
    }

    /// The method being called.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The wallet named by the request path `/wallet/<name>` (URL-decoded), if any.
    /// `/wallet/` gives `Some("")`, Core's default wallet.
    pub fn wallet(&self) -> Option<&str> {
        self.wallet.as_deref()
    }

    /// The authenticated user name (`__cookie__` for cookie auth), if the call came over HTTP.
    pub fn auth_user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The number of positional values (after named-to-positional conversion).
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether no parameter was given.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The positional values (`null` where a named call left a hole).
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// The raw value at `key`, or `None` when it is absent or `null`.
    pub fn get(&self, key: impl ParamKey) -> Option<&Value> {
        let i = key.position(&self.names)?;
        self.values.get(i).filter(|v| !v.is_null())
    }

    /// Core's answer to a call with the wrong number of arguments: `RPC_MISC_ERROR` (-1) whose
    /// message is the method's help text.
    pub fn help_error(&self) -> RpcError {
        if self.help.is_empty() {
            RpcError::misc(format!("{}: wrong number of parameters", self.method))
        } else {
            RpcError::misc(self.help.to_string())
        }
    }

    /// A required parameter: -1 (help text) when absent, -3 when of the wrong JSON type.
    pub fn required<T: DeserializeOwned>(&self, key: impl ParamKey) -> Result<T, RpcError> {
        let Some(i) = key.position(&self.names) else {
            return Err(RpcError::internal(format!(
                "method {} has no parameter {}",
                self.method,
                key.describe(&self.names)
            )));
        };
        match self.values.get(i) {
            None => Err(self.help_error()),
            Some(v) => convert(v, &key.describe(&self.names)),
        }
    }

    /// An optional parameter: `None` when absent or `null`, -3 when of the wrong JSON type.
    pub fn optional<T: DeserializeOwned>(&self, key: impl ParamKey) -> Result<Option<T>, RpcError> {
        let Some(i) = key.position(&self.names) else {
            return Err(RpcError::internal(format!(
                "method {} has no parameter {}",
                self.method,
                key.describe(&self.names)
            )));
        };
        match self.values.get(i) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => convert(v, &key.describe(&self.names)).map(Some),
        }
    }

    /// An optional parameter with a default.
    pub fn optional_or<T: DeserializeOwned>(
        &self,
        key: impl ParamKey,
        default: T,
    ) -> Result<T, RpcError> {
        Ok(self.optional(key)?.unwrap_or(default))
    }
}

fn convert<T: DeserializeOwned>(v: &Value, what: &str) -> Result<T, RpcError> {
    T::deserialize(v).map_err(|e| {
        RpcError::type_error(format!(
            "JSON value of type {} for parameter {what} is not of expected type: {e}",
            json_type_name(v)
        ))
    })
}

/// Turn request parameters (array or object) into positions, as Core's
/// `transformNamedArguments`. `names` are the method's declared parameter names.
pub(crate) fn normalize(params: Value, names: &[String]) -> Result<Vec<Value>, RpcError> {
    match params {
        Value::Null => Ok(Vec::new()),
        Value::Array(a) => Ok(a),
        Value::Object(map) => named_to_positional(map, names),
        _ => Err(RpcError::invalid_request("Params must be an array or object")),
    }
}

fn named_to_positional(
    mut map: Map<String, Value>,
    names: &[String],
) -> Result<Vec<Value>, RpcError> {
    let mut out: Vec<Value> = Vec::new();
    let mut hole = 0usize;
    let mut initial_hole = 0usize;
    let mut initial_param: Option<&str> = None;
    for name in names {
        match map.remove(name) {
            Some(v) => {
                out.extend(std::iter::repeat_n(Value::Null, hole));
                hole = 0;
                initial_param.get_or_insert(name);
                out.push(v);
            }
            None => {
                hole += 1;
                if out.is_empty() {
                    initial_hole = hole;
                }
            }
        }
    }
    // A leftover "args" array supplies leading positional arguments (Core >= 26).
    if !names.iter().any(|n| n == "args") {
        if let Some(Value::Array(positional)) = map.get("args") {
            if let Some(first) = initial_param {
                if initial_hole < positional.len() {
                    return Err(RpcError::invalid_parameter(format!(
                        "Parameter {first} specified twice both as positional and named argument"
                    )));
                }
            }
            let Some(Value::Array(positional)) = map.remove("args") else {
                return Err(RpcError::internal("args vanished"));
            };
            let named = std::mem::replace(&mut out, positional);
            let skip = out.len();
            out.extend(named.into_iter().skip(skip));
        }
    }
    if let Some(unknown) = map.keys().next() {
        return Err(RpcError::invalid_parameter(format!("Unknown named parameter {unknown}")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::codes::*;
    use serde_json::json;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn named_fill_holes_and_drop_trailing() {
        let n = names(&["a", "b", "c", "d"]);
        let v = normalize(json!({"c": 3, "a": 1}), &n).unwrap();
        assert_eq!(v, vec![json!(1), Value::Null, json!(3)]);
        assert_eq!(normalize(json!({}), &n).unwrap(), Vec::<Value>::new());
    }

    #[test]
    fn unknown_named_is_minus_8() {
        let e = normalize(json!({"zz": 1}), &names(&["a"])).unwrap_err();
        assert_eq!(e.code, RPC_INVALID_PARAMETER);
        assert_eq!(e.message, "Unknown named parameter zz");
    }

    #[test]
    fn args_key_gives_positional() {
        let n = names(&["a", "b", "c"]);
        assert_eq!(
            normalize(json!({"args": [1, 2], "c": 3}), &n).unwrap(),
            vec![json!(1), json!(2), json!(3)]
        );
        let e = normalize(json!({"args": [1, 2], "b": 3}), &n).unwrap_err();
        assert_eq!(e.code, RPC_INVALID_PARAMETER);
        assert!(e.message.contains("specified twice"), "{}", e.message);
    }

    #[test]
    fn scalar_params_are_invalid_request() {
        assert_eq!(normalize(json!(5), &[]).unwrap_err().code, RPC_INVALID_REQUEST);
        assert_eq!(normalize(Value::Null, &[]).unwrap(), Vec::<Value>::new());
    }

    #[test]
    fn required_optional_and_types() {
        let p = Params::new("m", &["h", "v"], vec![json!(5), Value::Null]);
        assert_eq!(p.required::<u64>(0).unwrap(), 5);
        assert_eq!(p.required::<u64>("h").unwrap(), 5);
        assert_eq!(p.optional::<u64>("v").unwrap(), None);
        assert_eq!(p.optional_or::<u64>(1, 7).unwrap(), 7);
        assert_eq!(p.required::<String>(0).unwrap_err().code, RPC_TYPE_ERROR);
        // Explicit null for a required parameter is a type error; absence is Core's help error.
        assert_eq!(p.required::<u64>(1).unwrap_err().code, RPC_TYPE_ERROR);
        let p = Params::new("m", &["h"], vec![]);
        assert_eq!(p.required::<u64>(0).unwrap_err().code, RPC_MISC_ERROR);
        // A name the method does not declare is a programming error, not a panic.
        assert_eq!(p.required::<u64>("nope").unwrap_err().code, RPC_INTERNAL_ERROR);
        assert_eq!(p.get(0), None);
    }
}
