//! Writing a file whole or not at all.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` in `dir`: a temporary file, fsync, rename, fsync
/// of the directory. On error, returns the file the failing step touched.
pub(crate) fn write_atomic(
    dir: &Path,
    path: &Path,
    bytes: &[u8],
) -> Result<(), (PathBuf, std::io::Error)> {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    let at = |p: &Path| {
        let p = p.to_owned();
        move |e| (p, e)
    };
    let mut file = std::fs::File::create(&tmp).map_err(at(&tmp))?;
    file.write_all(bytes).map_err(at(&tmp))?;
    file.sync_all().map_err(at(&tmp))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(at(path))?;
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(at(dir))
}
