//! Remote functions: [`RemoteFn`], what `#[drove::remote]` implements; the
//! process's function table of [`FnEntry`]s, filled at link time through
//! `inventory`; [`Ctx`], what a function gets on its runner; and the
//! [`build_id`] that parent and runner must share.

use std::any::Any;
use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::io::Read;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use serde::de::DeserializeOwned;
use serde::Serialize;

use drove_runtime::Node;

use crate::error::RemoteError;

/// The largest encoded arguments or result of one call (the transport's
/// frame limit is 8 MiB; this leaves room).
pub const MAX_PAYLOAD: usize = 4 * 1024 * 1024;

/// A function a pool can run on a runner, by its stable [`RemoteFn::NAME`].
/// Write it with `#[drove::remote]` on an `async fn`; the macro makes a
/// unit value of the function's name that implements this trait, so
/// `pool.call(transcode, video)` checks both `video` and the result type.
pub trait RemoteFn: Send + Sync + 'static {
    /// The name the function is called by across processes. Parent and
    /// runner are the same build, so the same names.
    const NAME: &'static str;
    /// Its argument (a struct or tuple for several).
    type Args: Serialize + DeserializeOwned + Send + 'static;
    /// What it returns on success.
    type Output: Serialize + DeserializeOwned + Send + 'static;
    /// What it returns on failure; the caller gets its text.
    type Error: Display + Send + 'static;

    /// Runs the function on this node.
    fn run(
        ctx: Ctx,
        args: Self::Args,
    ) -> impl Future<Output = Result<Self::Output, Self::Error>> + Send;
}

/// What a remote function gets on its runner: the runner's node, and
/// whatever the app attached (the `drove` facade attaches its `Services`,
/// so pub/sub, the cache and the registry work inside a function).
#[derive(Clone)]
pub struct Ctx {
    node: Node,
    extension: Option<Arc<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ctx({})", self.node.id())
    }
}

impl Ctx {
    /// A context on `node` with an optional extension.
    pub fn new(node: Node, extension: Option<Arc<dyn Any + Send + Sync>>) -> Self {
        Ctx { node, extension }
    }

    /// The node the function runs on.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The extension the app attached, if it is a `T`.
    pub fn extension<T: Any>(&self) -> Option<&T> {
        self.extension.as_deref()?.downcast_ref::<T>()
    }
}

/// A boxed future, as the function table stores them.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// What a function's table entry runs: decode, run, encode.
pub type Invoker = fn(Ctx, Vec<u8>) -> BoxFuture<Result<Vec<u8>, RemoteError>>;

/// One function in the table: its name and how to run it from bytes.
pub struct FnEntry {
    /// [`RemoteFn::NAME`].
    pub name: &'static str,
    /// Decodes the arguments, runs the function, encodes its result.
    pub invoke: Invoker,
    /// Turns JSON arguments into the wire form (the admin API's calls).
    pub args_from_json: fn(serde_json::Value) -> Result<Vec<u8>, String>,
    /// Turns a wire result into JSON.
    pub output_to_json: fn(&[u8]) -> Result<serde_json::Value, String>,
}

impl FnEntry {
    /// The entry of `F` (what `#[drove::remote]` registers).
    pub const fn of<F: RemoteFn>() -> Self {
        FnEntry {
            name: F::NAME,
            invoke: invoke::<F>,
            args_from_json: args_from_json::<F>,
            output_to_json: output_to_json::<F>,
        }
    }
}

inventory::collect!(FnEntry);

fn invoke<F: RemoteFn>(ctx: Ctx, args: Vec<u8>) -> BoxFuture<Result<Vec<u8>, RemoteError>> {
    Box::pin(async move {
        let args: F::Args = decode(&args).map_err(RemoteError::BadArgs)?;
        let output = F::run(ctx, args)
            .await
            .map_err(|e| RemoteError::Failed(e.to_string()))?;
        encode(&output).map_err(RemoteError::BadOutput)
    })
}

fn args_from_json<F: RemoteFn>(json: serde_json::Value) -> Result<Vec<u8>, String> {
    let args: F::Args = serde_json::from_value(json).map_err(|e| e.to_string())?;
    encode(&args)
}

fn output_to_json<F: RemoteFn>(bytes: &[u8]) -> Result<serde_json::Value, String> {
    let output: F::Output = decode(bytes)?;
    serde_json::to_value(output).map_err(|e| e.to_string())
}

/// The wire form of arguments and results: bincode, as every drove frame.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    bincode::serde::encode_to_vec(value, bincode::config::standard()).map_err(|e| e.to_string())
}

/// Decodes a wire value, refusing trailing bytes and anything larger than
/// a frame.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let config = bincode::config::standard().with_limit::<{ MAX_PAYLOAD }>();
    let (value, used) =
        bincode::serde::decode_from_slice(bytes, config).map_err(|e| e.to_string())?;
    if used != bytes.len() {
        return Err(format!("{} trailing bytes", bytes.len() - used));
    }
    Ok(value)
}

