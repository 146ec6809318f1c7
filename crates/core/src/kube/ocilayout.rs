//! An OCI image layout in a tar file (what `docker save` writes since Docker 25,
//! `buildah push oci-archive:`, `nerdctl save`, or a tarball the config names): the
//! image manifest picked from `index.json` and where each blob sits in the file, so
//! a push streams blobs straight out of the tar without unpacking it.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::Digest as _;

/// `index.json` and manifests are small; a bigger one is not an image.
const MAX_JSON: u64 = 4 * 1024 * 1024;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not an OCI image layout: {why}")]
    NotALayout { path: PathBuf, why: String },
}

/// One blob of the image: config or a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub digest: String,
    pub size: u64,
    pub media_type: String,
}

/// The image to push: its manifest's exact bytes and the blobs it names.
#[derive(Debug, Clone)]
pub struct Image {
    pub manifest: Vec<u8>,
    pub media_type: String,
    /// `sha256:<hex>` of `manifest`: what the workload is deployed by.
    pub digest: String,
    pub config: Blob,
    pub layers: Vec<Blob>,
}

/// The tar file and where each of its files' bytes are.
pub struct Layout {
    path: PathBuf,
    files: HashMap<String, (u64, u64)>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: Option<String>,
    digest: String,
    size: u64,
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Platform {
    architecture: String,
    os: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    media_type: Option<String>,
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    media_type: Option<String>,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

impl Layout {
    /// Reads the tar's headers (not its contents).
    pub fn open(path: &Path) -> Result<Self, LayoutError> {
        let read = |source| LayoutError::Read {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read)?;
        let mut archive = tar::Archive::new(std::io::BufReader::new(file));
        let mut files = HashMap::new();
        for entry in archive.entries().map_err(read)? {
            let entry = entry.map_err(read)?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let name = entry.path().map_err(read)?.to_string_lossy().into_owned();
            let name = name.trim_start_matches("./").to_owned();
            files.insert(name, (entry.raw_file_position(), entry.size()));
        }
        Ok(Self {
            path: path.to_path_buf(),
            files,
        })
    }

    fn not_a_layout(&self, why: impl Into<String>) -> LayoutError {
        LayoutError::NotALayout {
            path: self.path.clone(),
            why: why.into(),
        }
    }

    /// Where a blob's bytes are: (offset in the tar, size).
    pub fn blob(&self, digest: &str) -> Option<(u64, u64)> {
        let (algo, hex) = digest.split_once(':')?;
        self.files.get(&format!("blobs/{algo}/{hex}")).copied()
    }

    /// The tar file itself.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read_file(&self, name: &str) -> Result<Vec<u8>, LayoutError> {
        let &(offset, size) = self
            .files
            .get(name)
            .ok_or_else(|| self.not_a_layout(format!("it has no `{name}`")))?;
        if size > MAX_JSON {
            return Err(self.not_a_layout(format!("`{name}` is {size} bytes")));
        }
        let read = |source| LayoutError::Read {
            path: self.path.clone(),
            source,
        };
        let mut f = std::fs::File::open(&self.path).map_err(read)?;
        f.seek(SeekFrom::Start(offset)).map_err(read)?;
        let mut buf = Vec::with_capacity(size as usize);
        f.take(size).read_to_end(&mut buf).map_err(read)?;
        Ok(buf)
    }

    /// A blob named by a descriptor, checked against its digest.
    fn read_blob(&self, d: &Descriptor) -> Result<Vec<u8>, LayoutError> {
        let (algo, hex) = d
            .digest
            .split_once(':')
            .ok_or_else(|| self.not_a_layout(format!("bad digest `{}`", d.digest)))?;
        let bytes = self.read_file(&format!("blobs/{algo}/{hex}"))?;
        if algo != "sha256" || sha256(&bytes) != d.digest {
            return Err(self.not_a_layout(format!("blob {} does not match its digest", d.digest)));
        }
        Ok(bytes)
    }

    /// The image manifest for this machine's platform (`linux/<arch>`), through at
    /// most one nested index.
    pub fn image(&self) -> Result<Image, LayoutError> {
        let index: Index = serde_json::from_slice(&self.read_file("index.json")?)
            .map_err(|e| self.not_a_layout(format!("index.json: {e}")))?;
        let mut chosen = self.pick(index)?;
        let mut manifest = self.read_blob(&chosen)?;
        if chosen
            .media_type
            .as_deref()
            .is_some_and(|m| m == OCI_INDEX || m == DOCKER_LIST)
        {
            let nested: Index = serde_json::from_slice(&manifest)
                .map_err(|e| self.not_a_layout(format!("{}: {e}", chosen.digest)))?;
            chosen = self.pick(nested)?;
            manifest = self.read_blob(&chosen)?;
        }
        let parsed: Manifest = serde_json::from_slice(&manifest)
            .map_err(|e| self.not_a_layout(format!("manifest {}: {e}", chosen.digest)))?;
        let media_type = parsed
            .media_type
            .or(chosen.media_type)
            .unwrap_or_else(|| "application/vnd.oci.image.manifest.v1+json".into());
        let blob = |d: Descriptor| -> Result<Blob, LayoutError> {
            match self.blob(&d.digest) {
                Some((_, size)) if size == d.size => Ok(Blob {
                    digest: d.digest,
                    size: d.size,
                    media_type: d.media_type.unwrap_or_default(),
                }),
                Some((_, size)) => Err(self.not_a_layout(format!(
                    "blob {} is {size} bytes, its manifest says {}",
                    d.digest, d.size
                ))),
                None => Err(self.not_a_layout(format!("blob {} is missing", d.digest))),
            }
        };
        Ok(Image {
            digest: chosen.digest,
            config: blob(parsed.config)?,
            layers: parsed
                .layers
                .into_iter()
                .map(blob)
                .collect::<Result<_, _>>()?,
            manifest,
            media_type,
        })
    }

    fn pick(&self, index: Index) -> Result<Descriptor, LayoutError> {
        let _ = index.media_type;
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        let mut manifests = index.manifests;
        if manifests.len() <= 1 {
            return manifests
                .pop()
                .ok_or_else(|| self.not_a_layout("index.json lists no manifest"));
        }
        let at = manifests
            .iter()
            .position(|d| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| p.os == "linux" && p.architecture == arch)
            })
            .ok_or_else(|| {
                self.not_a_layout(format!(
                    "index.json lists {} manifests and none for linux/{arch}",
                    manifests.len()
                ))
            })?;
        Ok(manifests.swap_remove(at))
    }
}

