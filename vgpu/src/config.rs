//! The device the vgpu pretends to be, from environment variables read once, at `cuInit`.

use std::env;

/// `VGPU_*` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// `VGPU_COMPUTE_CAPABILITY`: major * 10 + minor (default 90, an H100).
    pub compute_capability: u32,
    /// `VGPU_MULTIPROCESSORS` (default 132, an H100 SXM).
    pub multiprocessors: u32,
    /// `VGPU_DRIVER_VERSION`: what `cuDriverGetVersion` reports, 1000 * major + 10 * minor
    /// (default 13000, CUDA 13.0). It decides the newest PTX ISA `cuModuleLoadData` accepts.
    pub driver_version: u32,
    /// `VGPU_MEMORY_POOLS`: 1 (default) or 0; the MEMORY_POOLS_SUPPORTED attribute, and whether
    /// `cuMemAllocAsync` / `cuMemFreeAsync` work.
    pub memory_pools: bool,
    /// `VGPU_DEVICES`: how many identical devices there are (default 1; 0 makes `cuInit` fail
    /// with CUDA_ERROR_NO_DEVICE, as on a machine without a GPU).
    pub devices: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            compute_capability: 90,
            multiprocessors: 132,
            driver_version: 13000,
            memory_pools: true,
            devices: 1,
        }
    }
}

impl Config {
    /// Reads the `VGPU_*` variables; an unset one keeps its default. Errors name the variable,
    /// the value given and what is accepted.
    pub fn from_env() -> Result<Config, String> {
        Config::from_lookup(|name| env::var(name).ok())
    }

    /// [`Config::from_env`] with the variables looked up through `var`.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let d = Config::default();
        Ok(Config {
            compute_capability: number(
                &var,
                "VGPU_COMPUTE_CAPABILITY",
                d.compute_capability,
                30,
                199,
            )?,
            multiprocessors: number(&var, "VGPU_MULTIPROCESSORS", d.multiprocessors, 1, 1024)?,
            driver_version: driver_version(&var, d.driver_version)?,
            memory_pools: number(&var, "VGPU_MEMORY_POOLS", u32::from(d.memory_pools), 0, 1)? == 1,
            devices: number(&var, "VGPU_DEVICES", d.devices, 0, 16)?,
        })
    }

    /// Compute capability major version.
    pub fn cc_major(&self) -> u32 {
        self.compute_capability / 10
    }

    /// Compute capability minor version.
    pub fn cc_minor(&self) -> u32 {
        self.compute_capability % 10
    }

    /// The newest PTX ISA version (major, minor) this driver version loads.
    pub fn max_ptx_isa(&self) -> (u32, u32) {
        max_ptx_isa(self.driver_version)
    }

    /// Shared memory a block may use without opting in (48 KiB on every architecture).
    pub fn shared_per_block(&self) -> u32 {
        48 * 1024
    }

    /// Shared memory a block may use after `cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES)`:
    /// the per-architecture opt-in limit of the CUDA programming guide.
    pub fn shared_per_block_optin(&self) -> u32 {
        match self.compute_capability {
            0..=69 => 48 * 1024,
            70..=74 => 96 * 1024,
            75..=79 => 64 * 1024,
            80 | 87 => 163 * 1024,
            81..=89 => 99 * 1024,
            _ => 227 * 1024,
        }
    }
}

fn number(
    var: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: u32,
    min: u32,
    max: u32,
) -> Result<u32, String> {
    let Some(raw) = var(name) else {
        return Ok(default);
    };
    match raw.trim().parse::<u32>() {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(format!(
            "{name}={raw:?} is not valid: expected an integer from {min} to {max}{}",
            hint(name)
        )),
    }
}

fn hint(name: &str) -> &'static str {
    match name {
        "VGPU_COMPUTE_CAPABILITY" => " (major * 10 + minor, e.g. 75, 80, 86, 90)",
        "VGPU_MEMORY_POOLS" => " (1: memory pools supported, 0: not)",
        _ => "",
    }
}

