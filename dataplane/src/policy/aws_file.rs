//! AWS-shaped policy files: a firewall policy and its rule groups as JSON or YAML, in one of
//! two layouts, read into an [`AwsDocument`] (the resources, as JSON values in the API's
//! shapes) and compiled through [`super::aws`].
//!
//! * **CloudFormation template** (`Resources:` with `AWS::NetworkFirewall::RuleGroup` and
//!   exactly one `AWS::NetworkFirewall::FirewallPolicy`), YAML or JSON. Intrinsics between
//!   the template's own resources resolve: `Ref` / `!Ref` of a rule group or policy gives its
//!   ARN, `Fn::GetAtt` / `!GetAtt X.RuleGroupArn` (`…FirewallPolicyArn`, `…RuleGroupId`) too,
//!   `Fn::Sub` / `!Sub` substitutes `${X}`, `${X.Attr}`, `${AWS::Region}`,
//!   `${AWS::AccountId}`, `${AWS::StackName}`, `${AWS::Partition}`, and `Parameters`
//!   defaults; `Fn::Join` joins. Other resources (VPCs, the firewall, log groups) are
//!   ignored; an intrinsic inside the policy or a rule group that cannot resolve is an error.
//! * **API shapes** (JSON or YAML): `{"FirewallPolicyName": …, "FirewallPolicy": {…},
//!   "RuleGroups": [{"RuleGroupName": …, "Type": …, "Capacity": …, "RuleGroup": {…}}]}` —
//!   the members of CreateFirewallPolicy / CreateRuleGroup requests (a DescribeRuleGroup
//!   response's `RuleGroupResponse` + `RuleGroup` also works).
//!
//! ARNs are made as `arn:aws:network-firewall:<region>:<account>:<type>/<name>` with the
//! template's pseudo parameters (`us-east-1`, `000000000000` unless given as `Parameters`).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value};

use super::aws::{self, FirewallPolicyShape, GroupType, NamedGroup, RuleGroupShape};
use super::error::{PolicyError, PolicyErrorKind};
use super::model::Policy;

/// One rule group of a document, in the API's shapes.
#[derive(Clone, Debug, PartialEq)]
pub struct DocRuleGroup {
    pub name: String,
    pub kind: GroupType,
    pub capacity: Option<u64>,
    pub description: Option<String>,
    pub tags: Vec<(String, String)>,
    /// The `RuleGroup` member.
    pub body: Value,
}

/// The firewall policy of a document, in the API's shapes.
#[derive(Clone, Debug, PartialEq)]
pub struct DocPolicy {
    pub name: String,
    pub description: Option<String>,
    pub tags: Vec<(String, String)>,
    /// The `FirewallPolicy` member, references as ARNs.
    pub body: Value,
}

/// A policy file's resources.
#[derive(Clone, Debug, PartialEq)]
pub struct AwsDocument {
    pub policy: DocPolicy,
    pub rule_groups: Vec<DocRuleGroup>,
    /// The ARN prefix (`arn:aws:network-firewall:<region>:<account>:`) references were made with.
    pub arn_prefix: String,
    /// What reading the file inferred that it does not say (see [`infer_strict_order`]), for
    /// the operator's log.
    pub inferred: Option<String>,
}

/// Whether `path` names an AWS-shaped file (by extension: `.json`, `.yaml`, `.yml`).
pub fn is_aws_file(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("json" | "yaml" | "yml")
    )
}

fn err(file: &Path, what: impl Into<String>) -> PolicyError {
    PolicyError::new(file, None, None, PolicyErrorKind::Aws(what.into()))
}

/// Reads a document from JSON or YAML text (YAML is a superset; JSON files are parsed as
/// JSON for exact error positions).
pub fn read_document(text: &str, file: &Path) -> Result<AwsDocument, PolicyError> {
    let value = if file.extension().and_then(|e| e.to_str()) == Some("json") {
        serde_json::from_str::<Value>(text).map_err(|e| {
            PolicyError::new(
                file,
                u32::try_from(e.line()).ok(),
                None,
                PolicyErrorKind::Aws(format!("JSON: {e}")),
            )
        })?
    } else {
        let y: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| {
            PolicyError::new(
                file,
                e.location().and_then(|l| u32::try_from(l.line()).ok()),
                None,
                PolicyErrorKind::Aws(format!("YAML: {e}")),
            )
        })?;
        yaml_to_json(y).map_err(|e| err(file, e))?
    };
    document_from_value(value, file)
}

