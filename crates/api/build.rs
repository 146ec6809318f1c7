//! Compiles proto/devenv/v1 with protox (pure Rust): a fresh machine needs only cargo.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read when the script runs (not baked in when it is compiled), so a build script
    // compiled for another checkout sharing the target directory still finds this one.
    let manifest = std::env::var("CARGO_MANIFEST_DIR")?;
    let root = std::path::Path::new(&manifest).join("../../proto");
    let file = root.join("devenv/v1/devenv.proto");
    println!("cargo:rerun-if-changed={}", file.display());

    let fds = protox::compile([&file], [&root])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    // The descriptor set is also served by gRPC reflection.
    std::fs::write(
        out.join("devenv_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
