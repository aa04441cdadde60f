DROP TABLE api_usage_rollup;
