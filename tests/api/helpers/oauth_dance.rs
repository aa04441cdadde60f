//! The OAuth dance against the built-in sandbox, and the sandbox's control API.

use super::*;

/// The OAuth dance against the built-in sandbox, over real HTTP.
impl TestApp {
    /// Clicks "Connect": returns the provider's authorize URL the app redirected to.
    pub async fn start_connect(&self, provider: &str, redirect_path: &str) -> reqwest::Response {
        self.get(&format!(
            "/api/integrations/{provider}/oauth/start?redirect_path={}",
            connecthub::web::urlencode(redirect_path)
        ))
        .await
    }

    /// Answers the sandbox consent page; returns where the sandbox sends the browser
    /// (the app's callback URL with code or error).
    pub async fn consent(
        &self,
        authorize_url: &str,
        decision: &str,
        account: Option<&str>,
    ) -> String {
        let page = self.client.get(authorize_url).send().await.unwrap();
        assert_eq!(page.status(), 200, "consent page");
        let html = page.text().await.unwrap();
        let first_account = html
            .split(r#"name="account" value=""#)
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("consent page lists accounts")
            .to_string();
        let url = reqwest::Url::parse(authorize_url).unwrap();
        let mut form: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        form.push(("decision".into(), decision.into()));
        form.push((
            "account".into(),
            account.map(str::to_string).unwrap_or(first_account),
        ));
        let action = format!(
            "{}://{}{}",
            url.scheme(),
            url.host_str().unwrap(),
            url.port().map(|p| format!(":{p}")).unwrap_or_default()
        );
        let response = self
            .client
            .post(format!("{action}{}", url.path()))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303, "consent answer");
        location(&response)
    }

    /// Follows the provider's redirect back into the app.
    pub async fn callback(&self, callback_url: &str) -> reqwest::Response {
        self.client.get(callback_url).send().await.unwrap()
    }

    /// The whole flow; returns the callback's response (a 303 back into the app).
    pub async fn connect(&self, provider: &str, account: Option<&str>) -> reqwest::Response {
        let start = self.start_connect(provider, "/admin/clients").await;
        assert_eq!(start.status(), 302, "start redirects to the provider");
        let callback = self.consent(&location(&start), "allow", account).await;
        self.callback(&callback).await
    }

    /// The toast the page shows after a redirect.
    pub async fn toast_on(&self, path: &str) -> String {
        let html = self.get_html(path).await;
        html.split(r#"<div class="toast toast-"#)
            .nth(1)
            .and_then(|rest| rest.split_once("\">"))
            .map(|(kind, rest)| {
                format!("{kind}: {}", unescape(rest.split("</div>").next().unwrap()))
            })
            .unwrap_or_default()
    }

    pub async fn clients(&self) -> Vec<connecthub::clients::Client> {
        use connecthub::db::schema::clients;
        self.db(|conn| {
            clients::table
                .order(clients::created_at.asc())
                .select(connecthub::clients::Client::as_select())
                .load(conn)
        })
        .await
    }

    /// Sets sandbox faults (see src/sandbox/control.rs).
    pub async fn sandbox_faults(&self, body: serde_json::Value) {
        let response = self
            .client
            .post(self.url("/sandbox/_control/faults"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }

    pub async fn sandbox_stats(&self, provider: &str) -> serde_json::Value {
        self.get(&format!("/sandbox/_control/stats?provider={provider}"))
            .await
            .json()
            .await
            .unwrap()
    }

    /// Whether the sandbox still accepts a token (RFC 7662-style introspection).
    pub async fn sandbox_token_active(&self, provider: &str, token: &str) -> bool {
        let response = self
            .client
            .post(self.url(&format!("/sandbox/{provider}/oauth/introspect")))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = response.json().await.unwrap();
        body["active"] == serde_json::json!(true)
    }
}