/// The process's function table, by name. Built on first use; a name
/// registered twice keeps its first entry and is logged.
pub fn functions() -> &'static HashMap<&'static str, &'static FnEntry> {
    static TABLE: OnceLock<HashMap<&'static str, &'static FnEntry>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = HashMap::new();
        for entry in inventory::iter::<FnEntry> {
            if table.insert(entry.name, entry).is_some() {
                tracing::error!(
                    name = entry.name,
                    "two remote functions share a name; calls reach one of them"
                );
            }
        }
        table
    })
}

/// Says loudly when the function table is empty: the linker dropped the
/// registrations (even the built-in functions are missing), so no call can
/// run on this node. Returns the number of functions.
pub fn check_table() -> usize {
    let count = functions().len();
    if count == 0 {
        let text = "drove: the remote function table is EMPTY: the linker dropped the \
                    #[drove::remote] registrations, so runners on this build refuse every call";
        tracing::error!("{text}");
        eprintln!("{text}");
    }
    count
}

/// This build's identity: the linker's GNU build id of the running
/// executable when it has one (read from its ELF notes, a few KiB), else
/// a BLAKE3 hash of the whole file. Two builds differ when their code
/// does. Parent and runner compare it on every call. Computed once.
pub fn build_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let found = std::env::current_exe().and_then(|exe| {
            let mut file = std::fs::File::open(exe)?;
            match elf_build_id(&mut file)? {
                Some(id) => Ok(format!("gnu-{id}")),
                None => hash_file(&mut file),
            }
        });
        found.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read the executable; the build id falls back to the version");
            format!("v{}", env!("CARGO_PKG_VERSION"))
        })
    })
}

fn hash_file(file: &mut std::fs::File) -> std::io::Result<String> {
    use std::io::Seek;
    file.seek(std::io::SeekFrom::Start(0))?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("b3-{}", &hasher.finalize().to_hex()[..32]))
}

/// The NT_GNU_BUILD_ID note of a little-endian 64-bit ELF file, hex.
fn elf_build_id(file: &mut std::fs::File) -> std::io::Result<Option<String>> {
    use std::io::{Seek, SeekFrom};
    const PT_NOTE: u32 = 4;
    const NT_GNU_BUILD_ID: u32 = 3;
    let u16_at = |b: &[u8], at: usize| {
        b.get(at..at + 2)
            .map(|s| u16::from_le_bytes([s[0], s[1]]) as usize)
    };
    let u32_at = |b: &[u8], at: usize| {
        b.get(at..at + 4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    };
    let u64_at = |b: &[u8], at: usize| {
        b.get(at..at + 8)
            .and_then(|s| s.try_into().ok())
            .map(u64::from_le_bytes)
    };
    let mut header = [0u8; 64];
    file.read_exact(&mut header)?;
    if &header[..4] != b"\x7fELF" || header[4] != 2 || header[5] != 1 {
        return Ok(None);
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (
        u64_at(&header, 0x20),
        u16_at(&header, 0x36),
        u16_at(&header, 0x38),
    ) else {
        return Ok(None);
    };
    if phentsize < 56 || phnum > 256 {
        return Ok(None);
    }
    let mut table = vec![0u8; phentsize * phnum];
    file.seek(SeekFrom::Start(phoff))?;
    file.read_exact(&mut table)?;
    for ph in table.chunks(phentsize) {
        let (Some(PT_NOTE), Some(offset), Some(size)) =
            (u32_at(ph, 0), u64_at(ph, 8), u64_at(ph, 32))
        else {
            continue;
        };
        if size > 64 * 1024 {
            continue;
        }
        let mut notes = vec![0u8; size as usize];
        file.seek(SeekFrom::Start(offset))?;
        file.read_exact(&mut notes)?;
        let mut at = 0;
        while let (Some(namesz), Some(descsz), Some(kind)) = (
            u32_at(&notes, at),
            u32_at(&notes, at + 4),
            u32_at(&notes, at + 8),
        ) {
            let name_at = at + 12;
            let desc_at = name_at + (namesz as usize).next_multiple_of(4);
            let end = desc_at + (descsz as usize).next_multiple_of(4);
            let name = notes.get(name_at..name_at + namesz as usize);
            if kind == NT_GNU_BUILD_ID && name == Some(b"GNU\0".as_slice()) {
                if let Some(desc) = notes.get(desc_at..desc_at + descsz as usize) {
                    return Ok(Some(desc.iter().map(|b| format!("{b:02x}")).collect()));
                }
            }
            at = end;
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_build_id_is_this_executable_s_and_stable() {
        let id = super::build_id();
        assert!(id.starts_with("gnu-") || id.starts_with("b3-"), "{id}");
        assert_eq!(id, super::build_id());
    }
}
