//! `decide()`: a pure function from (route, command, inputs) to where the command goes.

use crate::commands::CommandInfo;
use crate::table::InterlayRoute;

/// Which side of a route serves a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The interlay's own endpoint.
    Old,
    /// The migration's target endpoint.
    New,
}

/// Per-request facts that are not part of the command itself. Time and identity are inputs, so
/// `decide()` stays pure.
#[derive(Debug, Clone, Copy, Default)]
pub struct Inputs<'a> {
    /// The proxy's id of the client connection.
    pub conn_id: u64,
    /// The first key of the command, if it has one (raw bytes, hash tags not yet applied).
    pub key: Option<&'a [u8]>,
    /// Client identity (AUTH user or CLIENT SETNAME), if known.
    pub identity: Option<&'a [u8]>,
    /// Milliseconds since the Unix epoch.
    pub now_ms: u64,
}

/// Where one command goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The side whose reply the client gets.
    pub serve: Side,
}

/// Decides where a command is served. Today: the interlay's endpoint, or the target once a
/// migration has switched the interlay over.
#[inline]
pub fn decide(route: &InterlayRoute, _cmd: &CommandInfo, _inputs: &Inputs<'_>) -> Decision {
    match &route.migration {
        Some(m) if m.serve_new => Decision { serve: Side::New },
        _ => Decision { serve: Side::Old },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::lookup;
    use crate::table::MigrationRoute;

    #[test]
    fn serves_old_without_migration_and_new_after_switch() {
        let get = lookup(b"get").unwrap();
        let mut route = InterlayRoute::direct("old");
        let inputs = Inputs::default();
        assert_eq!(decide(&route, get, &inputs).serve, Side::Old);
        route.migration = Some(MigrationRoute {
            id: "m".into(),
            target: "new".into(),
            serve_new: false,
        });
        assert_eq!(decide(&route, get, &inputs).serve, Side::Old);
        route.migration.as_mut().unwrap().serve_new = true;
        assert_eq!(decide(&route, get, &inputs).serve, Side::New);
    }
}
