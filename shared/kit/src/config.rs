//! Configuration from environment variables, validated at start-up. Every error names the
//! variable and says what is wrong, so a misconfigured function stops at cold start with a
//! message that tells the operator what to fix.

use std::collections::HashMap;
use std::str::FromStr;

use mapping::{GroupId, Limits, Roles, RulesConfig, config::parse_parents};

#[cfg(feature = "mqtt")]
use crate::mqtt::{MqttSettings, TlsSettings, parse_url};

/// A configuration mistake.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is absent or empty.
    #[error("environment variable {var} is not set; {hint}")]
    Missing {
        /// The variable.
        var: &'static str,
        /// What it should hold.
        hint: &'static str,
    },
    /// A variable holds a value that cannot be used.
    #[error("environment variable {var}={value:?} is invalid: {problem}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What is wrong.
        problem: String,
    },
    /// The rules configuration is inconsistent.
    #[error(
        "rules configuration (UPLINK_PARENTS, DOWNLINK_PARENTS, OUTFLOW_ROUTES) is invalid: {0}"
    )]
    Rules(#[from] mapping::RulesError),
    /// A secret could not be read or parsed.
    #[error("secret {id} (from {var}): {problem}")]
    Secret {
        /// The variable naming the secret.
        var: &'static str,
        /// The secret ID.
        id: String,
        /// What went wrong.
        problem: String,
    },
}

/// Where variables come from: the process environment, or a map in tests.
#[derive(Debug, Clone, Default)]
pub struct Env {
    overrides: Option<HashMap<String, String>>,
    /// Variables named `<scope>__<VAR>` take precedence over `<VAR>`.
    scope: Option<String>,
}

impl Env {
    /// The process environment.
    pub fn process() -> Self {
        Self {
            overrides: None,
            scope: None,
        }
    }

    /// The same variables seen by one function of several sharing a process (the local
    /// runner): `<scope>__<VAR>` (e.g. `INFLOW_FUNCTION__DEAD_LETTER_QUEUE_URL`), when set,
    /// stands for `<VAR>`. The local stack writes a function's own value this way whenever
    /// the template gives functions different values of one variable.
    #[must_use]
    pub fn scoped(&self, scope: &str) -> Self {
        Self {
            overrides: self.overrides.clone(),
            scope: Some(scope.to_owned()),
        }
    }

    /// A fixed set of variables (tests, local hosts).
    pub fn from_map<K: Into<String>, V: Into<String>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            overrides: Some(
                vars.into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
            ),
            scope: None,
        }
    }

    /// A variable's value; an empty value counts as unset.
    pub fn get(&self, var: &str) -> Option<String> {
        let scoped = self
            .scope
            .as_ref()
            .and_then(|scope| self.raw(&format!("{scope}__{var}")));
        scoped.or_else(|| self.raw(var))
    }

    fn raw(&self, var: &str) -> Option<String> {
        let v = match &self.overrides {
            Some(map) => map.get(var).cloned(),
            None => std::env::var(var).ok(),
        };
        v.filter(|s| !s.trim().is_empty())
    }

    /// A required variable.
    pub fn required(&self, var: &'static str, hint: &'static str) -> Result<String, ConfigError> {
        self.get(var).ok_or(ConfigError::Missing { var, hint })
    }

    /// An optional variable with a default.
    pub fn or(&self, var: &str, default: &str) -> String {
        self.get(var).unwrap_or_else(|| default.to_owned())
    }

    /// An optional variable parsed with `FromStr`, with a default.
    pub fn parse_or<T>(&self, var: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.get(var) {
            None => Ok(default),
            Some(value) => value
                .trim()
                .parse()
                .map_err(|e: T::Err| ConfigError::Invalid {
                    var,
                    problem: e.to_string(),
                    value,
                }),
        }
    }

    /// The rules configuration shared by every function: `UPLINK_PARENTS` (default
    /// `roomSend`), `DOWNLINK_PARENTS` (default `room`), `TOPIC_MAX_CHARS` (default 64),
    /// `PAYLOAD_MAX_BYTES` (default 65536).
    pub fn rules(&self) -> Result<RulesConfig, ConfigError> {
        let defaults = Limits::default();
        let limits = Limits::new(
            self.parse_or("TOPIC_MAX_CHARS", defaults.topic_max_chars)?,
            self.parse_or("PAYLOAD_MAX_BYTES", defaults.payload_max_bytes)?,
        )?;
        let parents = |var: &'static str, default: &str| {
            let value = self.or(var, default);
            parse_parents(&value).map_err(|e| ConfigError::Invalid {
                var,
                value: value.clone(),
                problem: e.to_string(),
            })
        };
        Ok(RulesConfig::new(
            parents("UPLINK_PARENTS", "roomSend")?,
            parents("DOWNLINK_PARENTS", "room")?,
            limits,
        )?)
    }
}

