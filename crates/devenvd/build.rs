//! Embeds the dashboard bundle (`dashboard/`, the committed build output of
//! clients/dashboard) into the binary, so `cargo build` alone gives a daemon that
//! serves the page. Every file below the directory is listed here, none by hand;
//! adding, removing or changing one reruns this script and rebuilds the table.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read when the script runs (not baked in when it is compiled), so a build script
    // compiled for another checkout sharing the target directory still finds this one.
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let root = manifest.join("dashboard");
    // A directory here makes cargo rescan everything below it for changes.
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    collect(&root, &root, &mut files)?;
    files.sort();
    let mut table = String::from(
        "/// Embedded dashboard files: (path relative to dashboard/, contents).\n\
         pub static FILES: &[(&str, &[u8])] = &[\n",
    );
    for (rel, abs) in &files {
        writeln!(table, "    ({rel:?}, include_bytes!({abs:?})),")?;
    }
    table.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("dashboard_files.rs"), table)?;
    Ok(())
}

/// (relative path with `/`, absolute path) of every regular file below `dir`,
/// leaving out dot files (editor and VCS leftovers are not part of the bundle).
fn collect(
    root: &Path,
    dir: &Path,
    out: &mut Vec<(String, String)>,
) -> Result<(), Box<dyn std::error::Error>> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name
            .to_str()
            .ok_or_else(|| format!("{}: file names must be UTF-8", path.display()))?;
        if name.starts_with('.') {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_dir() {
            collect(root, &path, out)?;
        } else if kind.is_file() {
            let rel = path.strip_prefix(root)?;
            let rel = rel
                .to_str()
                .ok_or_else(|| format!("{}: paths must be UTF-8", path.display()))?
                .replace(std::path::MAIN_SEPARATOR, "/");
            let abs = path
                .to_str()
                .ok_or_else(|| format!("{}: paths must be UTF-8", path.display()))?
                .to_owned();
            out.push((rel, abs));
        }
    }
    Ok(())
}
