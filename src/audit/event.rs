//! The `audit.k8s.io/v1` Event and EventList as kube-apiserver writes them: the same field names,
//! field order (Go's struct order), omitted-when-empty fields and microsecond timestamps, so tools
//! that read kube-apiserver's audit log read wardle's. Also Go's one-line `legacy` format.

use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::SystemTime;

use super::policy::{Level, Stage};

/// `authentication/v1 UserInfo`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UserInfo {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

/// `audit/v1 ObjectReference`.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_group: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subresource: String,
}

/// The bounded copy of the response's `metav1.Status` Go keeps (`LogResponseObject`): a success
/// has only `metadata` and `code`; an error also status, message, reason and details.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ResponseStatus {
    pub metadata: serde_json::Map<String, Value>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub status: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    #[serde(skip_serializing_if = "is_zero")]
    pub code: u16,
}

fn is_zero(c: &u16) -> bool {
    *c == 0
}

impl ResponseStatus {
    /// From a Status object (an error response's body).
    pub fn from_status(s: &Value, code: u16) -> ResponseStatus {
        let text = |k: &str| s.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        ResponseStatus {
            metadata: Default::default(),
            status: text("status"),
            message: text("message"),
            reason: text("reason"),
            details: s.get("details").cloned(),
            code,
        }
    }
}

/// `audit/v1 Event`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub kind: &'static str,
    pub api_version: &'static str,
    pub level: &'static str,
    #[serde(rename = "auditID")]
    pub audit_id: String,
    pub stage: &'static str,
    #[serde(rename = "requestURI")]
    pub request_uri: String,
    pub verb: String,
    pub user: UserInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impersonated_user: Option<UserInfo>,
    #[serde(rename = "sourceIPs", skip_serializing_if = "Vec::is_empty")]
    pub source_ips: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub user_agent: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_ref: Option<ObjectReference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_status: Option<ResponseStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_object: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_object: Option<Value>,
    #[serde(serialize_with = "micro_time")]
    pub request_received_timestamp: SystemTime,
    #[serde(serialize_with = "micro_time")]
    pub stage_timestamp: SystemTime,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// `metav1.MicroTime`: RFC 3339 in UTC with exactly six fractional digits.
pub fn format_micro_time(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t);
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    t.format(&fmt).unwrap_or_default()
}

fn micro_time<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_micro_time(*t))
}

impl Event {
    /// A new event of `level` for the request received at `received`.
    pub fn new(level: Level, audit_id: String, received: SystemTime) -> Event {
        Event {
            kind: "Event",
            api_version: "audit.k8s.io/v1",
            level: level.as_str(),
            audit_id,
            stage: Stage::RequestReceived.as_str(),
            request_uri: String::new(),
            verb: String::new(),
            user: UserInfo::default(),
            impersonated_user: None,
            source_ips: Vec::new(),
            user_agent: String::new(),
            object_ref: None,
            response_status: None,
            request_object: None,
            response_object: None,
            request_received_timestamp: received,
            stage_timestamp: received,
            annotations: BTreeMap::new(),
        }
    }

    /// One JSON line (with Go's HTML-safe escaping), as the json log format writes it.
    pub fn to_json_line(&self) -> String {
        let mut s = crate::apimachinery::gofmt::go_json_escape(
            serde_json::to_string(self).unwrap_or_default(),
        );
        s.push('\n');
        s
    }

