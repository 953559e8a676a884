//! Gives the driver library the soname `libcuda.so`, the first name cudarc asks the dynamic
//! loader for. A process that has loaded the vgpu by path (its own tests do) then gets it back
//! for cudarc's `dlopen("libcuda.so")`, whatever else is on the library path.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libcuda.so");
    }
}
