//! Built-in stand-ins for Klaviyo and Kustomer (filled in by the sandbox work).