/// YAML → JSON, turning CloudFormation short-form tags into their long forms
/// (`!Ref X` → `{"Ref": "X"}`, `!GetAtt X.Y` → `{"Fn::GetAtt": ["X", "Y"]}`).
fn yaml_to_json(y: serde_yaml::Value) -> Result<Value, String> {
    use serde_yaml::Value as Y;
    Ok(match y {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                serde_json::Number::from_f64(n.as_f64().unwrap_or(0.0))
                    .map_or(Value::Null, Value::Number)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(s) => Value::Array(s.into_iter().map(yaml_to_json).collect::<Result<_, _>>()?),
        Y::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let key = match k {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    other => return Err(format!("unsupported mapping key {other:?}")),
                };
                out.insert(key, yaml_to_json(v)?);
            }
            Value::Object(out)
        }
        Y::Tagged(t) => {
            let tag = t.tag.to_string();
            let tag = tag.trim_start_matches('!');
            let inner = yaml_to_json(t.value)?;
            let (name, arg) = match tag {
                "Ref" => ("Ref", inner),
                "GetAtt" => match inner {
                    Value::String(s) => {
                        let (res, attr) = s
                            .split_once('.')
                            .ok_or_else(|| format!("!GetAtt '{s}' needs Resource.Attribute"))?;
                        ("Fn::GetAtt", Value::from(vec![res, attr]))
                    }
                    other => ("Fn::GetAtt", other),
                },
                "Sub" | "Join" | "Select" | "Split" | "If" | "Equals" | "Not" | "And" | "Or"
                | "FindInMap" | "Base64" | "Cidr" | "GetAZs" | "ImportValue" => {
                    return Ok(Value::Object(
                        [(format!("Fn::{tag}"), inner)].into_iter().collect(),
                    ))
                }
                other => return Err(format!("unsupported YAML tag '!{other}'")),
            };
            Value::Object([(name.to_string(), arg)].into_iter().collect())
        }
    })
}

/// What intrinsics resolve against: the template's resources and parameters.
struct Template {
    prefix: String,
    /// Logical id → (type, physical name).
    resources: BTreeMap<String, (String, String)>,
    parameters: BTreeMap<String, Value>,
    stack_name: String,
    region: String,
    account: String,
}

impl Template {
    fn arn_of(&self, logical: &str) -> Option<String> {
        let (ty, name) = self.resources.get(logical)?;
        Some(format!("{}{}", self.prefix, resource_path(ty, name)?))
    }

    fn reference(&self, name: &str) -> Result<Value, String> {
        match name {
            "AWS::Region" => return Ok(Value::from(self.region.clone())),
            "AWS::AccountId" => return Ok(Value::from(self.account.clone())),
            "AWS::StackName" => return Ok(Value::from(self.stack_name.clone())),
            "AWS::Partition" => return Ok(Value::from("aws")),
            "AWS::URLSuffix" => return Ok(Value::from("amazonaws.com")),
            _ => {}
        }
        if let Some(v) = self.parameters.get(name) {
            return Ok(v.clone());
        }
        self.arn_of(name).map(Value::from).ok_or_else(|| {
            format!("Ref '{name}': not a rule group, firewall policy or parameter of this template")
        })
    }

    fn get_att(&self, logical: &str, attr: &str) -> Result<Value, String> {
        let arn = self
            .arn_of(logical)
            .ok_or_else(|| format!("Fn::GetAtt '{logical}.{attr}': not a rule group or firewall policy of this template"))?;
        match attr {
            "RuleGroupArn" | "FirewallPolicyArn" | "Arn" => Ok(Value::from(arn)),
            other => Err(format!(
                "Fn::GetAtt '{logical}.{other}': attribute not available"
            )),
        }
    }