pub fn sha256(bytes: &[u8]) -> String {
    let digest = sha2::Sha256::digest(bytes);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in digest {
        use std::fmt::Write as _;
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes a one-layer OCI layout tarball of `files` (path, bytes) to `out`;
    /// returns the manifest digest.
    pub(crate) fn write_layout(out: &Path, files: &[(&str, &[u8])], nested: bool) -> String {
        let mut layer = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o755);
            h.set_cksum();
            layer.append_data(&mut h, name, *data).unwrap();
        }
        let layer = layer.into_inner().unwrap();
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","config":{{"Cmd":["sh"]}},"rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
            sha256(&layer)
        );
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}]}}"#,
            sha256(config.as_bytes()),
            config.len(),
            sha256(&layer),
            layer.len()
        );
        let mdigest = sha256(manifest.as_bytes());
        let mut blobs = vec![
            layer.clone(),
            config.into_bytes(),
            manifest.clone().into_bytes(),
        ];
        let entry = format!(
            r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{mdigest}","size":{},"platform":{{"architecture":"amd64","os":"linux"}}}}"#,
            manifest.len()
        );
        let index = if nested {
            let inner = format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{entry},{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:00","size":1,"platform":{{"architecture":"s390x","os":"linux"}}}}]}}"#
            );
            let d = sha256(inner.as_bytes());
            let outer = format!(
                r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_INDEX}","digest":"{d}","size":{}}}]}}"#,
                inner.len()
            );
            blobs.push(inner.into_bytes());
            outer
        } else {
            format!(r#"{{"schemaVersion":2,"manifests":[{entry}]}}"#)
        };
        let mut tar = tar::Builder::new(std::fs::File::create(out).unwrap());
        let mut add = |name: &str, data: &[u8]| {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            tar.append_data(&mut h, name, data).unwrap();
        };
        add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
        add("index.json", index.as_bytes());
        for b in &blobs {
            let d = sha256(b);
            add(&format!("blobs/sha256/{}", &d[7..]), b);
        }
        tar.finish().unwrap();
        mdigest
    }

    #[test]
    fn reads_the_manifest_and_finds_each_blob_in_the_tar() {
        let dir = tempfile::tempdir().unwrap();
        for nested in [false, true] {
            let path = dir.path().join(format!("img-{nested}.tar"));
            let digest = write_layout(&path, &[("bin/hello", b"hello")], nested);
            let layout = Layout::open(&path).unwrap();
            let image = layout.image().unwrap();
            assert_eq!(image.digest, digest);
            assert_eq!(sha256(&image.manifest), digest);
            assert_eq!(image.layers.len(), 1);
            let (offset, size) = layout.blob(&image.layers[0].digest).unwrap();
            let mut f = std::fs::File::open(&path).unwrap();
            f.seek(SeekFrom::Start(offset)).unwrap();
            let mut bytes = Vec::new();
            f.take(size).read_to_end(&mut bytes).unwrap();
            assert_eq!(sha256(&bytes), image.layers[0].digest);
        }
    }

    #[test]
    fn a_file_that_is_no_layout_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.tar");
        let mut tar = tar::Builder::new(std::fs::File::create(&path).unwrap());
        let mut h = tar::Header::new_ustar();
        h.set_size(2);
        h.set_cksum();
        tar.append_data(&mut h, "manifest.json", &b"[]"[..])
            .unwrap();
        tar.finish().unwrap();
        drop(tar);
        let e = Layout::open(&path).unwrap().image().unwrap_err();
        assert!(e.to_string().contains("has no `index.json`"), "{e}");
    }
}
