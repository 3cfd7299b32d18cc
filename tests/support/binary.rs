//! Finding the `godwit` binary of the current build for tests that run it as a process.
//!
//! Why this way: `env!("CARGO_BIN_EXE_godwit")` exists only in tests of the package that owns
//! the binary, and this is another package (`godwit-tests`); a dependency on the `godwit`
//! package would not build its binary either (artifact dependencies are unstable), and
//! `cargo run` per start would recompile-check at every restart and hide the child's pid behind
//! cargo's. A test executable runs from `<target-dir>/<profile>/deps/`, so the binary of the
//! same build is `<target-dir>/<profile>/godwit`, whatever `CARGO_TARGET_DIR` says.
//!
//! That file is used when cargo's own dep-info for it (`godwit.d`, every source file that went
//! into it) proves it fresh: all those files belong to this workspace and none, nor a manifest
//! or `Cargo.lock`, is newer than the binary. That is the case in CI, which builds every target
//! before testing. Otherwise `cargo build -p godwit --bin godwit` is run once per test process
//! for that target dir and profile, so a stale binary is never the one tested.
//! `GODWIT_BIN=/path/to/godwit` overrides all of this (e.g. a release build).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, bail, Context};

/// How long a build of the binary may take before the test gives up.
const BUILD_TIMEOUT: Duration = Duration::from_secs(900);

/// Variables cargo sets for a crate's test run (besides `CARGO_PKG_*`, `CARGO_BIN_EXE_*`).
/// Build scripts track some of them (`rerun-if-env-changed`), so passing them on to the
/// nested build would make it and the next `cargo test` rebuild each other's dependencies.
const CRATE_VARS: &[&str] = &[
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_CRATE_NAME",
    "CARGO_BIN_NAME",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_TARGET_TMPDIR",
    "CARGO_RUSTC_CURRENT_DIR",
    "OUT_DIR",
];

/// The `godwit` binary of the current build (see the module docs).
pub fn godwit_bin() -> anyhow::Result<PathBuf> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| find_or_build().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow!(e))
}

/// The workspace root (the tests package lives at its top).
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

fn find_or_build() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("GODWIT_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .filter(|d| d.ends_with("deps"))
        .and_then(Path::parent)
        .with_context(|| format!("{} is not in <target>/<profile>/deps", exe.display()))?;
    let bin = profile_dir.join("godwit");
    let root = workspace_root();
    if is_fresh(&bin, &root) {
        return Ok(bin);
    }
    let target_dir = profile_dir.parent().context("no target dir")?;
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev",
        Some(p) => p,
        None => bail!("no profile dir"),
    };
    build(target_dir, profile, &root)?;
    if !bin.is_file() {
        bail!("{} missing after cargo build -p godwit", bin.display());
    }
    Ok(bin)
}

fn mtime(p: &Path) -> Option<SystemTime> {
    p.metadata().and_then(|m| m.modified()).ok()
}

/// Whether `bin` was built from this workspace's current sources, by cargo's dep-info.
pub fn is_fresh(bin: &Path, root: &Path) -> bool {
    let (Some(built), Ok(dep_info)) =
        (mtime(bin), std::fs::read_to_string(bin.with_extension("d")))
    else {
        return false;
    };
    let Some((_, deps)) = dep_info.split_once(": ") else {
        return false;
    };
    // Make syntax: `\ ` is a space inside a path, `\`-newline continues the line.
    let deps = deps.replace("\\\n", " ").replace("\\ ", "\u{0}");
    let mut ours = false;
    for d in deps.split_whitespace() {
        let p = root.join(d.replace('\u{0}', " "));
        ours |= p.starts_with(root);
        if mtime(&p).is_none_or(|t| t > built) {
            return false;
        }
    }
    // Manifests and the lock file are not in the dep-info but change what gets built.
    let mut manifests = vec![root.join("Cargo.lock"), root.join("Cargo.toml")];
    for dir in ["crates", "tests", "benches"] {
        manifests.push(root.join(dir).join("Cargo.toml"));
        if let Ok(entries) = std::fs::read_dir(root.join(dir)) {
            manifests.extend(entries.flatten().map(|e| e.path().join("Cargo.toml")));
        }
    }
    let manifests_older = manifests
        .iter()
        .filter_map(|m| mtime(m))
        .all(|t| t <= built);
    ours && manifests_older
}

/// `cargo build -p godwit --bin godwit` into `target_dir` with `profile`, output to a log.
fn build(target_dir: &Path, profile: &str, root: &Path) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let log = target_dir.join("godwit-tests-build-godwit.log");
    let out = std::fs::File::create(&log)?;
    let mut cmd = Command::new(&cargo);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if CRATE_VARS.contains(&k.as_ref())
            || k.starts_with("CARGO_PKG_")
            || k.starts_with("CARGO_BIN_EXE_")
        {
            cmd.env_remove(k.as_ref());
        }
    }
    let mut child = cmd
        .args([
            "build",
            "-p",
            "godwit",
            "--bin",
            "godwit",
            "--profile",
            profile,
        ])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .with_context(|| format!("spawn {cargo} build -p godwit"))?;
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if start.elapsed() > BUILD_TIMEOUT {
            let _ = child.kill();
            bail!("cargo build -p godwit took over {BUILD_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if !status.success() {
        let output = std::fs::read_to_string(&log).unwrap_or_default();
        bail!("cargo build -p godwit failed ({status}):\n{output}");
    }
    Ok(())
}
