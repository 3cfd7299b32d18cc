//! Validation of every strategy field: ranges of fractions, instance lists, feature and
//! region maps, CIDRs, time windows, and the write policies Redis cannot honour.

use crate::casing::fraction;
use crate::strategy::{Strategy, WriteMode, WritePolicy};
use crate::ControlError;

impl Strategy {
    /// Checks every field's range and cross-field rule.
    pub fn validate(&self) -> Result<(), ControlError> {
        match self {
            Strategy::BigBang { .. } | Strategy::ShadowTraffic {} => Ok(()),
            Strategy::Canary {
                read_percentage,
                write_mode,
                ..
            } => {
                fraction("read_percentage", *read_percentage)?;
                write_mode.validate()
            }
            Strategy::BlueGreen { write_mode, .. } => match write_mode {
                Some(wm) => wm.validate(),
                None => Ok(()),
            },
            Strategy::RollingUpdate {
                migrated_instances,
                total_instances,
            } => {
                if *total_instances == 0 {
                    return Err(ControlError::bad("total_instances must be at least 1"));
                }
                if migrated_instances.len() > *total_instances as usize {
                    return Err(ControlError::bad(
                        "migrated_instances cannot list more instances than total_instances",
                    ));
                }
                let mut seen = std::collections::BTreeSet::new();
                for i in migrated_instances {
                    if i.trim().is_empty() || !seen.insert(i) {
                        return Err(ControlError::bad(format!(
                            "migrated_instances has an empty or duplicate id '{i}'"
                        )));
                    }
                }
                Ok(())
            }
            Strategy::StranglerFig {
                features,
                feature_keys,
            } => {
                for (f, pats) in feature_keys {
                    if !features.contains_key(f) {
                        return Err(ControlError::bad(format!(
                            "feature_keys names unknown feature '{f}'"
                        )));
                    }
                    if pats.is_empty() || pats.iter().any(|p| p.is_empty()) {
                        return Err(ControlError::bad(format!(
                            "feature_keys of '{f}' must be non-empty patterns"
                        )));
                    }
                }
                Ok(())
            }
            Strategy::FeatureFlag {
                rollout_percentage, ..
            } => fraction("rollout_percentage", *rollout_percentage),
            Strategy::Geographic {
                regions,
                region_cidrs,
            } => {
                for (r, cidrs) in region_cidrs {
                    if !regions.contains_key(r) {
                        return Err(ControlError::bad(format!(
                            "region_cidrs names unknown region '{r}'"
                        )));
                    }
                    for c in cidrs {
                        check_cidr(c)?;
                    }
                }
                Ok(())
            }
            Strategy::TimeWindow {
                window_start,
                window_end,
                ..
            } => {
                if window_end <= window_start {
                    return Err(ControlError::bad("window_end must be after window_start"));
                }
                Ok(())
            }
        }
    }
}

impl WriteMode {
    pub(crate) fn validate(&self) -> Result<(), ControlError> {
        match self {
            WriteMode::DualWrite {
                policy: WritePolicy::TwoPhaseCommit,
            } => Err(ControlError::bad(
                "TwoPhaseCommit is not supported for redis",
            )),
            WriteMode::DualWrite { .. } => Ok(()),
            WriteMode::Cutover { write_percentage } => {
                fraction("write_percentage", *write_percentage)
            }
        }
    }
}

/// Checks `a.b.c.d/n` or `v6/n`.
fn check_cidr(c: &str) -> Result<(), ControlError> {
    let bad = || ControlError::bad(format!("invalid CIDR '{c}'"));
    let (ip, len) = c.split_once('/').ok_or_else(bad)?;
    let ip: std::net::IpAddr = ip.parse().map_err(|_| bad())?;
    let len: u8 = len.parse().map_err(|_| bad())?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if len > max {
        return Err(bad());
    }
    Ok(())
}
