//! Attaching members to a migration: `POST /migrations/{m}/api/{a}` and
//! `POST /migrations/{m}/interlay/{i}`, with the seed's validation and texts.

use serde_json::Value;

use crate::body::{check_description, Body};
use crate::control::{org_mut, Control};
use crate::member_rules::parse_rules;
use crate::model::{resolve, ApiMember, Binding, InterlayMember, MemberState};
use crate::ops_migrations::{find_migration, step};
use crate::rules::DataRule;
use crate::status::Action;
use crate::strategy::Strategy;
use crate::ControlError;

/// Seed text: the API is held by another active migration.
pub const API_ACTIVE: &str = "Api Schema already has an active migration";
/// Seed text: the interlay is held by another active migration.
pub const INTERLAY_ACTIVE: &str = "Interlay Schema already has an active migration";

fn read_bindings(v: Option<Value>) -> Result<Vec<Binding>, ControlError> {
    let Some(Value::Array(items)) = v else {
        return Err(ControlError::bad(
            "Required field 'bindings' is missing or not an array",
        ));
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let mut b = Body::new(&item, "binding")?;
        let template = match b.opt_str("template")? {
            Some(t) => t,
            None => b.req_str("template_id")?,
        };
        let fields = b
            .take("fields")
            .unwrap_or(Value::Object(Default::default()));
        if !fields.is_object() && !fields.is_array() {
            return Err(ControlError::bad(
                "binding fields must be an object or an array",
            ));
        }
        b.finish()?;
        out.push(Binding { template, fields });
    }
    Ok(out)
}

impl Control {
    /// `POST /migrations/{m}/api/{a}` with `{id?, bindings:[{template, fields?}]}`.
    pub async fn add_api(
        &self,
        org_id: &str,
        mkey: &str,
        akey: &str,
        body: &Value,
    ) -> Result<(), ControlError> {
        let mut b = Body::new(body, "api migration")?;
        let body_id = b.opt_str("id")?;
        let bindings = read_bindings(b.take("bindings"))?;
        b.ignore(&[
            "description",
            "migration_strategy",
            "migration_rules",
            "testing_validation",
        ]);
        b.finish()?;
        let mut inner = self.lock().await;
        let mut next = inner.state.clone();
        let os = org_mut(&mut next, org_id);
        let mid = find_migration(os, mkey)?;
        let api = resolve(&os.apis, akey).ok_or_else(|| ControlError::not_found("API", akey))?;
        if let Some(bid) = body_id {
            if bid != api
                && Some(bid.as_str()) != os.apis.get(&api).map(|a| a.uuid.to_string()).as_deref()
            {
                return Err(ControlError::bad(format!(
                    "body id '{bid}' does not match the API '{api}' in the path"
                )));
            }
        }
        let mut resolved = Vec::with_capacity(bindings.len());
        for bd in bindings {
            let t = resolve(&os.templates, &bd.template).ok_or_else(|| {
                ControlError::bad(format!("Template '{}' not found", bd.template))
            })?;
            resolved.push(Binding {
                template: t,
                fields: bd.fields,
            });
        }
        if os
            .migrations
            .values()
            .any(|m| m.id != mid && m.holds_api(&api))
        {
            return Err(ControlError::Migration(API_ACTIVE.into()));
        }
        let Some(m) = os.migrations.get_mut(&mid) else {
            return Err(ControlError::MigrationNotFound(mkey.into()));
        };
        step(m, Action::AddMember)?;
        m.apis.retain(|x| x.api != api);
        m.apis.push(ApiMember {
            api,
            bindings: resolved,
            state: MemberState::Attached,
            original_bindings: None,
        });
        self.commit(&mut inner, next).await
    }

    /// `POST /migrations/{m}/interlay/{i}` with `{endpoint}` or Eden's full config.
    pub async fn add_interlay(
        &self,
        org_id: &str,
        mkey: &str,
        ikey: &str,
        body: &Value,
    ) -> Result<(), ControlError> {
        let mut b = Body::new(body, "interlay migration")?;
        let target = b.req_str("endpoint")?;
        let binding_id = b.opt_str("id")?;
        let description = b.opt_str("description")?;
        check_description(&description)?;
        let strategy = match b.take("migration_strategy") {
            Some(v) => Some(Strategy::parse(Some(&v))?),
            None => None,
        };
        let data = match b.take("migration_data") {
            Some(v) => Some(DataRule::parse(Some(&v))?),
            None => None,
        };
        let rules = b
            .take("migration_rules")
            .map(|v| parse_rules(&v))
            .transpose()?;
        let testing_validation = b.take("testing_validation");
        if testing_validation.as_ref().is_some_and(|t| !t.is_object()) {
            return Err(ControlError::bad("testing_validation must be an object"));
        }
        b.finish()?;
        let mut inner = self.lock().await;
        let mut next = inner.state.clone();
        let os = org_mut(&mut next, org_id);
        let mid = find_migration(os, mkey)?;
        let il = resolve(&os.interlays, ikey)
            .ok_or_else(|| ControlError::not_found("Interlay", ikey))?;
        let target = resolve(&os.endpoints, &target)
            .ok_or_else(|| ControlError::not_found("Endpoint", &target))?;
        let source = os.interlays[&il].endpoint.clone();
        if target == source {
            return Err(ControlError::bad(format!(
                "target endpoint '{target}' must differ from the interlay's endpoint"
            )));
        }
        if os
            .migrations
            .values()
            .any(|m| m.id != mid && m.holds_interlay(&il))
        {
            return Err(ControlError::Migration(INTERLAY_ACTIVE.into()));
        }
        let Some(m) = os.migrations.get_mut(&mid) else {
            return Err(ControlError::MigrationNotFound(mkey.into()));
        };
        step(m, Action::AddMember)?;
        m.interlays.retain(|x| x.interlay != il);
        m.interlays.push(InterlayMember {
            interlay: il,
            target,
            source,
            binding_id,
            description,
            strategy,
            data,
            rules,
            testing_validation,
            state: MemberState::Attached,
            copy_cursor: None,
            copy_pass_done: false,
        });
        self.commit(&mut inner, next).await
    }
}
