//! The admin CLI: `rampart consumers|keys|bans|admin token …` talk to a running
//! instance's admin API and print tables (or JSON with `--json`). A consumer is named
//! by its id or its name wherever one is asked for (an id wins when both match).

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use clap::{Args, Subcommand};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

/// How to reach the admin API.
#[derive(Args, Debug, Clone)]
pub struct Connection {
    /// Admin API base URL.
    #[arg(
        long,
        env = "RAMPART_ADMIN_URL",
        default_value = "http://127.0.0.1:9090",
        global = true
    )]
    admin_url: String,
    /// Admin token (default: `RAMPART_ADMIN_TOKEN`, else the file `<data-dir>/admin-token`).
    #[arg(
        long,
        env = "RAMPART_ADMIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    token: Option<String>,
    /// Rampart's data dir: where to look for the bootstrap `admin-token` file (and the
    /// store, with `admin token create --offline`).
    #[arg(long, env = "RAMPART_DATA_DIR", default_value = "data", global = true)]
    pub data_dir: PathBuf,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
}

/// `rampart consumers …`
#[derive(Subcommand, Debug)]
pub enum ConsumersCommand {
    /// Create a consumer.
    Create {
        /// Unique name.
        #[arg(long)]
        name: String,
        /// Tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Metadata as a JSON object.
        #[arg(long)]
        metadata: Option<String>,
    },
    /// List consumers.
    List {
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Only `active` or `disabled`.
        #[arg(long)]
        status: Option<String>,
        /// Most to show.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Show one consumer.
    Show {
        /// Consumer name or id.
        consumer: String,
    },
    /// Disable a consumer (its keys stop working).
    Disable {
        /// Consumer name or id.
        consumer: String,
    },
    /// Delete a consumer with its API keys (they stop working on every instance) and
    /// quota counts.
    Delete {
        /// Consumer name or id.
        consumer: String,
    },
}

/// `rampart keys …`
#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Create an API key for a consumer (the secret is shown once).
    Create {
        /// Consumer name or id.
        #[arg(long)]
        consumer: String,
        /// Label.
        #[arg(long)]
        name: Option<String>,
        /// A scope to grant (repeatable).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Seconds until the key expires.
        #[arg(long)]
        expires_in: Option<u64>,
    },
    /// List a consumer's keys.
    List {
        /// Consumer name or id.
        #[arg(long)]
        consumer: String,
    },
    /// Revoke a key now.
    Revoke {
        /// Key id.
        id: String,
    },
    /// Replace a key; the old one keeps working for the overlap.
    Rotate {
        /// Key id.
        id: String,
        /// Seconds the old key keeps working.
        #[arg(long, default_value_t = 3600)]
        overlap: u64,
    },
}

/// `rampart bans …`
#[derive(Subcommand, Debug)]
pub enum BansCommand {
    /// List the clients banned (by honeypots), with when each ban ends.
    List {
        /// Most to show.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Lift a client's ban on every instance.
    Lift {
        /// The client's IP address.
        ip: String,
    },
}

/// `rampart admin token …`
#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create an admin token (the secret is shown once).
    Create {
        /// Label.
        #[arg(long)]
        name: String,
        /// `admin`, `operator` or `auditor`.
        #[arg(long)]
        role: String,
        /// Recovery when no admin token works: create the token directly in the store
        /// (SQLite in `--data-dir`, with the gateway stopped, or the Postgres database of
        /// `--database-url`) instead of through the admin API. Audited like any other.
        #[arg(long)]
        offline: bool,
        /// With `--offline`: the shared Postgres store.
        #[arg(long, env = "RAMPART_DATABASE_URL", requires = "offline")]
        database_url: Option<String>,
    },
    /// List admin tokens.
    List,
    /// Revoke an admin token.
    Revoke {
        /// Token id.
        id: String,
    },
}

/// A failed admin call, worded for the terminal.
#[derive(Debug)]
pub struct CliError(pub String);

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CliError {}