    /// Go's `EventString`: the `legacy` log format, one line.
    pub fn legacy_line(&self) -> String {
        let q = crate::apimachinery::gofmt::go_quote;
        let list = |v: &[String]| v.iter().map(|s| q(s)).collect::<Vec<_>>().join(",");
        let (user, groups) = if self.user.username.is_empty() {
            ("<none>".to_string(), "<none>".to_string())
        } else if self.user.groups.is_empty() {
            (self.user.username.clone(), "<none>".to_string())
        } else {
            (self.user.username.clone(), list(&self.user.groups))
        };
        let (as_user, as_groups) = match &self.impersonated_user {
            Some(u) => (u.username.clone(), list(&u.groups)),
            None => ("<self>".to_string(), "<lookup>".to_string()),
        };
        let namespace = self
            .object_ref
            .as_ref()
            .map(|o| o.namespace.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "<none>".into());
        let response = self
            .response_status
            .as_ref()
            .map_or_else(|| "<deferred>".to_string(), |s| s.code.to_string());
        let ip = self
            .source_ips
            .first()
            .cloned()
            .unwrap_or_else(|| "<unknown>".into());
        format!(
            "{} AUDIT: id={} stage={} ip={} method={} user={} groups={} as={} asgroups={} user-agent={} namespace={} uri={} response=\"{}\"\n",
            rfc3339_nano(self.request_received_timestamp),
            q(&self.audit_id),
            q(self.stage),
            q(&ip),
            q(&self.verb),
            q(&user),
            q(&groups),
            q(&as_user),
            q(&as_groups),
            q(&self.user_agent),
            q(&namespace),
            q(&self.request_uri),
            response
        )
    }
}

/// Go's `time.RFC3339Nano` in UTC: trailing zeros of the fraction dropped.
fn rfc3339_nano(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t);
    let base = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let mut s = t.format(&base).unwrap_or_default();
    let nanos = t.nanosecond();
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// An `EventList` body for the webhook (Go's webhook POSTs one per batch).
pub fn event_list_json(events: &[Event]) -> Vec<u8> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct EventList<'a> {
        kind: &'static str,
        api_version: &'static str,
        metadata: serde_json::Map<String, Value>,
        items: &'a [Event],
    }
    let list = EventList {
        kind: "EventList",
        api_version: "audit.k8s.io/v1",
        metadata: Default::default(),
        items: events,
    };
    crate::apimachinery::gofmt::go_json_escape(serde_json::to_string(&list).unwrap_or_default())
        .into_bytes()
}

/// Drop `metadata.managedFields` from an object, a list's items or a Table's row objects
/// (Go's `copyWithoutManagedFields`), for policies with `omitManagedFields`.
pub fn strip_managed_fields(v: &mut Value) {
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
    for key in ["items", "rows"] {
        if let Some(items) = v.get_mut(key).and_then(Value::as_array_mut) {
            for item in items {
                let target = if key == "rows" {
                    item.get_mut("object")
                } else {
                    Some(item)
                };
                if let Some(m) = target
                    .and_then(|t| t.get_mut("metadata"))
                    .and_then(Value::as_object_mut)
                {
                    m.remove("managedFields");
                }
            }
        }
    }
}

/// Go's `utilnet.SourceIPs`: the X-Forwarded-For chain, X-Real-Ip unless already in it, then the
/// peer address unless it is the chain's last entry. Unparseable entries are skipped; at most
/// `MAX_SOURCE_IPS` are kept so a hostile header cannot grow every event.
pub fn source_ips(
    forwarded_for: Option<&str>,
    real_ip: Option<&str>,
    peer: Option<std::net::IpAddr>,
) -> Vec<String> {
    const MAX_SOURCE_IPS: usize = 16;
    let mut ips: Vec<std::net::IpAddr> = forwarded_for
        .into_iter()
        .flat_map(|h| h.split(','))
        .filter_map(|p| p.trim().parse().ok())
        .take(MAX_SOURCE_IPS)
        .collect();
    if let Some(ip) = real_ip.and_then(|h| h.trim().parse().ok())
        && !ips.contains(&ip)
        && ips.len() < MAX_SOURCE_IPS
    {
        ips.push(ip);
    }
    if let Some(p) = peer.map(canonical)
        && ips.last() != Some(&p)
    {
        ips.push(p);
    }
    ips.into_iter().map(|ip| ip.to_string()).collect()
}