fn driver_version(var: &impl Fn(&str) -> Option<String>, default: u32) -> Result<u32, String> {
    let v = number(var, "VGPU_DRIVER_VERSION", default, 11000, 99990).map_err(|e| {
        format!("{e} (1000 * major + 10 * minor, e.g. 12080 for CUDA 12.8, 13000 for 13.0)")
    })?;
    if v % 10 != 0 {
        return Err(format!(
            "VGPU_DRIVER_VERSION=\"{v}\" is not valid: 1000 * major + 10 * minor is a multiple \
             of 10 (e.g. 12080 for CUDA 12.8)"
        ));
    }
    Ok(v)
}

/// The newest PTX ISA a driver of CUDA `driver_version` (1000 * major + 10 * minor) loads, from
/// the PTX ISA release history: PTX 7.x came with CUDA 11.x, 8.0 to 8.5 with 12.0 to 12.5 (12.6
/// kept 8.5), 8.6 to 8.8 with 12.7 to 12.9, 9.x with 13.x.
pub fn max_ptx_isa(driver_version: u32) -> (u32, u32) {
    let major = driver_version / 1000;
    let minor = (driver_version % 1000) / 10;
    match major {
        0..=10 => (6, 5),
        11 => (7, minor.min(8)),
        12 => match minor {
            0..=5 => (8, minor),
            6 => (8, 5),
            _ => (8, (minor - 1).min(8)),
        },
        13 => (9, minor),
        _ => (9 + (major - 13), minor),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> Result<Config, String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn defaults_are_an_h100_on_cuda_13() {
        assert_eq!(with(&[]), Ok(Config::default()));
        let c = Config::default();
        assert_eq!((c.cc_major(), c.cc_minor()), (9, 0));
        assert_eq!(c.max_ptx_isa(), (9, 0));
    }

    #[test]
    fn every_variable_is_read() {
        let c = with(&[
            ("VGPU_COMPUTE_CAPABILITY", "86"),
            ("VGPU_MULTIPROCESSORS", "84"),
            ("VGPU_DRIVER_VERSION", "12080"),
            ("VGPU_MEMORY_POOLS", "0"),
            ("VGPU_DEVICES", "2"),
        ])
        .unwrap();
        assert_eq!(
            c,
            Config {
                compute_capability: 86,
                multiprocessors: 84,
                driver_version: 12080,
                memory_pools: false,
                devices: 2
            }
        );
    }

    #[test]
    fn bad_values_name_the_variable_and_what_is_accepted() {
        for (name, value) in [
            ("VGPU_COMPUTE_CAPABILITY", "9.0"),
            ("VGPU_COMPUTE_CAPABILITY", "sm_90"),
            ("VGPU_COMPUTE_CAPABILITY", "7"),
            ("VGPU_MULTIPROCESSORS", "0"),
            ("VGPU_MULTIPROCESSORS", "-1"),
            ("VGPU_DRIVER_VERSION", "13.0"),
            ("VGPU_DRIVER_VERSION", "12085"),
            ("VGPU_MEMORY_POOLS", "yes"),
            ("VGPU_MEMORY_POOLS", "2"),
            ("VGPU_DEVICES", ""),
            ("VGPU_DEVICES", "99999999999"),
        ] {
            let err = with(&[(name, value)]).unwrap_err();
            assert!(err.contains(name), "{err}");
            assert!(
                err.contains(&format!("{value:?}")) || err.contains(value),
                "{err}"
            );
            assert!(
                err.contains("expected") || err.contains("multiple of 10"),
                "{err}"
            );
        }
    }

    #[test]
    fn ptx_isa_follows_the_release_history() {
        for (driver, isa) in [
            (11040, (7, 4)),
            (11080, (7, 8)),
            (12000, (8, 0)),
            (12040, (8, 4)),
            (12050, (8, 5)),
            (12060, (8, 5)),
            (12070, (8, 6)),
            (12080, (8, 7)),
            (12090, (8, 8)),
            (13000, (9, 0)),
            (13010, (9, 1)),
            (13040, (9, 4)),
        ] {
            assert_eq!(max_ptx_isa(driver), isa, "driver {driver}");
        }
    }
}
