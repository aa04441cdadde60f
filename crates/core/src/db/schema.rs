//! Table definitions shared by both backends: ids are `Text`, times are `Timestamp` (UTC).

diesel::table! {
    users (id) {
        id -> Text,
        email -> Text,
        display_name -> Text,
        password_hash -> Text,
        role -> Text,
        disabled_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        user_id -> Nullable<Text>,
        data -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    audit_log (id) {
        id -> BigInt,
        at -> Timestamp,
        actor_type -> Text,
        actor_id -> Nullable<Text>,
        actor_label -> Text,
        action -> Text,
        target_type -> Nullable<Text>,
        target_id -> Nullable<Text>,
        outcome -> Text,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        details -> Text,
        prev_hash -> Text,
        hash -> Text,
    }
}

diesel::joinable!(sessions -> users (user_id));

diesel::table! {
    oauth_states (id) {
        id -> Text,
        provider -> Text,
        user_id -> Text,
        session_binding -> Text,
        pkce_verifier -> Text,
        redirect_path -> Text,
        params -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        consumed_at -> Nullable<Timestamp>,
        connection_config -> Text,
    }
}

diesel::table! {
    clients (id) {
        id -> Text,
        owner_user_id -> Text,
        provider -> Text,
        provider_account_id -> Text,
        display_name -> Text,
        status -> Text,
        auth_type -> Text,
        tags -> Text,
        profile -> Text,
        scopes -> Text,
        is_default -> Bool,
        connected_at -> Timestamp,
        last_refreshed_at -> Nullable<Timestamp>,
        last_used_at -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        search_text -> Text,
        end_user_id -> Nullable<Text>,
        connection_config -> Text,
        expiry_order -> Timestamp,
    }
}

diesel::table! {
    client_tags (tag, client_id) {
        tag -> Text,
        client_id -> Text,
    }
}

diesel::table! {
    credentials (client_id) {
        client_id -> Text,
        key_id -> Text,
        access_token -> Nullable<Text>,
        refresh_token -> Nullable<Text>,
        api_key -> Nullable<Text>,
        token_type -> Text,
        expires_at -> Nullable<Timestamp>,
        refresh_lease_until -> Nullable<Timestamp>,
        refresh_failures -> Integer,
        updated_at -> Timestamp,
        retry_after -> Nullable<Timestamp>,
        refresh_at -> Nullable<Timestamp>,
        refresh_started_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Text,
        name -> Text,
        prefix -> Text,
        key_hash -> Text,
        scopes -> Text,
        created_by -> Text,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
        allowed_ips -> Nullable<Text>,
    }
}

diesel::table! {
    /// Usage roll-ups as materialised grouping sets (see the 000007 and 2026-12-08 migrations): calls per
    /// hour or day and provider, by endpoint, by client, or by both; `le_N` is a latency
    /// histogram bucket.
    api_usage_rollup (grouping_set, starts_at, provider, endpoint, client_id, user_id) {
        grouping_set -> Text,
        starts_at -> Timestamp,
        provider -> Text,
        endpoint -> Text,
        client_id -> Text,
        user_id -> Text,
        calls -> Integer,
        errors -> Integer,
        rate_limited -> Integer,
        duration_ms_sum -> BigInt,
        le_10 -> Integer,
        le_25 -> Integer,
        le_50 -> Integer,
        le_100 -> Integer,
        le_250 -> Integer,
        le_500 -> Integer,
        le_1000 -> Integer,
        le_2500 -> Integer,
        le_5000 -> Integer,
        le_10000 -> Integer,
        over_10000 -> Integer,
    }
}

diesel::table! {
    /// Kustomer conversations created per caller's external id (NULL while being created).
    synced_conversations (client_id, external_id) {
        client_id -> Text,
        external_id -> Text,
        conversation_id -> Nullable<Text>,
        customer_id -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    /// The team's own end users, by the team's id for them (`external_id`).
    end_users (id) {
        id -> Text,
        external_id -> Text,
        email -> Nullable<Text>,
        display_name -> Nullable<Text>,
        first_seen_at -> Timestamp,
        last_seen_at -> Timestamp,
    }
}

diesel::table! {
    /// Connect links the team's backend asked for (the token only as a SHA-256).
    connect_sessions (id) {
        id -> Text,
        token_hash -> Text,
        end_user_id -> Text,
        owner_user_id -> Text,
        api_key_id -> Text,
        allowed_providers -> Text,
        tags -> Text,
        success_url -> Nullable<Text>,
        error_url -> Nullable<Text>,
        allowed_origins -> Text,
        reconnect_client_id -> Nullable<Text>,
        status -> Text,
        completed_client_id -> Nullable<Text>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    /// One row (id 1): the hosted connect page's branding and its sealed signing secret.
    connect_settings (id) {
        id -> Integer,
        product_name -> Text,
        logo_url -> Nullable<Text>,
        accent_color -> Text,
        signing_secret -> Text,
        updated_at -> Timestamp,
    }
}

diesel::joinable!(clients -> users (owner_user_id));
diesel::joinable!(clients -> end_users (end_user_id));
diesel::joinable!(connect_sessions -> end_users (end_user_id));
diesel::joinable!(credentials -> clients (client_id));
diesel::joinable!(client_tags -> clients (client_id));
diesel::joinable!(api_keys -> users (created_by));
diesel::joinable!(synced_conversations -> clients (client_id));
diesel::allow_tables_to_appear_in_same_query!(
    users,
    client_tags,
    sessions,
    audit_log,
    oauth_states,
    clients,
    credentials,
    api_keys,
    synced_conversations,
    api_usage_rollup,
    end_users,
    connect_sessions,
    connect_settings,
);

diesel::table! {
    jobs (id) {
        id -> BigInt,
        kind -> Text,
        payload -> Text,
        queue_key -> Nullable<Text>,
        state -> Text,
        run_at -> Timestamp,
        attempts -> Integer,
        max_attempts -> Integer,
        lease_until -> Nullable<Timestamp>,
        locked_by -> Nullable<Text>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    webhook_endpoints (id) {
        id -> Text,
        url -> Text,
        description -> Text,
        event_types -> Text,
        enabled -> Bool,
        key_id -> Text,
        secret -> Text,
        previous_secret -> Nullable<Text>,
        previous_secret_until -> Nullable<Timestamp>,
        failing_since -> Nullable<Timestamp>,
        disabled_reason -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    webhook_events (id) {
        id -> Text,
        event_type -> Text,
        body -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    webhook_attempts (id) {
        id -> BigInt,
        endpoint_id -> Text,
        event_id -> Text,
        job_id -> BigInt,
        at -> Timestamp,
        status -> Nullable<Integer>,
        duration_ms -> Integer,
        succeeded -> Bool,
        error -> Nullable<Text>,
        response_excerpt -> Text,
    }
}

diesel::table! {
    provider_webhooks (id) {
        id -> Text,
        provider -> Text,
        client_ids -> Text,
        body -> Text,
        received_at -> Timestamp,
    }
}

diesel::table! {
    sync_records (id) {
        id -> BigInt,
        client_id -> Text,
        model -> Text,
        external_id -> Text,
        payload -> Text,
        hash -> Text,
        first_seen -> Timestamp,
        last_modified -> Timestamp,
        deleted_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    sync_seen (client_id, model, external_id) {
        client_id -> Text,
        model -> Text,
        external_id -> Text,
    }
}

diesel::table! {
    sync_states (client_id, model) {
        client_id -> Text,
        model -> Text,
        status -> Text,
        checkpoint -> Nullable<Text>,
        last_started_at -> Nullable<Timestamp>,
        last_finished_at -> Nullable<Timestamp>,
        last_success_started_at -> Nullable<Timestamp>,
        last_outcome -> Nullable<Text>,
        last_duration_ms -> Nullable<BigInt>,
        added -> Integer,
        updated -> Integer,
        deleted -> Integer,
        last_error -> Nullable<Text>,
        next_run_at -> Nullable<Timestamp>,
        consecutive_failures -> Integer,
    }
}

diesel::table! {
    sync_runs (id) {
        id -> BigInt,
        client_id -> Text,
        model -> Text,
        finished_at -> Timestamp,
        succeeded -> Bool,
        duration_ms -> BigInt,
    }
}

diesel::allow_tables_to_appear_in_same_query!(webhook_attempts, webhook_events);

diesel::table! {
    refresh_attempts (id) {
        id -> BigInt,
        client_id -> Text,
        at -> Timestamp,
        trigger_kind -> Text,
        outcome -> Text,
        duration_ms -> Integer,
        error_code -> Nullable<Text>,
        error_description -> Nullable<Text>,
    }
}

diesel::joinable!(refresh_attempts -> clients (client_id));
diesel::allow_tables_to_appear_in_same_query!(refresh_attempts, clients);
diesel::allow_tables_to_appear_in_same_query!(sync_states, clients);

diesel::table! {
    provider_settings (name) {
        name -> Text,
        enabled -> Nullable<Bool>,
        client_id -> Nullable<Text>,
        client_secret -> Nullable<Text>,
        scopes -> Nullable<Text>,
        authorize_params -> Nullable<Text>,
        definition -> Nullable<Text>,
        updated_at -> Timestamp,
    }
}