    /// Resolves every intrinsic inside `v`.
    fn resolve(&self, v: Value) -> Result<Value, String> {
        match v {
            Value::Array(a) => Ok(Value::Array(
                a.into_iter()
                    .map(|x| self.resolve(x))
                    .collect::<Result<_, _>>()?,
            )),
            Value::Object(m) if m.len() == 1 => {
                let (k, arg) = m.into_iter().next().unwrap_or_default();
                match k.as_str() {
                    "Ref" => match arg {
                        Value::String(s) => self.reference(&s),
                        other => Err(format!("Ref needs a name, got {other}")),
                    },
                    "Fn::GetAtt" => match arg {
                        Value::Array(a) => match a.as_slice() {
                            [Value::String(r), Value::String(attr)] => self.get_att(r, attr),
                            _ => Err("Fn::GetAtt needs [Resource, Attribute]".into()),
                        },
                        Value::String(s) => {
                            let (r, attr) = s.split_once('.').ok_or_else(|| {
                                format!("Fn::GetAtt '{s}' needs Resource.Attribute")
                            })?;
                            self.get_att(r, attr)
                        }
                        other => Err(format!(
                            "Fn::GetAtt needs [Resource, Attribute], got {other}"
                        )),
                    },
                    "Fn::Sub" => {
                        let (text, vars) = match arg {
                            Value::String(s) => (s, Map::new()),
                            Value::Array(a) => match <[Value; 2]>::try_from(a) {
                                Ok([Value::String(s), Value::Object(vars)]) => (s, vars),
                                _ => {
                                    return Err("Fn::Sub needs a string or [string, {vars}]".into())
                                }
                            },
                            other => return Err(format!("Fn::Sub needs a string, got {other}")),
                        };
                        self.sub(&text, &vars).map(Value::from)
                    }
                    "Fn::Join" => {
                        let resolved = self.resolve(arg)?;
                        match resolved.as_array().map(Vec::as_slice) {
                            Some([Value::String(sep), Value::Array(items)]) => {
                                let parts = items
                                    .iter()
                                    .map(|i| {
                                        scalar(i)
                                            .ok_or_else(|| format!("Fn::Join: {i} is not a string"))
                                    })
                                    .collect::<Result<Vec<_>, _>>()?;
                                Ok(Value::from(parts.join(sep)))
                            }
                            _ => Err("Fn::Join needs [separator, [values]]".into()),
                        }
                    }
                    k if k.starts_with("Fn::") => Err(format!("intrinsic '{k}' is not supported")),
                    _ => Ok(Value::Object(
                        [(k, self.resolve(arg)?)].into_iter().collect(),
                    )),
                }
            }
            Value::Object(m) => Ok(Value::Object(
                m.into_iter()
                    .map(|(k, v)| Ok((k, self.resolve(v)?)))
                    .collect::<Result<_, String>>()?,
            )),
            other => Ok(other),
        }
    }

    fn sub(&self, text: &str, vars: &Map<String, Value>) -> Result<String, String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            if let Some(lit) = after.strip_prefix('!') {
                out.push_str("${");
                rest = lit;
                continue;
            }
            let end = after
                .find('}')
                .ok_or_else(|| format!("Fn::Sub '{text}': unclosed '${{'"))?;
            let name = &after[..end];
            let value = match vars.get(name) {
                Some(v) => self.resolve(v.clone())?,
                None => match name.split_once('.') {
                    Some((r, attr)) if !name.starts_with("AWS::") => self.get_att(r, attr)?,
                    _ => self.reference(name)?,
                },
            };
            out.push_str(
                &scalar(&value).ok_or_else(|| format!("Fn::Sub '${{{name}}}' is not a string"))?,
            );
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `<type>/<name>` of a Network Firewall resource's ARN.
fn resource_path(ty: &str, name: &str) -> Option<String> {
    match ty {
        "AWS::NetworkFirewall::FirewallPolicy" => Some(format!("firewall-policy/{name}")),
        "STATEFUL" => Some(format!("stateful-rulegroup/{name}")),
        "STATELESS" => Some(format!("stateless-rulegroup/{name}")),
        _ => None,
    }
}

fn tags(v: Option<&Value>, file: &Path, owner: &str) -> Result<Vec<(String, String)>, PolicyError> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let list = v.as_array().ok_or_else(|| {
        err(
            file,
            format!("{owner}.Tags: expected a list of {{Key, Value}}"),
        )
    })?;
    list.iter()
        .map(|t| {
            let k = t.get("Key").and_then(scalar);
            let val = t.get("Value").and_then(scalar);
            match (k, val) {
                (Some(k), Some(v)) => Ok((k, v)),
                _ => Err(err(
                    file,
                    format!("{owner}.Tags: each tag needs Key and Value"),
                )),
            }
        })
        .collect()
}