struct Admin {
    base: String,
    token: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Admin {
    fn new(conn: &Connection) -> Result<Self, CliError> {
        let token = match &conn.token {
            Some(t) => t.trim().to_string(),
            None => std::fs::read_to_string(conn.data_dir.join("admin-token"))
                .map(|t| t.trim().to_string())
                .map_err(|_| {
                    CliError(format!(
                        "no admin token: pass --token, set RAMPART_ADMIN_TOKEN, or run where {} exists",
                        conn.data_dir.join("admin-token").display()
                    ))
                })?,
        };
        Ok(Self {
            base: conn.admin_url.trim_end_matches('/').to_string(),
            token,
            client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
        })
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, CliError> {
        let (status, value) = self.send(method, path, body).await?;
        if status.is_success() {
            Ok(value)
        } else {
            Err(failure(status, &value))
        }
    }

    /// The id of the consumer `name_or_id` names: its id, else its name.
    async fn consumer_id(&self, name_or_id: &str) -> Result<String, CliError> {
        let (status, value) = self
            .send("GET", &format!("/consumers/{}", encode(name_or_id)), None)
            .await?;
        if status.is_success() {
            return Ok(text(&value["id"]));
        }
        if status != http::StatusCode::NOT_FOUND {
            return Err(failure(status, &value));
        }
        let page = self
            .call(
                "GET",
                &format!("/consumers?name={}", encode(name_or_id)),
                None,
            )
            .await?;
        page["items"][0]["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| CliError(format!("no consumer has the id or name {name_or_id:?}")))
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<(http::StatusCode, Value), CliError> {
        let url = format!("{}{path}", self.base);
        let mut request = http::Request::builder()
            .method(method)
            .uri(&url)
            .header("authorization", format!("Bearer {}", self.token));
        let payload = match body {
            Some(b) => {
                request = request.header("content-type", "application/json");
                Full::new(Bytes::from(b.to_string()))
            }
            None => Full::default(),
        };
        let request = request
            .body(payload)
            .map_err(|e| CliError(format!("bad request to {url}: {e}")))?;
        let response = tokio::time::timeout(Duration::from_secs(30), self.client.request(request))
            .await
            .map_err(|_| {
                CliError(format!(
                    "the admin API at {} did not answer within 30s",
                    self.base
                ))
            })?
            .map_err(|e| CliError(format!("cannot reach the admin API at {}: {e}", self.base)))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| CliError(format!("reading the answer failed: {e}")))?
            .to_bytes();
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok((status, value))
    }
}

/// A refusal from the admin API, worded for the terminal.
fn failure(status: http::StatusCode, value: &Value) -> CliError {
    let detail = value["detail"].as_str().unwrap_or("").to_string();
    let mut message = match status.as_u16() {
        401 => {
            "the admin token was refused (401): check --token or RAMPART_ADMIN_TOKEN".to_string()
        }
        403 => format!("forbidden (403): {detail}"),
        code => format!("{code}: {detail}"),
    };
    if let Some(errors) = value["errors"].as_array() {
        for e in errors {
            message.push_str(&format!(
                "\n  {}: {}",
                e["field"].as_str().unwrap_or(""),
                e["message"].as_str().unwrap_or("")
            ));
        }
    }
    if let Some(id) = value["request_id"].as_str() {
        message.push_str(&format!("\n  (request id {id})"));
    }
    CliError(message)
}

/// RFC 3339 (seconds) for a millisecond timestamp, or `-`.
fn time(ms: &Value) -> String {
    ms.as_i64()
        .map(|ms| {
            let t = std::time::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
            humantime::format_rfc3339_seconds(t).to_string()
        })
        .unwrap_or_else(|| "-".into())
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Prints rows as an aligned table.
fn table(headers: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    println!(
        "{}",
        line(headers.iter().map(|h| h.to_uppercase()).collect())
    );
    for row in rows {
        println!("{}", line(row));
    }
}

fn print(conn: &Connection, value: &Value, human: impl FnOnce(&Value)) {
    if conn.json {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
    } else {
        human(value);
    }
}

fn consumer_rows(items: &[Value]) -> Vec<Vec<String>> {
    items
        .iter()
        .map(|c| {
            vec![
                text(&c["id"]),
                text(&c["name"]),
                text(&c["tenant"]),
                text(&c["status"]),
                time(&c["created_at"]),
            ]
        })
        .collect()
}

fn key_rows(items: &[Value]) -> Vec<Vec<String>> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    items
        .iter()
        .map(|k| {
            // A rotated key is "rotating" until its overlap ends, then expired.
            let state = if !k["revoked_at"].is_null() {
                "revoked"
            } else if k["expires_at"].as_i64().is_some_and(|t| t <= now) {
                "expired"
            } else if !k["replaced_by"].is_null() {
                "rotating"
            } else {
                "active"
            };
            vec![
                text(&k["id"]),
                text(&k["name"]),
                text(&k["scopes"]),
                state.into(),
                time(&k["expires_at"]),
                time(&k["last_used_at"]),
            ]
        })
        .collect()
}

fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Runs `rampart consumers …`.
pub async fn consumers(conn: &Connection, command: ConsumersCommand) -> Result<(), CliError> {
    let admin = Admin::new(conn)?;
    match command {
        ConsumersCommand::Create {
            name,
            tenant,
            metadata,
        } => {
            let metadata: Option<Value> = match metadata {
                Some(m) => Some(
                    serde_json::from_str(&m)
                        .map_err(|e| CliError(format!("--metadata is not JSON: {e}")))?,
                ),
                None => None,
            };
            let c = admin
                .call(
                    "POST",
                    "/consumers",
                    Some(json!({ "name": name, "tenant": tenant, "metadata": metadata })),
                )
                .await?;
            print(conn, &c, |c| {
                table(
                    &["id", "name", "tenant", "status", "created"],
                    consumer_rows(std::slice::from_ref(c)),
                )
            });
        }
        ConsumersCommand::List {
            tenant,
            status,
            limit,
        } => {
            let mut query = format!("?limit={limit}");
            if let Some(t) = tenant {
                query.push_str(&format!("&tenant={}", encode(&t)));
            }
            if let Some(s) = status {
                query.push_str(&format!("&status={}", encode(&s)));
            }
            let page = admin
                .call("GET", &format!("/consumers{query}"), None)
                .await?;
            print(conn, &page, |p| {
                table(
                    &["id", "name", "tenant", "status", "created"],
                    consumer_rows(p["items"].as_array().map_or(&[][..], |v| v)),
                );
                if let Some(next) = p["next_cursor"].as_str() {
                    println!("(more: next cursor {next})");
                }
            });
        }
        ConsumersCommand::Show { consumer } => {
            let id = admin.consumer_id(&consumer).await?;
            let c = admin
                .call("GET", &format!("/consumers/{}", encode(&id)), None)
                .await?;
            print(conn, &c, |c| {
                table(
                    &["id", "name", "tenant", "status", "created"],
                    consumer_rows(std::slice::from_ref(c)),
                );
                println!("metadata: {}", c["metadata"]);
            });
        }
        ConsumersCommand::Disable { consumer } => {
            let id = admin.consumer_id(&consumer).await?;
            let c = admin
                .call(
                    "PATCH",
                    &format!("/consumers/{}", encode(&id)),
                    Some(json!({ "status": "disabled" })),
                )
                .await?;
            print(conn, &c, |c| {
                table(
                    &["id", "name", "tenant", "status", "created"],
                    consumer_rows(std::slice::from_ref(c)),
                )
            });
        }
        ConsumersCommand::Delete { consumer } => {
            let id = admin.consumer_id(&consumer).await?;
            admin
                .call("DELETE", &format!("/consumers/{}", encode(&id)), None)
                .await?;
            let done = json!({ "deleted": id });
            print(conn, &done, |_| {
                println!("deleted consumer {id} and its API keys")
            });
        }
    }
    Ok(())
}

/// Runs `rampart bans …`.
pub async fn bans(conn: &Connection, command: BansCommand) -> Result<(), CliError> {
    let admin = Admin::new(conn)?;
    match command {
        BansCommand::List { limit } => {
            let list = admin
                .call("GET", &format!("/bans?limit={limit}"), None)
                .await?;
            print(conn, &list, |l| {
                let rows = l["items"]
                    .as_array()
                    .map_or(&[][..], |v| v)
                    .iter()
                    .map(|b| vec![text(&b["ip"]), time(&b["expires_at"])])
                    .collect();
                table(&["ip", "until"], rows);
                if l["truncated"].as_bool() == Some(true) {
                    println!("(more bans exist than listed)");
                }
            });
        }
        BansCommand::Lift { ip } => {
            admin
                .call("DELETE", &format!("/bans/{}", encode(&ip)), None)
                .await?;
            let done = json!({ "lifted": ip });
            print(conn, &done, |_| println!("lifted the ban of {ip}"));
        }
    }
    Ok(())
}

/// Runs `rampart keys …`.
pub async fn keys(conn: &Connection, command: KeysCommand) -> Result<(), CliError> {
    let admin = Admin::new(conn)?;
    let headers = ["id", "name", "scopes", "state", "expires", "last used"];
    match command {
        KeysCommand::Create {
            consumer,
            name,
            scopes,
            expires_in,
        } => {
            let consumer = admin.consumer_id(&consumer).await?;
            let created = admin
                .call(
                    "POST",
                    &format!("/consumers/{}/keys", encode(&consumer)),
                    Some(json!({ "name": name, "scopes": scopes, "expires_in": expires_in })),
                )
                .await?;
            print(conn, &created, |v| {
                table(&headers, key_rows(std::slice::from_ref(&v["key"])));
                println!("\nsecret (shown once): {}", text(&v["secret"]));
            });
        }
        KeysCommand::List { consumer } => {
            let consumer = admin.consumer_id(&consumer).await?;
            let page = admin
                .call(
                    "GET",
                    &format!("/consumers/{}/keys", encode(&consumer)),
                    None,
                )
                .await?;
            print(conn, &page, |p| {
                table(
                    &headers,
                    key_rows(p["items"].as_array().map_or(&[][..], |v| v)),
                )
            });
        }
        KeysCommand::Revoke { id } => {
            let key = admin
                .call("POST", &format!("/keys/{}/revoke", encode(&id)), None)
                .await?;
            print(conn, &key, |k| {
                table(&headers, key_rows(std::slice::from_ref(k)))
            });
        }
        KeysCommand::Rotate { id, overlap } => {
            let rotated = admin
                .call(
                    "POST",
                    &format!("/keys/{}/rotate", encode(&id)),
                    Some(json!({ "overlap_seconds": overlap })),
                )
                .await?;
            print(conn, &rotated, |v| {
                table(&headers, key_rows(std::slice::from_ref(&v["key"])));
                println!("\nsecret (shown once): {}", text(&v["secret"]));
                println!("the old key keeps working for {overlap}s");
            });
        }
    }
    Ok(())
}

/// Runs `rampart admin token …`.
pub async fn tokens(conn: &Connection, command: TokenCommand) -> Result<(), CliError> {
    let admin = Admin::new(conn)?;
    let rows = |items: &[Value]| -> Vec<Vec<String>> {
        items
            .iter()
            .map(|t| {
                vec![
                    text(&t["id"]),
                    text(&t["name"]),
                    text(&t["role"]),
                    if t["revoked_at"].is_null() {
                        "active".into()
                    } else {
                        "revoked".into()
                    },
                    time(&t["last_used_at"]),
                ]
            })
            .collect()
    };
    let headers = ["id", "name", "role", "state", "last used"];
    match command {
        TokenCommand::Create { name, role, .. } => {
            let created = admin
                .call(
                    "POST",
                    "/admin/tokens",
                    Some(json!({ "name": name, "role": role })),
                )
                .await?;
            print(conn, &created, |v| {
                table(&headers, rows(std::slice::from_ref(&v["token"])));
                println!("\nsecret (shown once): {}", text(&v["secret"]));
            });
        }
        TokenCommand::List => {
            let list = admin.call("GET", "/admin/tokens", None).await?;
            print(conn, &list, |l| {
                table(&headers, rows(l["items"].as_array().map_or(&[][..], |v| v)))
            });
        }
        TokenCommand::Revoke { id } => {
            let token = admin
                .call(
                    "POST",
                    &format!("/admin/tokens/{}/revoke", encode(&id)),
                    None,
                )
                .await?;
            print(conn, &token, |t| {
                table(&headers, rows(std::slice::from_ref(t)))
            });
        }
    }
    Ok(())
}