/// An IPv4 peer on a dual-stack socket arrives as ::ffff:a.b.c.d; Go reports it as a.b.c.d.
fn canonical(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn sample() -> Event {
        let t = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        let mut e = Event::new(Level::Metadata, "id-1".into(), t);
        e.stage = Stage::ResponseComplete.as_str();
        e.stage_timestamp = t + Duration::from_micros(1500);
        e.request_uri = "/apis/wardle.example.com/v1alpha1/namespaces/ns/flunders?limit=500".into();
        e.verb = "list".into();
        e.user = UserInfo {
            username: "admin".into(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
            ..Default::default()
        };
        e.source_ips = vec!["127.0.0.1".into()];
        e.user_agent = "kubectl/v1.35.4".into();
        e.object_ref = Some(ObjectReference {
            resource: "flunders".into(),
            namespace: "ns".into(),
            api_group: "wardle.example.com".into(),
            api_version: "v1alpha1".into(),
            ..Default::default()
        });
        e.response_status = Some(ResponseStatus {
            code: 200,
            ..Default::default()
        });
        e.annotations
            .insert("authorization.k8s.io/decision".into(), "allow".into());
        e.annotations
            .insert("authorization.k8s.io/reason".into(), "".into());
        e
    }

    /// Field names, order and formats as in a kube-apiserver audit log line.
    #[test]
    fn json_line_matches_kube_apiserver() {
        assert_eq!(
            sample().to_json_line(),
            concat!(
                r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"id-1","#,
                r#""stage":"ResponseComplete","requestURI":"/apis/wardle.example.com/v1alpha1/namespaces/ns/flunders?limit=500","#,
                r#""verb":"list","user":{"username":"admin","groups":["system:masters","system:authenticated"]},"#,
                r#""sourceIPs":["127.0.0.1"],"userAgent":"kubectl/v1.35.4","#,
                r#""objectRef":{"resource":"flunders","namespace":"ns","apiGroup":"wardle.example.com","apiVersion":"v1alpha1"},"#,
                r#""responseStatus":{"metadata":{},"code":200},"#,
                r#""requestReceivedTimestamp":"2023-11-14T22:13:20.123456Z","stageTimestamp":"2023-11-14T22:13:20.124956Z","#,
                r#""annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":""}}"#,
                "\n"
            )
        );
    }

    #[test]
    fn legacy_line_matches_go() {
        assert_eq!(
            sample().legacy_line(),
            "2023-11-14T22:13:20.123456Z AUDIT: id=\"id-1\" stage=\"ResponseComplete\" ip=\"127.0.0.1\" method=\"list\" user=\"admin\" groups=\"\\\"system:masters\\\",\\\"system:authenticated\\\"\" as=\"<self>\" asgroups=\"<lookup>\" user-agent=\"kubectl/v1.35.4\" namespace=\"ns\" uri=\"/apis/wardle.example.com/v1alpha1/namespaces/ns/flunders?limit=500\" response=\"200\"\n"
        );
    }

    #[test]
    fn source_ips_follow_go() {
        let peer: std::net::IpAddr = "10.0.0.9".parse().unwrap();
        assert_eq!(
            source_ips(Some("1.2.3.4, junk, 5.6.7.8"), Some("1.2.3.4"), Some(peer)),
            ["1.2.3.4", "5.6.7.8", "10.0.0.9"]
        );
        assert_eq!(source_ips(Some("10.0.0.9"), None, Some(peer)), ["10.0.0.9"]);
        let mapped: std::net::IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(source_ips(None, None, Some(mapped)), ["127.0.0.1"]);
        let many = vec!["9.9.9.9"; 100].join(",");
        assert!(source_ips(Some(&many), None, None).len() <= 16);
    }

    #[test]
    fn managed_fields_are_stripped_from_objects_and_lists() {
        let mut v = serde_json::json!({
            "metadata": {"name": "a", "managedFields": [1]},
            "items": [{"metadata": {"managedFields": [2], "name": "b"}}],
        });
        strip_managed_fields(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"metadata": {"name": "a"}, "items": [{"metadata": {"name": "b"}}]})
        );
    }
}