fn str_member(
    m: &Map<String, Value>,
    member: &str,
    file: &Path,
    owner: &str,
) -> Result<String, PolicyError> {
    m.get(member)
        .and_then(scalar)
        .ok_or_else(|| err(file, format!("{owner}.{member}: missing required member")))
}

fn group_of(m: &Map<String, Value>, file: &Path, owner: &str) -> Result<DocRuleGroup, PolicyError> {
    let name = str_member(m, "RuleGroupName", file, owner)?;
    let kind = match str_member(m, "Type", file, owner)?.as_str() {
        "STATEFUL" => GroupType::Stateful,
        "STATELESS" => GroupType::Stateless,
        other => {
            return Err(err(
                file,
                format!("{owner}.Type: '{other}' is not supported (STATEFUL or STATELESS)"),
            ))
        }
    };
    let capacity = match m.get("Capacity") {
        None => None,
        Some(c) => Some(
            c.as_u64()
                .or_else(|| c.as_str().and_then(|s| s.parse().ok()))
                .ok_or_else(|| err(file, format!("{owner}.Capacity: expected an integer")))?,
        ),
    };
    let body = m
        .get("RuleGroup")
        .cloned()
        .ok_or_else(|| err(file, format!("{owner}.RuleGroup: missing required member")))?;
    Ok(DocRuleGroup {
        name,
        kind,
        capacity,
        description: m.get("Description").and_then(scalar),
        tags: tags(m.get("Tags"), file, owner)?,
        body,
    })
}

fn policy_of(m: &Map<String, Value>, file: &Path, owner: &str) -> Result<DocPolicy, PolicyError> {
    Ok(DocPolicy {
        name: str_member(m, "FirewallPolicyName", file, owner)?,
        description: m.get("Description").and_then(scalar),
        tags: tags(m.get("Tags"), file, owner)?,
        body: m.get("FirewallPolicy").cloned().ok_or_else(|| {
            err(
                file,
                format!("{owner}.FirewallPolicy: missing required member"),
            )
        })?,
    })
}

/// The document in `value` (a template or the API-shape layout).
pub fn document_from_value(value: Value, file: &Path) -> Result<AwsDocument, PolicyError> {
    let top = value
        .as_object()
        .ok_or_else(|| err(file, "expected a mapping at the top"))?;
    if let Some(resources) = top.get("Resources") {
        return template_document(top, resources, file);
    }
    let prefix = "arn:aws:network-firewall:us-east-1:000000000000:".to_string();
    let policy = policy_of(top, file, "")?;
    let groups = match top.get("RuleGroups") {
        None => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let owner = format!("RuleGroups[{i}]");
                let m = g
                    .as_object()
                    .ok_or_else(|| err(file, format!("{owner}: expected a mapping")))?;
                // A DescribeRuleGroup response: metadata under RuleGroupResponse.
                match m.get("RuleGroupResponse").and_then(Value::as_object) {
                    Some(meta) => {
                        let mut merged = meta.clone();
                        if let Some(b) = m.get("RuleGroup") {
                            merged.insert("RuleGroup".into(), b.clone());
                        }
                        group_of(&merged, file, &owner)
                    }
                    None => group_of(m, file, &owner),
                }
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(err(file, "RuleGroups: expected a list")),
    };
    Ok(infer_strict_order(AwsDocument {
        policy,
        rule_groups: groups,
        arn_prefix: prefix,
        inferred: None,
    }))
}

