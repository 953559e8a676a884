//! Registers per thread from `ptxas -v` (the `nvidia-cuda-nvcc` wheel, no GPU needed), which
//! sets occupancy. The model runs ptxas on the exact PTX it simulates.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where ptxas is looked for: `$GPUMODEL_PTXAS`, then `.ptxas/nvidia/cu13/bin/ptxas` under
/// `root` (where `.ci/ptxas-report.sh` installs it).
pub fn find(root: &Path) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("GPUMODEL_PTXAS") {
        return Some(PathBuf::from(p));
    }
    let p = root.join(".ptxas/nvidia/cu13/bin/ptxas");
    p.is_file().then_some(p)
}

/// Registers per thread of every kernel in `ptx`, assembled for `sm_<arch>`.
pub fn registers(ptxas: &Path, ptx: &str, arch: u32) -> Result<HashMap<String, u32>, String> {
    let dir = std::env::temp_dir().join(format!("gpumodel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let file = dir.join(format!("m{}.ptx", ptx.len()));
    std::fs::write(&file, ptx).map_err(|e| format!("{}: {e}", file.display()))?;
    let out = Command::new(ptxas)
        .arg("-v")
        .arg(format!("-arch=sm_{arch}"))
        .arg(&file)
        .arg("-o")
        .arg(dir.join("m.cubin"))
        .output()
        .map_err(|e| format!("running {}: {e}", ptxas.display()))?;
    let _ = std::fs::remove_file(&file);
    if !out.status.success() {
        return Err(format!(
            "ptxas failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let log = String::from_utf8_lossy(&out.stderr);
    let mut regs = HashMap::new();
    let mut kernel: Option<String> = None;
    for line in log.lines() {
        if let Some(i) = line.find("Compiling entry function '") {
            let rest = &line[i + 26..];
            kernel = rest.split('\'').next().map(str::to_string);
        }
        if let (Some(k), Some(i)) = (&kernel, line.find("Used ")) {
            let n: String = line[i + 5..]
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            if let Ok(n) = n.parse() {
                regs.insert(k.clone(), n);
            }
        }
    }
    Ok(regs)
}
