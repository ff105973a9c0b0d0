//! Without a Vulkan driver, `WgpuBackend::new` returns the typed [`BackendError::NoAdapter`]
//! (never a panic, never a CPU fallback). The check runs in a child process of this test binary
//! whose Vulkan loader is pointed at a driver manifest that does not exist, so it holds on machines
//! that do have a driver (or lavapipe) installed.
#![cfg(feature = "vulkan")]

use std::process::Command;

use rnet_gpu::{BackendError, WgpuBackend};

/// Set in the child process: run the real check instead of spawning.
const CHILD: &str = "RNET_VULKAN_NO_ADAPTER_CHILD";

/// In the child (with no driver visible): the backend must refuse with `NoAdapter`.
#[test]
#[ignore = "run by vulkan_without_a_driver_is_a_typed_error in a child process"]
fn child_no_adapter() {
    assert!(std::env::var_os(CHILD).is_some(), "run only by the parent test");
    match WgpuBackend::new(0) {
        Err(BackendError::NoAdapter { api: "Vulkan", ordinal: 0, count: 0 }) => {}
        Err(e) => panic!("expected NoAdapter {{ ordinal: 0, count: 0 }}, got {e:?}"),
        Ok(be) => panic!("expected no adapter, opened {be:?}"),
    }
}

#[test]
fn vulkan_without_a_driver_is_a_typed_error() {
    let exe = std::env::current_exe().expect("test binary path");
    let missing = "/nonexistent/rnet-no-vulkan-driver.json";
    let out = Command::new(exe)
        .args(["--exact", "child_no_adapter", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        // The loader's driver manifest overrides (the older and the newer name).
        .env("VK_ICD_FILENAMES", missing)
        .env("VK_DRIVER_FILES", missing)
        .output()
        .expect("spawn the child test");
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "child failed:\n{text}");
    assert!(text.contains("1 passed"), "child did not run the check:\n{text}");
}