fn template_document(
    top: &Map<String, Value>,
    resources: &Value,
    file: &Path,
) -> Result<AwsDocument, PolicyError> {
    let resources = resources
        .as_object()
        .ok_or_else(|| err(file, "Resources: expected a mapping"))?;
    let mut parameters = BTreeMap::new();
    if let Some(Value::Object(ps)) = top.get("Parameters") {
        for (k, p) in ps {
            if let Some(d) = p.get("Default") {
                parameters.insert(k.clone(), d.clone());
            }
        }
    }
    let param = |k: &str, default: &str| {
        parameters
            .get(k)
            .and_then(scalar)
            .unwrap_or_else(|| default.to_string())
    };
    let region = param("AWS::Region", "us-east-1");
    let account = param("AWS::AccountId", "000000000000");
    let stack_name = param("AWS::StackName", "flowgate");
    let mut t = Template {
        prefix: format!("arn:aws:network-firewall:{region}:{account}:"),
        resources: BTreeMap::new(),
        parameters: parameters.clone(),
        stack_name,
        region,
        account,
    };
    // Physical names first (they may themselves use !Sub with parameters).
    let mut nfw = Vec::new();
    for (logical, r) in resources {
        let ty = r.get("Type").and_then(Value::as_str).unwrap_or_default();
        if !matches!(
            ty,
            "AWS::NetworkFirewall::RuleGroup" | "AWS::NetworkFirewall::FirewallPolicy"
        ) {
            continue;
        }
        let props = r
            .get("Properties")
            .and_then(Value::as_object)
            .ok_or_else(|| err(file, format!("Resources.{logical}.Properties: missing")))?;
        let (name_member, key) = if ty == "AWS::NetworkFirewall::RuleGroup" {
            let kind = props
                .get("Type")
                .and_then(Value::as_str)
                .unwrap_or_default();
            ("RuleGroupName", kind.to_string())
        } else {
            ("FirewallPolicyName", ty.to_string())
        };
        let raw_name = props.get(name_member).cloned().ok_or_else(|| {
            err(
                file,
                format!("Resources.{logical}.Properties.{name_member}: missing"),
            )
        })?;
        let name = t
            .resolve(raw_name)
            .ok()
            .and_then(|v| scalar(&v))
            .ok_or_else(|| {
                err(
                    file,
                    format!("Resources.{logical}.Properties.{name_member}: not a string"),
                )
            })?;
        t.resources.insert(logical.clone(), (key, name));
        nfw.push((logical.clone(), ty, props));
    }
    let mut policies = Vec::new();
    let mut groups = Vec::new();
    for (logical, ty, props) in nfw {
        let owner = format!("Resources.{logical}.Properties");
        let resolved = t
            .resolve(Value::Object(props.clone()))
            .map_err(|e| err(file, format!("{owner}: {e}")))?;
        let m = resolved
            .as_object()
            .ok_or_else(|| err(file, format!("{owner}: expected a mapping")))?;
        if ty == "AWS::NetworkFirewall::RuleGroup" {
            groups.push(group_of(m, file, &owner)?);
        } else {
            policies.push(policy_of(m, file, &owner)?);
        }
    }
    if policies.len() != 1 {
        return Err(err(
            file,
            format!(
                "the template defines {} AWS::NetworkFirewall::FirewallPolicy resources; exactly one is needed",
                policies.len()
            ),
        ));
    }
    let policy = policies.remove(0);
    Ok(infer_strict_order(AwsDocument {
        policy,
        rule_groups: groups,
        arn_prefix: t.prefix,
        inferred: None,
    }))
}

