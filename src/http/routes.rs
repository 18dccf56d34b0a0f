//! The endpoints, as the kavachOS host registers them.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Checkout,
    Portal,
    Subscription,
    Status,
    ChangePlan,
    Cancel,
    Resume,
    Sync,
    Invoices,
    Webhook,
}

#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    pub route: Route,
    pub method: &'static str,
    pub path: &'static str,
    pub require_auth: bool,
    pub description: &'static str,
    /// `metadata.rateLimit` for the host: `(window in seconds, max requests)`
    /// per client IP.
    pub rate_limit: Option<(u32, u32)>,
}

pub const ENDPOINTS: [Endpoint; 10] = [
    Endpoint {
        route: Route::Checkout,
        method: "POST",
        path: "/auth/stripe/checkout",
        require_auth: true,
        description: "Create a Stripe Checkout session for the signed-in user",
        rate_limit: None,
    },
    Endpoint {
        route: Route::Portal,
        method: "POST",
        path: "/auth/stripe/portal",
        require_auth: true,
        description: "Create a Stripe billing portal session for the signed-in user",
        rate_limit: None,
    },
    Endpoint {
        route: Route::Subscription,
        method: "GET",
        path: "/auth/stripe/subscription",
        require_auth: true,
        description: "The signed-in user's subscription",
        rate_limit: None,
    },
    Endpoint {
        route: Route::Status,
        method: "GET",
        path: "/auth/stripe/status",
        require_auth: true,
        description: "The signed-in user's billing status (active, plan, trial, cancellation)",
        rate_limit: None,
    },
    Endpoint {
        route: Route::ChangePlan,
        method: "POST",
        path: "/auth/stripe/change-plan",
        require_auth: true,
        description: "Change the signed-in user's plan (or preview the change)",
        rate_limit: None,
    },
    Endpoint {
        route: Route::Cancel,
        method: "POST",
        path: "/auth/stripe/cancel",
        require_auth: true,
        description: "Cancel the signed-in user's subscription at period end",
        rate_limit: None,
    },
    Endpoint {
        route: Route::Resume,
        method: "POST",
        path: "/auth/stripe/resume",
        require_auth: true,
        description: "Undo the signed-in user's scheduled cancellation",
        rate_limit: None,
    },
    Endpoint {
        route: Route::Sync,
        method: "POST",
        path: "/auth/stripe/sync",
        require_auth: true,
        description: "Store the signed-in user's subscriptions from Stripe (the checkout success page's call)",
        // Each sync calls Stripe: at most 30 a minute per client IP.
        rate_limit: Some((60, 30)),
    },
    Endpoint {
        route: Route::Invoices,
        method: "GET",
        path: "/auth/stripe/invoices",
        require_auth: true,
        description: "The signed-in user's invoices, from Stripe (?limit=&startingAfter=)",
        rate_limit: Some((60, 30)),
    },
    Endpoint {
        route: Route::Webhook,
        method: "POST",
        path: "/auth/stripe/webhook",
        require_auth: false,
        description: "Stripe webhook receiver (verified with the Stripe-Signature header)",
        rate_limit: None,
    },
];

/// Largest JSON body the authenticated endpoints read; theirs are tiny.
pub const MAX_JSON_BODY_BYTES: u64 = 64 * 1024;

impl Route {
    pub fn endpoint(self) -> &'static Endpoint {
        match self {
            Route::Checkout => &ENDPOINTS[0],
            Route::Portal => &ENDPOINTS[1],
            Route::Subscription => &ENDPOINTS[2],
            Route::Status => &ENDPOINTS[3],
            Route::ChangePlan => &ENDPOINTS[4],
            Route::Cancel => &ENDPOINTS[5],
            Route::Resume => &ENDPOINTS[6],
            Route::Sync => &ENDPOINTS[7],
            Route::Invoices => &ENDPOINTS[8],
            Route::Webhook => &ENDPOINTS[9],
        }
    }

    pub fn from_path(path: &str) -> Option<Self> {
        ENDPOINTS.iter().find(|e| e.path == path).map(|e| e.route)
    }
}

/// The contract's routing: strip `base_path`, drop one trailing slash, match
/// method and path. `None` means the request is not ours.
pub fn match_route(method: &str, path: &str, base_path: &str) -> Option<Route> {
    let base = base_path.trim_end_matches('/');
    let rest = path.strip_prefix(base)?;
    if !rest.is_empty() && !rest.starts_with('/') {
        return None;
    }
    let rest = if rest.len() > 1 {
        rest.strip_suffix('/').unwrap_or(rest)
    } else {
        rest
    };
    ENDPOINTS
        .iter()
        .find(|e| e.path == rest && e.method.eq_ignore_ascii_case(method))
        .map(|e| e.route)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing() {
        assert_eq!(
            match_route("POST", "/api/kavach/auth/stripe/webhook", "/api/kavach"),
            Some(Route::Webhook)
        );
        assert_eq!(
            match_route(
                "GET",
                "/api/kavach/auth/stripe/subscription/",
                "/api/kavach/"
            ),
            Some(Route::Subscription)
        );
        assert_eq!(
            match_route("GET", "/auth/stripe/subscription", ""),
            Some(Route::Subscription)
        );
        assert_eq!(
            match_route("GET", "/api/kavach/auth/stripe/webhook", "/api/kavach"),
            None
        );
        assert_eq!(
            match_route("POST", "/api/kavachx/auth/stripe/webhook", "/api/kavach"),
            None
        );
        assert_eq!(
            match_route("POST", "/other/auth/stripe/webhook", "/api/kavach"),
            None
        );
    }
}