impl Env {
    /// The roles by group: `TEACHER_GROUPS` (default `GID_teacher`) and `STUDENT_GROUPS`
    /// (default `GID_student`), comma-separated group IDs; a group in both is refused.
    pub fn roles(&self) -> Result<Roles, ConfigError> {
        let groups = |var: &'static str, default: &str| {
            let value = self.or(var, default);
            value
                .split(',')
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(|g| {
                    GroupId::parse(g).map_err(|e| ConfigError::Invalid {
                        var,
                        value: value.clone(),
                        problem: e.to_string(),
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let teachers = groups("TEACHER_GROUPS", "GID_teacher")?;
        let students = groups("STUDENT_GROUPS", "GID_student")?;
        if let Some(both) = teachers.iter().find(|g| students.contains(g)) {
            return Err(ConfigError::Invalid {
                var: "STUDENT_GROUPS",
                value: self.or("STUDENT_GROUPS", "GID_student"),
                problem: format!("{both} is also in TEACHER_GROUPS; a group has one role"),
            });
        }
        Ok(Roles::new(teachers, students))
    }
}

/// The JSON a `MQTT_SECRET_ID` secret holds: `certPem` + `keyPem` (a client certificate, what
/// AWS IoT Core requires) and/or `username` + `password` (brokers that sign in with a
/// password), and `caPem` when the broker's CA is not a platform root. Unknown keys are
/// refused, so a misspelt `certPEM` stops start-up instead of silently sending no certificate.
#[cfg(feature = "mqtt")]
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MqttSecret {
    username: Option<String>,
    password: Option<String>,
    ca_pem: Option<String>,
    cert_pem: Option<String>,
    key_pem: Option<String>,
}

/// What a `MQTT_SECRET_ID` secret should hold, for error messages.
#[cfg(feature = "mqtt")]
const SECRET_SHAPE: &str = "{\"certPem\": \"<client certificate PEM>\", \"keyPem\": \"<its private key PEM>\"} (optional \"caPem\" when the broker's CA is not a public root; \"username\" + \"password\" for a password broker) with `aws secretsmanager put-secret-value` (infra/DEPLOY.md)";

#[cfg(feature = "mqtt")]
impl Env {
    /// The MQTT publisher's settings: `MQTT_URL` (required, `mqtt://` or `mqtts://`),
    /// `MQTT_CLIENT_ID_PREFIX` (default `backend-inflow-`), `MQTT_PUBLISH_TIMEOUT_MS` (5000),
    /// `MQTT_KEEP_ALIVE_SECS` (30), and credentials either from `MQTT_SECRET_ID` (a Secrets
    /// Manager secret, the cloud way: JSON with `certPem` + `keyPem` and/or `username` +
    /// `password`, optional `caPem`; no other keys) or from `MQTT_USERNAME` / `MQTT_PASSWORD`.
    ///
    /// For `mqtts://` the TLS configuration is built here ([`TlsSettings::build`]): roots from
    /// `caPem`, else the platform's (`SSL_CERT_FILE` / `SSL_CERT_DIR` when set), and the client
    /// certificate whenever the secret has one. A secret that cannot be read, is not that JSON,
    /// holds no credentials or bad PEM is a start-up error naming `MQTT_SECRET_ID`.
    pub async fn mqtt_settings(
        &self,
        sdk: &aws_config::SdkConfig,
    ) -> Result<MqttSettings, ConfigError> {
        let url = self.required("MQTT_URL", "set it to the broker, e.g. mqtt://127.0.0.1:1883 or mqtts://<id>-ats.iot.<region>.amazonaws.com:8883")?;
        let (host, port, tls) = parse_url(&url).map_err(|e| ConfigError::Invalid {
            var: "MQTT_URL",
            value: url.clone(),
            problem: e.to_string(),
        })?;
        let secret = match self.get("MQTT_SECRET_ID") {
            None => MqttSecret::default(),
            Some(id) => {
                let problem = |p: String| ConfigError::Secret {
                    var: "MQTT_SECRET_ID",
                    id: id.clone(),
                    problem: p,
                };
                let text = crate::secrets::secret_string(sdk, &id)
                    .await
                    .map_err(|e| problem(e.problem()))?;
                let secret: MqttSecret = serde_json::from_str(&text).map_err(|e| {
                    problem(format!(
                        "it is not the expected JSON ({e}); write {SECRET_SHAPE}"
                    ))
                })?;
                if secret.cert_pem.is_none()
                    && secret.key_pem.is_none()
                    && secret.username.is_none()
                    && secret.password.is_none()
                {
                    return Err(problem(format!(
                        "it holds no credentials; write {SECRET_SHAPE}"
                    )));
                }
                secret
            }
        };
        let username = secret.username.or_else(|| self.get("MQTT_USERNAME"));
        let password = secret.password.or_else(|| self.get("MQTT_PASSWORD"));
        let credentials = match (username, password) {
            (Some(u), Some(p)) => Some((u, p)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::Missing {
                    var: "MQTT_PASSWORD",
                    hint: "a username is set, so a password is needed too",
                });
            }
            (None, Some(_)) => {
                return Err(ConfigError::Missing {
                    var: "MQTT_USERNAME",
                    hint: "a password is set, so a username is needed too",
                });
            }
        };
        if secret.cert_pem.is_some() != secret.key_pem.is_some() {
            return Err(ConfigError::Secret {
                var: "MQTT_SECRET_ID",
                id: self.or("MQTT_SECRET_ID", ""),
                problem: format!("certPem and keyPem go together; write {SECRET_SHAPE}"),
            });
        }
        if tls && port == 8883 && host.ends_with(".amazonaws.com") && secret.cert_pem.is_none() {
            // IoT Core's MQTT port authenticates with X.509 client certificates only: without
            // one every publish would fail and every downlink message end in the DLQ.
            return Err(ConfigError::Secret {
                var: "MQTT_SECRET_ID",
                id: self.or("MQTT_SECRET_ID", "(not set)"),
                problem: format!(
                    "{host}:8883 is AWS IoT Core, which needs a client certificate: put certPem and keyPem in the secret"
                ),
            });
        }
        if !tls && (secret.cert_pem.is_some() || secret.ca_pem.is_some()) {
            return Err(ConfigError::Invalid {
                var: "MQTT_URL",
                value: url,
                problem: "certificates are configured, so the URL must be mqtts://".to_owned(),
            });
        }
        let timeout_ms: u64 = self.parse_or("MQTT_PUBLISH_TIMEOUT_MS", 5000)?;
        if timeout_ms == 0 {
            return Err(ConfigError::Invalid {
                var: "MQTT_PUBLISH_TIMEOUT_MS",
                value: "0".to_owned(),
                problem: "must be greater than zero".to_owned(),
            });
        }
        let keep_alive: u64 = self.parse_or("MQTT_KEEP_ALIVE_SECS", 30)?;
        if !(5..=65_535).contains(&keep_alive) {
            return Err(ConfigError::Invalid {
                var: "MQTT_KEEP_ALIVE_SECS",
                value: keep_alive.to_string(),
                problem: "must be 5 to 65535 seconds (MQTT's limit; rumqttc's minimum is 5)"
                    .to_owned(),
            });
        }
        let prefix = self.or("MQTT_CLIENT_ID_PREFIX", "backend-inflow-");
        if prefix.len() > 40 || prefix.contains(['/', '+', '#']) {
            return Err(ConfigError::Invalid {
                var: "MQTT_CLIENT_ID_PREFIX",
                value: prefix,
                problem: "must be at most 40 characters without / + #".to_owned(),
            });
        }
        let tls = match tls {
            false => None,
            true => Some(
                TlsSettings {
                    ca_pem: secret.ca_pem,
                    cert_pem: secret.cert_pem,
                    key_pem: secret.key_pem,
                }
                .build()
                .map_err(|e| match self.get("MQTT_SECRET_ID") {
                    Some(id) => ConfigError::Secret {
                        var: "MQTT_SECRET_ID",
                        id,
                        problem: e.to_string(),
                    },
                    // No secret: only the platform roots can be missing.
                    None => ConfigError::Invalid {
                        var: "MQTT_URL",
                        value: url.clone(),
                        problem: e.to_string(),
                    },
                })?,
            ),
        };
        Ok(MqttSettings {
            host,
            port,
            tls,
            client_id_prefix: prefix,
            credentials,
            keep_alive: std::time::Duration::from_secs(keep_alive),
            publish_timeout: std::time::Duration::from_millis(timeout_ms),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scoped_variable_stands_for_the_plain_one_in_its_scope_only() {
        let env = Env::from_map([
            ("DEAD_LETTER_QUEUE_URL", "shared"),
            ("INFLOW_FUNCTION__DEAD_LETTER_QUEUE_URL", "inflow's"),
            ("OUTFLOW_FUNCTION__DEAD_LETTER_QUEUE_URL", " "),
        ]);
        let get = |e: &Env| e.get("DEAD_LETTER_QUEUE_URL");
        assert_eq!(get(&env).as_deref(), Some("shared"));
        assert_eq!(
            get(&env.scoped("INFLOW_FUNCTION")).as_deref(),
            Some("inflow's")
        );
        // Blank counts as unset, so the plain value shows through.
        assert_eq!(
            get(&env.scoped("OUTFLOW_FUNCTION")).as_deref(),
            Some("shared")
        );
        assert_eq!(
            get(&env.scoped("PRESENCE_FUNCTION")).as_deref(),
            Some("shared")
        );
    }

    #[cfg(feature = "mqtt")]
    #[tokio::test]
    async fn iot_core_without_a_client_certificate_stops_start_up() {
        let sdk = aws_config::SdkConfig::builder().build();
        let env = Env::from_map([(
            "MQTT_URL",
            "mqtts://abc-ats.iot.us-east-1.amazonaws.com:8883",
        )]);
        let msg = env.mqtt_settings(&sdk).await.unwrap_err().to_string();
        assert!(msg.contains("client certificate"), "{msg}");
        let env = Env::from_map([
            ("MQTT_URL", "mqtt://127.0.0.1:1883"),
            ("MQTT_USERNAME", "backend"),
        ]);
        let msg = env.mqtt_settings(&sdk).await.unwrap_err().to_string();
        assert!(msg.contains("MQTT_PASSWORD"), "{msg}");
        let env = Env::from_map([
            ("MQTT_URL", "mqtt://127.0.0.1:1883"),
            ("MQTT_PUBLISH_TIMEOUT_MS", "0"),
        ]);
        assert!(env.mqtt_settings(&sdk).await.is_err());
        for bad in ["4", "0", "70000"] {
            let env = Env::from_map([
                ("MQTT_URL", "mqtt://127.0.0.1:1883"),
                ("MQTT_KEEP_ALIVE_SECS", bad),
            ]);
            let msg = env.mqtt_settings(&sdk).await.unwrap_err().to_string();
            assert!(msg.contains("MQTT_KEEP_ALIVE_SECS"), "{msg}");
        }
        let env = Env::from_map([("MQTT_URL", "tcp://127.0.0.1")]);
        let msg = env.mqtt_settings(&sdk).await.unwrap_err().to_string();
        assert!(msg.contains("MQTT_URL"), "{msg}");
        let ok = Env::from_map([("MQTT_URL", "mqtt://127.0.0.1:1884")])
            .mqtt_settings(&sdk)
            .await
            .unwrap();
        assert_eq!(
            (ok.port, ok.tls.is_none(), ok.credentials.is_none()),
            (1884, true, true)
        );
    }

    #[test]
    fn defaults_give_the_classroom_rules() {
        let rules = Env::from_map::<&str, &str>([]).rules().unwrap();
        assert_eq!(rules.default_downlink().as_str(), "room");
        assert_eq!(rules.uplink()[0].as_str(), "roomSend");
        assert_eq!(rules.limits, Limits::default());
    }

    #[test]
    fn the_loop_guard_stops_start_up_with_a_clear_error() {
        let env = Env::from_map([
            ("UPLINK_PARENTS", "roomSend"),
            ("DOWNLINK_PARENTS", "roomSend"),
        ]);
        let msg = env.rules().unwrap_err().to_string();
        assert!(
            msg.contains("DOWNLINK_PARENTS") && msg.contains("endless loop"),
            "{msg}"
        );
    }

    #[test]
    fn errors_name_the_variable_and_the_problem() {
        let env = Env::from_map([("TOPIC_MAX_CHARS", "sixty")]);
        let msg = env.rules().unwrap_err().to_string();
        assert!(msg.contains("TOPIC_MAX_CHARS=\"sixty\""), "{msg}");
        let env = Env::from_map([("UPLINK_PARENTS", "room/Send")]);
        let msg = env.rules().unwrap_err().to_string();
        assert!(msg.contains("UPLINK_PARENTS") && msg.contains('/'), "{msg}");
        let msg = Env::from_map::<&str, &str>([])
            .required("OUTFLOW_ROUTES", "set it to roomSend=<queue url>")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("OUTFLOW_ROUTES") && msg.contains("queue url"),
            "{msg}"
        );
    }
}
