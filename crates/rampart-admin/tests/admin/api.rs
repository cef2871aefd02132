use std::os::unix::fs::PermissionsExt;

use crate::support::*;

#[tokio::test]
async fn the_bootstrap_token_is_private_and_only_made_once() {
    let admin = start().await;
    let file = admin.data_dir.join("admin-token");
    let mode = std::fs::metadata(&file).expect("file").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(admin.token.starts_with("rat_"));
    let again = rampart_admin::bootstrap_token(&admin.store, &admin.data_dir)
        .await
        .expect("bootstrap");
    assert!(
        again.is_none(),
        "a store with a token gets no second bootstrap token"
    );
    assert_eq!(
        std::fs::read_to_string(&file).expect("file").trim(),
        admin.token
    );
}

#[tokio::test]
async fn missing_or_wrong_tokens_get_401_and_roles_gate_actions() {
    let admin = start().await;
    let none = admin.call(None, "GET", "/consumers", None, &[]).await;
    assert_eq!(none.status, 401);
    assert_eq!(
        none.headers["www-authenticate"],
        "Bearer realm=\"rampart-admin\""
    );
    assert_eq!(none.json["type"], "urn:rampart:problem:unauthorized");
    assert_eq!(
        none.json["request_id"],
        none.headers["x-request-id"].to_str().expect("ascii")
    );
    let forged = format!("rat_{}_{}", "ab", "0".repeat(64));
    assert_eq!(
        admin
            .call(Some(&forged), "GET", "/consumers", None, &[])
            .await
            .status,
        401
    );

    let auditor = admin.token_with_role("auditor").await;
    let operator = admin.token_with_role("operator").await;
    assert_eq!(
        admin
            .call(Some(&auditor), "GET", "/consumers", None, &[])
            .await
            .status,
        200
    );
    let denied = admin
        .call(
            Some(&auditor),
            "POST",
            "/consumers",
            Some(r#"{"name":"x"}"#),
            &[],
        )
        .await;
    assert_eq!(denied.status, 403);
    assert_eq!(
        admin
            .call(
                Some(&operator),
                "POST",
                "/consumers",
                Some(r#"{"name":"x"}"#),
                &[]
            )
            .await
            .status,
        201
    );
    assert_eq!(
        admin
            .call(Some(&operator), "GET", "/admin/tokens", None, &[])
            .await
            .status,
        403
    );
    assert_eq!(
        admin
            .call(Some(&auditor), "GET", "/audit/events", None, &[])
            .await
            .status,
        200
    );

    // A revoked token stops working at once.
    let tokens = admin.admin("GET", "/admin/tokens", None).await;
    let auditor_id = tokens.json["items"]
        .as_array()
        .and_then(|items| items.iter().find(|t| t["role"] == "auditor"))
        .and_then(|t| t["id"].as_str())
        .expect("auditor token")
        .to_string();
    assert_eq!(
        admin
            .admin("POST", &format!("/admin/tokens/{auditor_id}/revoke"), None)
            .await
            .status,
        200
    );
    assert_eq!(
        admin
            .call(Some(&auditor), "GET", "/consumers", None, &[])
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn consumers_crud_with_etags_pagination_and_filters() {
    let admin = start().await;
    let created = admin
        .admin(
            "POST",
            "/consumers",
            Some(r#"{"name":"billing","tenant":"acme","metadata":{"plan":"gold"}}"#),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.json);
    let id = created.json["id"].as_str().expect("id").to_string();
    assert_eq!(created.headers["etag"], "\"v1\"");

    let read = admin.admin("GET", &format!("/consumers/{id}"), None).await;
    assert_eq!(read.json["metadata"]["plan"], "gold");
    assert_eq!(read.headers["etag"], "\"v1\"");

    let duplicate = admin
        .admin("POST", "/consumers", Some(r#"{"name":"billing"}"#))
        .await;
    assert_eq!(duplicate.status, 409);

    let patch = |etag: &'static str| {
        let admin = &admin;
        let id = id.clone();
        async move {
            admin
                .call(
                    Some(&admin.token),
                    "PATCH",
                    &format!("/consumers/{id}"),
                    Some(r#"{"status":"disabled"}"#),
                    &[("if-match", etag)],
                )
                .await
        }
    };
    let updated = patch("\"v1\"").await;
    assert_eq!(updated.status, 200, "{}", updated.json);
    assert_eq!(updated.json["status"], "disabled");
    assert_eq!(updated.headers["etag"], "\"v2\"");
    let stale = patch("\"v1\"").await;
    assert_eq!(stale.status, 412);
    assert_eq!(
        stale.json["type"],
        "urn:rampart:problem:precondition-failed"
    );

    // Without If-Match, concurrent patches all land: none is told the record changed.
    let patches = (0..20).map(|i| {
        let admin = &admin;
        let id = id.clone();
        async move {
            admin
                .admin(
                    "PATCH",
                    &format!("/consumers/{id}"),
                    Some(&format!(r#"{{"metadata":{{"n":{i}}}}}"#)),
                )
                .await
                .status
        }
    });
    let statuses = futures_util::future::join_all(patches).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let read = admin.admin("GET", &format!("/consumers/{id}"), None).await;
    assert_eq!(
        read.headers["etag"], "\"v22\"",
        "every patch made a version"
    );

    for i in 0..4 {
        admin
            .admin(
                "POST",
                "/consumers",
                Some(&format!(r#"{{"name":"c{i}","tenant":"t{}"}}"#, i % 2)),
            )
            .await;
    }
    let first = admin.admin("GET", "/consumers?limit=2", None).await;
    assert_eq!(first.json["items"].as_array().map(Vec::len), Some(2));
    let cursor = first.json["next_cursor"].as_str().expect("cursor");
    let second = admin
        .admin("GET", &format!("/consumers?limit=10&cursor={cursor}"), None)
        .await;
    assert_eq!(second.json["items"].as_array().map(Vec::len), Some(3));
    assert!(second.json["next_cursor"].is_null());
    let tenant = admin.admin("GET", "/consumers?tenant=t1", None).await;
    assert_eq!(tenant.json["items"].as_array().map(Vec::len), Some(2));
    let disabled = admin.admin("GET", "/consumers?status=disabled", None).await;
    assert_eq!(disabled.json["items"][0]["name"], "billing");
}

#[tokio::test]
async fn bad_input_is_a_4xx_problem_naming_the_field() {
    let admin = start().await;
    let unknown = admin
        .admin("POST", "/consumers", Some(r#"{"name":"a","colour":"red"}"#))
        .await;
    assert_eq!(unknown.status, 400);
    assert!(
        unknown.json["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("unknown field `colour`")),
        "{}",
        unknown.json
    );

    let wrong_type = admin
        .admin(
            "POST",
            "/consumers",
            Some(r#"{"name":"a","metadata":{"x":1},"tenant":5}"#),
        )
        .await;
    assert_eq!(wrong_type.status, 400);
    assert_eq!(wrong_type.json["errors"][0]["field"], "tenant");

    let invalid = admin
        .admin(
            "POST",
            "/consumers",
            Some(r#"{"name":"has space","metadata":[1]}"#),
        )
        .await;
    assert_eq!(invalid.status, 422);
    let fields: Vec<&str> = invalid.json["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(fields, ["name", "metadata"]);

    let not_json = admin.admin("POST", "/consumers", Some("{")).await;
    assert_eq!(not_json.status, 400);
    let big = format!(
        r#"{{"name":"a","metadata":{{"x":"{}"}}}}"#,
        "y".repeat(100_000)
    );
    assert_eq!(
        admin.admin("POST", "/consumers", Some(&big)).await.status,
        413
    );
    let no_type = admin
        .call(Some(&admin.token), "POST", "/consumers", None, &[])
        .await;
    assert_eq!(no_type.status, 415);
    assert_eq!(
        admin.admin("GET", "/consumers/nope", None).await.status,
        404
    );
    assert_eq!(
        admin
            .admin("GET", "/consumers?limit=abc", None)
            .await
            .status,
        400
    );
    let bad_scope = admin
        .admin("POST", "/consumers", Some(r#"{"name":"k"}"#))
        .await;
    let id = bad_scope.json["id"].as_str().expect("id").to_string();
    let scopes = admin
        .admin(
            "POST",
            &format!("/consumers/{id}/keys"),
            Some(r#"{"scopes":["ok","has space"]}"#),
        )
        .await;
    assert_eq!(scopes.status, 422);
    assert_eq!(scopes.json["errors"][0]["field"], "scopes[1]");
    // Nothing was half-written: no consumer from any failed request.
    let all = admin.admin("GET", "/consumers", None).await;
    assert_eq!(all.json["items"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn keys_are_created_listed_rotated_revoked_and_every_mutation_is_audited() {
    let admin = start().await;
    let consumer = admin
        .admin("POST", "/consumers", Some(r#"{"name":"partner"}"#))
        .await;
    let cid = consumer.json["id"].as_str().expect("id").to_string();
    let created = admin
        .admin(
            "POST",
            &format!("/consumers/{cid}/keys"),
            Some(r#"{"name":"prod","scopes":["orders:read"],"expires_in":3600}"#),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.json);
    let secret = created.json["secret"].as_str().expect("secret").to_string();
    let key_id = created.json["key"]["id"]
        .as_str()
        .expect("key id")
        .to_string();
    assert!(secret.starts_with(&format!("rk_{key_id}_")));
    assert!(
        created.json["key"].get("secret_hash").is_none(),
        "digests never leave the store"
    );

    let listed = admin
        .admin("GET", &format!("/consumers/{cid}/keys"), None)
        .await;
    assert_eq!(listed.json["items"][0]["id"], key_id.as_str());
    assert!(
        listed.json.to_string().find(&secret[10..]).is_none(),
        "secrets are shown once"
    );

    let rotated = admin
        .admin(
            "POST",
            &format!("/keys/{key_id}/rotate"),
            Some(r#"{"overlap_seconds":60}"#),
        )
        .await;
    assert_eq!(rotated.status, 201);
    let new_secret = rotated.json["secret"].as_str().expect("secret");
    use rampart_store::ApiKeyStore;
    assert!(
        admin
            .store
            .verify_key(&secret)
            .await
            .expect("verify")
            .is_some(),
        "overlap"
    );
    assert!(admin
        .store
        .verify_key(new_secret)
        .await
        .expect("verify")
        .is_some());
    assert_eq!(
        admin
            .admin("POST", &format!("/keys/{key_id}/rotate"), None)
            .await
            .status,
        409,
        "already rotated"
    );
    assert_eq!(
        admin
            .admin("POST", &format!("/keys/{key_id}/revoke"), None)
            .await
            .status,
        200
    );
    assert!(admin
        .store
        .verify_key(&secret)
        .await
        .expect("verify")
        .is_none());

    let events = admin.admin("GET", "/audit/events", None).await;
    let actions: Vec<(&str, &str)> = events.json["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or(""),
                e["outcome"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("consumer.create", "success"),
            ("api_key.create", "success"),
            ("api_key.rotate", "success"),
            ("api_key.rotate", "failure"),
            ("api_key.revoke", "success"),
        ]
    );
    let first = &events.json["items"][0];
    assert!(first["actor"]
        .as_str()
        .is_some_and(|a| a.contains("bootstrap")));
    assert_eq!(first["source_ip"], "127.0.0.1");
    assert!(first["request_id"].as_str().is_some_and(|r| r.len() == 32));
    assert_eq!(first["summary"]["after"]["name"], "partner");
}

#[tokio::test]
async fn an_unreachable_store_fails_readiness_and_the_api_but_not_the_data_plane() {
    let admin = start().await;
    assert_eq!(
        admin.call(None, "GET", "/readyz", None, &[]).await.status,
        200
    );
    admin.store.close().await;
    let ready = admin.call(None, "GET", "/readyz", None, &[]).await;
    assert_eq!(ready.status, 503);
    assert!(
        ready.json["reasons"]
            .as_array()
            .is_some_and(|r| r.iter().any(|x| x
                .as_str()
                .is_some_and(|s| s.starts_with("store unreachable")))),
        "{}",
        ready.json
    );
    let api = admin.admin("GET", "/consumers", None).await;
    assert_eq!(api.status, 503);
    assert_eq!(api.headers["retry-after"], "1");
    // The proxy keeps serving.
    let client: hyper_util::client::legacy::Client<_, http_body_util::Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let response = client
        .get(
            format!("http://{}/still-up", admin.gateway_addr)
                .parse()
                .expect("uri"),
        )
        .await
        .expect("response");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn read_only_views_of_the_running_config() {
    let admin = start().await;
    let routes = admin.admin("GET", "/config/routes", None).await;
    assert_eq!(routes.json["items"][0]["name"], "all");
    let upstreams = admin.admin("GET", "/upstreams", None).await;
    assert_eq!(
        upstreams.json["echo"]["targets"][0]["target"],
        "builtin:echo"
    );
    assert_eq!(
        admin
            .call(None, "GET", "/upstreams", None, &[])
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn plans_are_set_through_the_api_and_usage_is_visible() {
    use rampart_store::{QuotaPeriod, UsageStore};
    let admin = start().await;
    let created = admin
        .admin(
            "POST",
            "/consumers",
            Some(r#"{"name":"metered","plan":{"daily_quota":1000,"rate_limit":{"requests":10,"per_seconds":1}}}"#),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.json);
    assert_eq!(created.json["plan"]["daily_quota"], 1000);
    let id = created.json["id"].as_str().expect("id").to_string();
    let bad = admin
        .admin(
            "PATCH",
            &format!("/consumers/{id}"),
            Some(r#"{"plan":{"monthly_quota":0}}"#),
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.json);
    assert_eq!(bad.json["errors"][0]["field"], "plan");
    let unknown = admin
        .admin(
            "PATCH",
            &format!("/consumers/{id}"),
            Some(r#"{"plan":{"dayly_quota":5}}"#),
        )
        .await;
    assert!(
        (400..500).contains(&unknown.status),
        "{} {}",
        unknown.status,
        unknown.json
    );

    let now = rampart_store::now_ms() / 1000;
    admin
        .store
        .add_usage(&id, &QuotaPeriod::Day.key(now), 7)
        .await
        .expect("usage");
    let usage = admin
        .admin("GET", &format!("/consumers/{id}/usage"), None)
        .await;
    assert_eq!(usage.status, 200, "{}", usage.json);
    assert_eq!(usage.json["daily"]["used"], 7);
    assert_eq!(usage.json["daily"]["plan_limit"], 1000);
    assert_eq!(usage.json["monthly"]["used"], 0);
    assert!(
        usage.json["daily"]["resets_in"]
            .as_i64()
            .expect("resets_in")
            <= 86_400
    );

    let cleared = admin
        .admin(
            "PATCH",
            &format!("/consumers/{id}"),
            Some(r#"{"plan":null}"#),
        )
        .await;
    assert_eq!(cleared.status, 200, "{}", cleared.json);
    assert!(cleared.json["plan"].is_null());
    let missing = admin.admin("GET", "/consumers/nope/usage", None).await;
    assert_eq!(missing.status, 404);

    // The assertion JWKS is public.
    let jwks = admin
        .call(None, "GET", "/.well-known/jwks.json", None, &[])
        .await;
    assert_eq!(jwks.status, 200);
    assert!(jwks.json["keys"].is_array());
}

#[tokio::test]
async fn admin_mutations_land_in_the_audit_log_with_verifiable_proofs() {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use rampart_audit::merkle::{verify_consistency, verify_inclusion, Hash};
    use rampart_audit::note::{self, Checkpoint, Verifier};

    let admin = start().await;
    for name in ["audited-a", "audited-b", "audited-c"] {
        let created = admin
            .admin(
                "POST",
                "/consumers",
                Some(&format!(r#"{{"name":"{name}","tenant":"secret-{name}"}}"#)),
            )
            .await;
        assert_eq!(created.status, 201);
    }
    let auditor = admin.token_with_role("auditor").await;
    let get_text = |path: &'static str, token: Option<String>| {
        let admin = &admin;
        async move {
            let client: hyper_util::client::legacy::Client<_, http_body_util::Full<bytes::Bytes>> =
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build(hyper_util::client::legacy::connect::HttpConnector::new());
            let mut request = http::Request::get(format!("http://{}{path}", admin.addr));
            if let Some(token) = token {
                request = request.header("authorization", format!("Bearer {token}"));
            }
            let response = client
                .request(request.body(Default::default()).expect("request"))
                .await
                .expect("response");
            let status = response.status().as_u16();
            let body = http_body_util::BodyExt::collect(response.into_body())
                .await
                .expect("body")
                .to_bytes();
            (status, String::from_utf8_lossy(&body).to_string())
        }
    };
    let (status, _) = get_text("/audit/checkpoint", None).await;
    assert_eq!(status, 401);
    let (status, keys) = get_text("/audit/key", Some(auditor.clone())).await;
    assert_eq!(status, 200);
    let verifiers: Vec<Verifier> = keys
        .lines()
        .map(|k| Verifier::parse(k).expect("verifier key"))
        .collect();
    let (status, signed) = get_text("/audit/checkpoint", Some(auditor.clone())).await;
    assert_eq!(status, 200);
    let checkpoint =
        Checkpoint::parse(note::open(&signed, &verifiers).expect("signed")).expect("checkpoint");
    // Three creations and the auditor token's creation.
    assert!(checkpoint.size >= 4, "{checkpoint:?}");

    let (status, lines) = get_text("/audit/entries?start=0", Some(auditor.clone())).await;
    assert_eq!(status, 200);
    let entries: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(entries.len() as u64, admin.audit_log.size());
    let bytes = STANDARD
        .decode(entries[0]["entry"].as_str().expect("entry"))
        .expect("base64");
    let first: serde_json::Value = serde_json::from_slice(&bytes).expect("canonical json");
    assert_eq!(first["action"], "consumer.create");
    assert_eq!(first["outcome"], "success");
    // Fields marked sensitive (here the tenant) are sealed, never in clear.
    assert!(!String::from_utf8_lossy(&bytes).contains("secret-audited-a"));
    assert!(
        first["details"]["after"]["tenant"]["sealed"].is_string(),
        "{first}"
    );

    let proof = admin
        .call(
            Some(&auditor),
            "GET",
            &format!("/audit/proof/inclusion?index=0&size={}", checkpoint.size),
            None,
            &[],
        )
        .await;
    assert_eq!(proof.status, 200, "{}", proof.json);
    let hash = |v: &serde_json::Value| -> Hash {
        Hash::try_from(
            STANDARD
                .decode(v.as_str().expect("b64"))
                .expect("b64")
                .as_slice(),
        )
        .expect("32 bytes")
    };
    let hashes: Vec<Hash> = proof.json["hashes"]
        .as_array()
        .expect("hashes")
        .iter()
        .map(hash)
        .collect();
    verify_inclusion(
        0,
        checkpoint.size,
        &rampart_audit::merkle::leaf_hash(&bytes),
        &hashes,
        &checkpoint.root,
    )
    .expect("entry 0 is in the signed checkpoint");

    // Later changes extend the same history.
    admin
        .admin("POST", "/consumers", Some(r#"{"name":"audited-d"}"#))
        .await;
    let fresh = admin.admin("POST", "/audit/checkpoint", None).await;
    assert_eq!(fresh.status, 200);
    let size = admin.audit_log.size();
    let consistency = admin
        .call(
            Some(&auditor),
            "GET",
            &format!(
                "/audit/proof/consistency?from={}&to={size}",
                checkpoint.size
            ),
            None,
            &[],
        )
        .await;
    assert_eq!(consistency.status, 200, "{}", consistency.json);
    let hashes: Vec<Hash> = consistency.json["hashes"]
        .as_array()
        .expect("hashes")
        .iter()
        .map(hash)
        .collect();
    verify_consistency(
        checkpoint.size,
        size,
        &hashes,
        &checkpoint.root,
        &hash(&consistency.json["to_root"]),
    )
    .expect("consistent");

    // Out-of-range requests are 400 problems.
    for path in [
        format!("/audit/proof/inclusion?index={size}&size={size}"),
        format!("/audit/proof/consistency?from={}&to=1", size),
        format!("/audit/proof/consistency?from=1&to={}", size + 5),
        format!("/audit/entries?start={}&end=1", size),
        "/audit/entries?start=0&end=5000".to_string(),
        "/audit/proof/inclusion?index=-1&size=2".to_string(),
    ] {
        let answer = admin.call(Some(&auditor), "GET", &path, None, &[]).await;
        assert_eq!(answer.status, 400, "{path}: {}", answer.json);
        assert!(answer.json["request_id"].is_string(), "{path}");
    }
    // Auditors cannot force a checkpoint.
    let refused = admin
        .call(Some(&auditor), "POST", "/audit/checkpoint", None, &[])
        .await;
    assert_eq!(refused.status, 403);
}

#[tokio::test]
async fn bodies_must_be_one_json_value_sent_as_application_json() {
    let admin = start().await;
    let send = |body: &'static str, content_type: &'static str| {
        let admin = &admin;
        async move {
            admin
                .call(
                    Some(&admin.token),
                    "POST",
                    "/consumers",
                    Some(body),
                    &[("content-type", content_type)],
                )
                .await
        }
    };
    for trailing in [
        r#"{"name":"a"}garbage"#,
        r#"{"name":"a"}{"name":"b"}"#,
        r#"{"name":"a"} 1"#,
    ] {
        let answer = send(trailing, "application/json").await;
        assert_eq!(answer.status, 400, "{trailing}: {}", answer.json);
        assert_eq!(answer.json["type"], "urn:rampart:problem:malformed-body");
        assert_eq!(
            answer.headers["content-type"], "application/problem+json",
            "{trailing}"
        );
    }
    for content_type in [
        "application/jsonx",
        "text/json",
        "application/json-seq",
        "application/merge-patch+json",
        "text/plain; note=application/json",
        "application/json; charset=latin1",
    ] {
        let answer = send(r#"{"name":"a"}"#, content_type).await;
        assert_eq!(answer.status, 415, "{content_type}: {}", answer.json);
        assert_eq!(
            answer.json["type"],
            "urn:rampart:problem:unsupported-media-type"
        );
    }
    // An optional body (a rotation's settings) is held to the same rules.
    let consumer = send(r#"{"name":"k"}"#, "application/json").await;
    let id = consumer.json["id"].as_str().expect("id").to_string();
    let key = admin
        .admin("POST", &format!("/consumers/{id}/keys"), Some("{}"))
        .await;
    let key_id = key.json["key"]["id"].as_str().expect("key id").to_string();
    let rotate = admin
        .call(
            Some(&admin.token),
            "POST",
            &format!("/keys/{key_id}/rotate"),
            Some(r#"{"overlap_seconds":5}"#),
            &[("content-type", "text/plain")],
        )
        .await;
    assert_eq!(rotate.status, 415);
    let rotate = admin
        .admin(
            "POST",
            &format!("/keys/{key_id}/rotate"),
            Some(r#"{"overlap_seconds":5} x"#),
        )
        .await;
    assert_eq!(rotate.status, 400);
    // Trailing whitespace, parameters and the media type's case are fine.
    let ok = send(
        "{\"name\":\"b\"} \r\n\t",
        "Application/JSON; charset=\"UTF-8\"",
    )
    .await;
    assert_eq!(ok.status, 201, "{}", ok.json);
    let all = admin.admin("GET", "/consumers", None).await;
    assert_eq!(all.json["items"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn bans_are_listed_and_lifted_everywhere_and_audited() {
    use rampart_store::SharedState;
    let admin = start().await;
    let before = rampart_store::now_ms();
    for ip in ["203.0.113.7", "2001:db8::7"] {
        admin
            .shared
            .set_flag(&format!("ban:{ip}"), std::time::Duration::from_secs(3600))
            .await
            .expect("ban");
    }
    let auditor = admin.token_with_role("auditor").await;
    let list = admin.call(Some(&auditor), "GET", "/bans", None, &[]).await;
    assert_eq!(list.status, 200, "{}", list.json);
    assert_eq!(list.json["truncated"], false);
    let mut ips: Vec<&str> = list.json["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|b| b["ip"].as_str())
        .collect();
    ips.sort();
    assert_eq!(ips, ["2001:db8::7", "203.0.113.7"]);
    let expires = list.json["items"][0]["expires_at"]
        .as_i64()
        .expect("expiry");
    assert!(expires >= before + 3_599_000, "{expires}");
    let one = admin.admin("GET", "/bans?limit=1", None).await;
    assert_eq!(one.json["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(one.json["truncated"], true);
    assert_eq!(admin.admin("GET", "/bans?limit=0", None).await.status, 400);

    // Lifting needs the operator role, and is announced to every instance.
    let denied = admin
        .call(Some(&auditor), "DELETE", "/bans/203.0.113.7", None, &[])
        .await;
    assert_eq!(denied.status, 403);
    let mut announced = admin
        .shared
        .subscribe(rampart_store::INVALIDATION_CHANNEL)
        .await
        .expect("subscribe");
    // Another spelling of the same address lifts the same ban.
    let lifted = admin.admin("DELETE", "/bans/2001:0db8:0::7", None).await;
    assert_eq!(lifted.status, 204, "{}", lifted.json);
    let message = tokio::time::timeout(std::time::Duration::from_secs(2), announced.recv())
        .await
        .expect("announced")
        .expect("message");
    assert_eq!(message, "ban:2001:db8::7");
    assert!(!admin.shared.flag("ban:2001:db8::7").await.expect("flag"));
    assert!(admin.shared.flag("ban:203.0.113.7").await.expect("flag"));
    let again = admin.admin("DELETE", "/bans/2001:db8::7", None).await;
    assert_eq!(again.status, 404);
    assert_eq!(
        admin.admin("DELETE", "/bans/not-an-ip", None).await.status,
        400
    );
    let list = admin.admin("GET", "/bans", None).await;
    assert_eq!(list.json["items"].as_array().map(Vec::len), Some(1));

    // Every attempt is audited, the refused ones too.
    let events = admin.admin("GET", "/audit/events", None).await;
    let unbans: Vec<(&str, &str)> = events.json["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| e["action"] == "client.unban")
        .map(|e| {
            (
                e["resource"].as_str().unwrap_or(""),
                e["outcome"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        unbans,
        [
            ("ip:2001:0db8:0::7", "success"),
            ("ip:2001:db8::7", "failure"),
            ("ip:not-an-ip", "failure"),
        ]
    );
}

#[tokio::test]
async fn a_deleted_consumer_takes_its_keys_along_and_is_audited() {
    use rampart_store::{ApiKeyStore, SharedState};
    let admin = start().await;
    let consumer = admin
        .admin("POST", "/consumers", Some(r#"{"name":"leaving"}"#))
        .await;
    let id = consumer.json["id"].as_str().expect("id").to_string();
    let etag = consumer.headers["etag"].to_str().expect("etag").to_string();
    let key = admin
        .admin("POST", &format!("/consumers/{id}/keys"), Some("{}"))
        .await;
    let key_id = key.json["key"]["id"].as_str().expect("key id").to_string();
    let secret = key.json["secret"].as_str().expect("secret").to_string();
    // Found by its name too.
    let named = admin.admin("GET", "/consumers?name=leaving", None).await;
    assert_eq!(named.json["items"][0]["id"], id.as_str());
    let unnamed = admin.admin("GET", "/consumers?name=staying", None).await;
    assert_eq!(unnamed.json["items"].as_array().map(Vec::len), Some(0));
    let auditor = admin.token_with_role("auditor").await;
    assert_eq!(
        admin
            .call(
                Some(&auditor),
                "DELETE",
                &format!("/consumers/{id}"),
                None,
                &[]
            )
            .await
            .status,
        403
    );
    let stale = admin
        .call(
            Some(&admin.token),
            "DELETE",
            &format!("/consumers/{id}"),
            None,
            &[("if-match", "\"v99\"")],
        )
        .await;
    assert_eq!(stale.status, 412);
    let mut announced = admin
        .shared
        .subscribe(rampart_store::INVALIDATION_CHANNEL)
        .await
        .expect("subscribe");
    let deleted = admin
        .call(
            Some(&admin.token),
            "DELETE",
            &format!("/consumers/{id}"),
            None,
            &[("if-match", &etag)],
        )
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.json);
    let message = tokio::time::timeout(std::time::Duration::from_secs(2), announced.recv())
        .await
        .expect("announced")
        .expect("message");
    assert_eq!(message, format!("consumer:{id}"));
    assert_eq!(
        admin
            .admin("GET", &format!("/consumers/{id}"), None)
            .await
            .status,
        404
    );
    assert_eq!(
        admin
            .admin("GET", &format!("/keys/{key_id}"), None)
            .await
            .status,
        404
    );
    assert!(admin
        .store
        .verify_key(&secret)
        .await
        .expect("verify")
        .is_none());
    assert_eq!(
        admin
            .admin("DELETE", &format!("/consumers/{id}"), None)
            .await
            .status,
        404
    );
    let events = admin.admin("GET", "/audit/events", None).await;
    let deletes: Vec<&serde_json::Value> = events.json["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| e["action"] == "consumer.delete")
        .collect();
    let outcomes: Vec<&str> = deletes
        .iter()
        .filter_map(|e| e["outcome"].as_str())
        .collect();
    assert_eq!(outcomes, ["failure", "success", "failure"]);
    assert_eq!(deletes[1]["summary"]["keys_deleted"], 1);
    assert_eq!(deletes[1]["summary"]["before"]["name"], "leaving");
}