/// A file that gives `StatefulDefaultActions` but no rule order is read in strict order.
///
/// Default actions exist only in strict order, and the service's own published template
/// (AWS Well-Architected SEC05-BP02, Example 2) pairs `aws:drop_strict` with no
/// `StatefulEngineOptions` at all: its author evidently meant strict order, and a file is
/// loaded as written. So the policy, and each stateful rule group it references that names no
/// order of its own, get `STRICT_ORDER`, and the document says so in `inferred`. An order
/// the file does state is never changed (a group that says `DEFAULT_ACTION_ORDER` under the
/// inferred strict policy is refused, as the service refuses mixed orders). The API does not
/// infer: CreateFirewallPolicy / UpdateFirewallPolicy refuse the combination as the service
/// does.
fn infer_strict_order(mut doc: AwsDocument) -> AwsDocument {
    let Some(policy) = doc.policy.body.as_object_mut() else {
        return doc;
    };
    let has_defaults = policy
        .get("StatefulDefaultActions")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    let order_given = policy
        .get("StatefulEngineOptions")
        .and_then(|o| o.get("RuleOrder"))
        .is_some();
    if !has_defaults || order_given {
        return doc;
    }
    let options = policy
        .entry("StatefulEngineOptions")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(options) = options.as_object_mut() else {
        return doc; // not a mapping: the shape check reports it
    };
    options.insert("RuleOrder".into(), Value::from("STRICT_ORDER"));
    let referenced: Vec<String> = policy
        .get("StatefulRuleGroupReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("ResourceArn").and_then(Value::as_str))
        .map(str::to_string)
        .collect();
    let mut groups = Vec::new();
    for i in 0..doc.rule_groups.len() {
        let arn = doc.group_arn(&doc.rule_groups[i]);
        let g = &mut doc.rule_groups[i];
        if g.kind != GroupType::Stateful || !referenced.contains(&arn) {
            continue;
        }
        let Some(body) = g.body.as_object_mut() else {
            continue;
        };
        let options = body
            .entry("StatefulRuleOptions")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(options) = options.as_object_mut() {
            if !options.contains_key("RuleOrder") {
                options.insert("RuleOrder".into(), Value::from("STRICT_ORDER"));
                groups.push(format!("'{}'", g.name));
            }
        }
    }
    let mut note = format!(
        "policy '{}' gives StatefulDefaultActions without StatefulEngineOptions.RuleOrder: read in STRICT_ORDER (default actions exist only in strict order)",
        doc.policy.name
    );
    if !groups.is_empty() {
        note += &format!(", as are its rule groups {}", groups.join(", "));
    }
    doc.inferred = Some(note);
    doc
}

impl AwsDocument {
    /// The ARN of one of the document's rule groups.
    pub fn group_arn(&self, g: &DocRuleGroup) -> String {
        format!("{}{}/{}", self.arn_prefix, g.kind.arn_resource(), g.name)
    }

    /// The rule groups as the policy translator takes them, each validated on its own
    /// (capacity included).
    pub fn named_groups(&self, file: &Path) -> Result<Vec<NamedGroup>, PolicyError> {
        self.rule_groups
            .iter()
            .map(|g| {
                let owner = format!("RuleGroup '{}'", g.name);
                let group: RuleGroupShape = serde_json::from_value(g.body.clone())
                    .map_err(|e| err(file, format!("{owner}: {e}")))?;
                let used = aws::validate_rule_group(&owner, g.kind, &group)?;
                if let Some(cap) = g.capacity {
                    if used > cap {
                        return Err(err(
                            file,
                            format!("{owner}: the rules consume capacity {used}, more than its Capacity {cap}"),
                        ));
                    }
                }
                Ok(NamedGroup {
                    arn: self.group_arn(g),
                    name: g.name.clone(),
                    kind: g.kind,
                    group,
                })
            })
            .collect()
    }

    /// Compiles the document's policy.
    pub fn to_policy(&self, file: &Path) -> Result<Policy, PolicyError> {
        let groups = self.named_groups(file)?;
        let shape: FirewallPolicyShape = serde_json::from_value(self.policy.body.clone())
            .map_err(|e| err(file, format!("FirewallPolicy: {e}")))?;
        aws::policy_from_aws(&shape, &groups)
    }
}

/// Reads and compiles an AWS-shaped policy file's text.
pub fn policy_from_aws_text(text: &str, file: &Path) -> Result<Policy, PolicyError> {
    read_document(text, file)?.to_policy(file)
}
