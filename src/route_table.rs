//! The route table: every route is registered through `Table::at` (or `Table::any`), which
//! also writes it down when a listing is asked for, so `startup::route_table()` returns
//! exactly what the server answers and the bad-input suite covers a new route without
//! being told about it. Registering with actix's own `.route(…)` would skip the listing;
//! a test refuses that spelling in `src/`.

use actix_web::http::Method;
use actix_web::{web, FromRequest, Handler, Responder};
use std::cell::RefCell;

/// One route: its method (`None` for a route that takes every method, such as the proxy)
/// and its path template as actix reads it (`/admin/clients/{id}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteEntry {
    pub method: Option<Method>,
    pub path: String,
}

struct Listing {
    prefixes: Vec<String>,
    routes: Vec<RouteEntry>,
}

thread_local! {
    // Only set while `listed` runs on this thread: serving never pays for the listing.
    static LISTING: RefCell<Option<Listing>> = const { RefCell::new(None) };
}

fn note(method: Option<Method>, path: &str) {
    LISTING.with(|listing| {
        if let Some(listing) = listing.borrow_mut().as_mut() {
            let path = format!("{}{path}", listing.prefixes.concat());
            listing.routes.push(RouteEntry { method, path });
        }
    });
}

/// Runs `register` (which builds routes) and returns the routes it registered, in order.
pub fn listed(register: impl FnOnce()) -> Vec<RouteEntry> {
    LISTING.with(|listing| {
        *listing.borrow_mut() = Some(Listing {
            prefixes: Vec::new(),
            routes: Vec::new(),
        })
    });
    register();
    LISTING
        .with(|listing| listing.borrow_mut().take())
        .map(|listing| listing.routes)
        .unwrap_or_default()
}

/// A scope whose routes are listed under its prefix.
pub fn scope(
    prefix: &'static str,
    inner: impl FnOnce(&mut web::ServiceConfig),
) -> actix_web::Scope {
    web::scope(prefix).configure(|cfg| {
        push_prefix(prefix);
        inner(cfg);
        pop_prefix();
    })
}

fn push_prefix(prefix: &str) {
    LISTING.with(|listing| {
        if let Some(listing) = listing.borrow_mut().as_mut() {
            listing.prefixes.push(prefix.to_string());
        }
    });
}

fn pop_prefix() {
    LISTING.with(|listing| {
        if let Some(listing) = listing.borrow_mut().as_mut() {
            listing.prefixes.pop();
        }
    });
}

pub trait Table {
    /// Registers `handler` for `method` on `path`.
    fn at<F, Args>(&mut self, method: Method, path: &str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static;

    /// Registers `handler` for every method on `path`.
    fn any<F, Args>(&mut self, path: &str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static;

    /// Registers a resource built by hand (for its own app data), listed as `method` on
    /// `path`: the builder adds the route for that method.
    fn resource_at(
        &mut self,
        method: Method,
        path: &str,
        resource: impl FnOnce(actix_web::Resource) -> actix_web::Resource,
    ) -> &mut Self;
}

impl Table for web::ServiceConfig {
    fn at<F, Args>(&mut self, method: Method, path: &str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        note(Some(method.clone()), path);
        self.route(path, web::method(method).to(handler))
    }

    fn any<F, Args>(&mut self, path: &str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        note(None, path);
        self.route(path, web::route().to(handler))
    }

    fn resource_at(
        &mut self,
        method: Method,
        path: &str,
        resource: impl FnOnce(actix_web::Resource) -> actix_web::Resource,
    ) -> &mut Self {
        note(Some(method.clone()), path);
        self.service(resource(web::resource(path)))
    }
}
